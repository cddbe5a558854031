// AVX-512 kernels of the fused activation operators (kernels/fused_quant.h). Every result
// is bit-identical to the reference: same multiply order, one fma per product term in k
// order, vcvtps2dq rounding half to even after clamping in float.
#include "kernels/avx512_lanes.h"
#include "kernels/fused_quant_tiles.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace fb::fused_detail {

namespace {

#define FB_INLINE inline __attribute__((always_inline))

using avx512::lane_mask;

// clamp(x, lo, hi) in float, then round half to even and narrow to int8 (masked store).
FB_INLINE void store_codes(__m512 x, __m512 lo, __m512 hi, __mmask16 mask, int8_t* q) {
  const __m512i codes = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(x, lo), hi));
  _mm512_mask_cvtepi32_storeu_epi8(q, mask, codes);
}

constexpr int kRows = 4, kVecs = 4;  // register block of small_sgemm: 4 rows × 64 columns

template <int R>
FB_INLINE void sgemm_block(const float* A, long lda, const float* B, long ldb, float* C, long ldc, long n, long k) {
  for (long j0 = 0; j0 < n; j0 += 16 * kVecs) {
    __mmask16 mask[kVecs];
    __m512 acc[R][kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) mask[v] = lane_mask(n - j0 - 16 * v);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_setzero_ps();
    for (long l = 0; l < k; ++l) {
      __m512 b[kVecs];
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) b[v] = _mm512_maskz_loadu_ps(mask[v], B + l * ldb + j0 + 16 * v);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m512 a = _mm512_set1_ps(A[r * lda + l]);
#pragma GCC unroll 4
        for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) _mm512_mask_storeu_ps(C + r * ldc + j0 + 16 * v, mask[v], acc[r][v]);
  }
}

}  // namespace

void small_sgemm_avx512(const float* A, long lda, const float* B, long ldb, float* C, long ldc, long m, long n,
                        long k) {
  long i = 0;
  for (; i + kRows <= m; i += kRows) sgemm_block<kRows>(A + i * lda, lda, B, ldb, C + i * ldc, ldc, n, k);
  for (; i < m; ++i) sgemm_block<1>(A + i * lda, lda, B, ldb, C + i * ldc, ldc, n, k);
}

float quantize_row_avx512(const float* y, long len, float qmax, ClipRatios clip, int8_t* q) {
  __m512 vmax = _mm512_setzero_ps(), vmin = _mm512_setzero_ps();  // masked-off lanes load 0, as max/min start
  for (long i = 0; i < len; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(lane_mask(len - i), y + i);
    vmax = _mm512_max_ps(vmax, v), vmin = _mm512_min_ps(vmin, v);
  }
  alignas(64) float maxes[16], mins[16];  // not _mm512_reduce_*: GCC 12 warns inside them (-Wuninitialized)
  _mm512_store_ps(maxes, vmax), _mm512_store_ps(mins, vmin);
  const float scale =
      lac_symmetric_range(*std::max_element(maxes, maxes + 16), *std::min_element(mins, mins + 16), clip) / qmax;
  const __m512 inv = _mm512_set1_ps(scale > 0 ? 1.0f / scale : 0.0f);
  const __m512 lo = _mm512_set1_ps(-qmax - 1), hi = _mm512_set1_ps(qmax);
  for (long i = 0; i < len; i += 16) {
    const __mmask16 mask = lane_mask(len - i);
    store_codes(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, y + i), inv), lo, hi, mask, q + i);
  }
  return scale;
}

void flatten_row_avx512(const float* a, const int32_t* src, const float* inv_div, const float* offset,
                        const uint8_t* modes, long k_flat, long k_out, float inv_scale, float qmax, int8_t* q) {
  const __m512 inv = _mm512_set1_ps(inv_scale);
  const __m512 lo = _mm512_set1_ps(-qmax - 1), hi = _mm512_set1_ps(qmax);
  for (long j = 0; j < k_flat; j += 16) {
    const __mmask16 mask = lane_mask(k_flat - j);
    __m512 x;
    if (modes[j / 16] == kFetchLoad) {
      x = _mm512_loadu_ps(a + src[j]);
    } else if (modes[j / 16] == kFetchPermute) {
      const float* base = a + src[j];
      const __m512i offsets = _mm512_sub_epi32(_mm512_loadu_si512(src + j), _mm512_set1_epi32(src[j]));
      x = _mm512_permutex2var_ps(_mm512_loadu_ps(base), offsets, _mm512_loadu_ps(base + 16));
    } else {
      const __m512i idx = _mm512_maskz_loadu_epi32(mask, src + j);
      x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, idx, a, 4);
    }
    x = _mm512_mul_ps(_mm512_mul_ps(x, _mm512_maskz_loadu_ps(mask, inv_div + j)), inv);
    if (offset) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, offset + j));  // not fused: as the reference rounds
    store_codes(x, lo, hi, mask, q + j);
  }
  std::memset(q + k_flat, 0, size_t(k_out - k_flat));
}

}  // namespace fb::fused_detail

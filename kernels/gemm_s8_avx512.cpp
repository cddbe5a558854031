// AVX-512 VNNI register tiles for the integer GEMM (compiled with AVX-512 flags; called only
// after the CPU check in kernels/gemm_s8.cpp). A 6 × 64 tile keeps 24 zmm accumulators; each
// k-group of 4 costs 4 weight loads, 6 dword broadcasts from the packed A tile and 24
// vpdpbusd (u8 weights+offset × s8 activations).
#include "kernels/gemm_s8_tiles.h"

#include <immintrin.h>

#include <cstring>

namespace fb::gemm_detail {

namespace {

// Every helper touching the accumulators must inline, and every loop over them unroll, or
// GCC keeps the accumulators in memory (a 3× slowdown).
#define FB_INLINE inline __attribute__((always_inline))

constexpr int MR = kVnniMR;
constexpr int NV = kVnniNR / 16;  // zmm vectors per tile row

FB_INLINE __m512i broadcast_dword(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

FB_INLINE __mmask16 column_mask(int cols, int v) {
  int left = cols - 16 * v;
  return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}

template <int R>
FB_INLINE void load_partials(__m512i (&acc)[R][NV], const TileJob& job) {
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      acc[r][v] = job.first ? _mm512_setzero_si512()
                            : _mm512_maskz_loadu_epi32(column_mask(job.cols, v), job.c + r * job.ldc + 16 * v);
}

// Partials, int32 output, or dequantized fp32 output, all with masked stores for edge columns.
template <int R>
FB_INLINE void store_tile(__m512i (&acc)[R][NV], const TileJob& job) {
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i corr = _mm512_set1_epi32(job.row_corr ? job.row_corr[r] : 0);
    const __m512 sa = _mm512_set1_ps(job.sa ? job.sa[job.sa_per_row ? r : 0] : 1.0f);
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __mmask16 mask = column_mask(job.cols, v);
      if (!job.last) {
        _mm512_mask_storeu_epi32(job.c + r * job.ldc + 16 * v, mask, acc[r][v]);
        continue;
      }
      const __m512i exact = _mm512_sub_epi32(acc[r][v], corr);
      if (!job.y) {
        _mm512_mask_storeu_epi32(job.c + r * job.ldc + 16 * v, mask, exact);
        continue;
      }
      const __m512 sb = job.sb_per_col ? _mm512_maskz_loadu_ps(mask, job.sb + 16 * v) : _mm512_set1_ps(job.sb[0]);
      __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(exact), sa), sb);
      if (job.bias) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, job.bias + 16 * v));
      _mm512_mask_storeu_ps(job.y + r * job.ldy + 16 * v, mask, y);
    }
  }
}

// acc[r][·] += Σ over one k-group of 4: a_rows[r][0..3] · w (the 4 weight vectors w[0..3]).
template <int R>
FB_INLINE void dot_group(__m512i (&acc)[R][NV], const int8_t* a, long lda, const __m512i (&w)[NV]) {
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i av = broadcast_dword(a + r * lda);
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], w[v], av);
  }
}

// A is read from the block packed by pack_a_vnni: group g of 4 k for row r at
// a + g·kPackedGroupBytes + 4·r, zero-padded, so no k tail needs care here.
template <int R>
void tile_s8(const TileJob& job) {
  __m512i acc[R][NV];
  load_partials<R>(acc, job);
  const int8_t* a = static_cast<const int8_t*>(job.a);
  const uint8_t* b = job.b;
  const long groups = (job.k_len + 3) / 4;
  __m512i w[NV];
  for (long g = 0; g < groups; ++g, b += 64 * NV, a += kPackedGroupBytes) {
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) w[v] = _mm512_loadu_si512(b + 64 * v);
    dot_group<R>(acc, a, 4, w);
  }
  store_tile<R>(acc, job);
}

// One octet of k: 4 loads hold 8 weight vectors as nibbles (low = k-group 2o, high = 2o+1).
template <int R>
FB_INLINE void dot_octet_s4(__m512i (&acc)[R][NV], const int8_t* a, const uint8_t* b) {
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  __m512i lo[NV], hi[NV];
  #pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const __m512i packed = _mm512_loadu_si512(b + 64 * v);
    lo[v] = _mm512_and_si512(packed, nibble);
    hi[v] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble);
  }
  dot_group<R>(acc, a, 4, lo);
  dot_group<R>(acc, a + kPackedGroupBytes, 4, hi);
}

template <int R>
void tile_s4(const TileJob& job) {
  __m512i acc[R][NV];
  load_partials<R>(acc, job);
  const int8_t* a = static_cast<const int8_t*>(job.a);
  const uint8_t* b = job.b;
  const long octets = (job.k_len + 7) / 8;
  for (long o = 0; o < octets; ++o, b += 64 * NV, a += 2 * kPackedGroupBytes) dot_octet_s4<R>(acc, a, b);
  store_tile<R>(acc, job);
}

// Dispatch on the number of valid rows, so edge tiles do no wasted rows.
#define FB_ROWS_SWITCH(fn, job)             \
  switch ((job).rows) {                     \
    case 1: return fn<1>(job);              \
    case 2: return fn<2>(job);              \
    case 3: return fn<3>(job);              \
    case 4: return fn<4>(job);              \
    case 5: return fn<5>(job);              \
    default: return fn<6>(job);             \
  }
static_assert(MR == 6, "FB_ROWS_SWITCH covers 1..6 rows");

}  // namespace

void tile_vnni_s8(const TileJob& job) { FB_ROWS_SWITCH(tile_s8, job); }
void tile_vnni_s4(const TileJob& job) { FB_ROWS_SWITCH(tile_s4, job); }

long packed_a_tile_bytes(long k_len) { return (k_len + 7) / 8 * 2 * kPackedGroupBytes; }

// Each tile of MR rows becomes [group][MR][4 bytes]: the 4-byte broadcasts of one k-group
// sit side by side (one cache line serves 2⅔ groups) instead of MR rows apart, which for
// row strides that are multiples of 4 KiB would all fall into one L1 set.
void pack_a_vnni(const int8_t* A, long lda, long rows, long k_len, int8_t* out) {
  const long tile_bytes = packed_a_tile_bytes(k_len), full_groups = k_len / 4;
  for (long r0 = 0; r0 < rows; r0 += MR, out += tile_bytes) {
    std::memset(out, 0, size_t(tile_bytes));
    for (long r = 0; r < MR && r0 + r < rows; ++r) {
      const int8_t* row = A + (r0 + r) * lda;
      int8_t* dst = out + 4 * r;
      for (long g = 0; g < full_groups; ++g) std::memcpy(dst + g * kPackedGroupBytes, row + 4 * g, 4);
      std::memcpy(dst + full_groups * kPackedGroupBytes, row + 4 * full_groups, size_t(k_len % 4));
    }
  }
}

void row_corrections_avx512(const int8_t* A, long M, long K, long lda, int32_t offset, int32_t* out) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (long m = 0; m < M; ++m) {
    const int8_t* row = A + m * lda;
    __m512i acc = _mm512_setzero_si512();
    long k = 0;
    for (; k + 64 <= K; k += 64) acc = _mm512_dpbusd_epi32(acc, ones, _mm512_loadu_si512(row + k));
    int32_t sum = _mm512_reduce_add_epi32(acc);
    for (; k < K; ++k) sum += row[k];
    out[m] = offset * sum;
  }
}

}  // namespace fb::gemm_detail

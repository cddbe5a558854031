// AVX2 register tiles for the integer GEMM (compiled with -mavx2 -mfma; called only after the
// CPU check in kernels/gemm_s8.cpp). Products are formed by vpmaddwd on int16 pairs, which is
// exact for int8 inputs (vpmaddubsw would saturate its int16 pair sums). A 4 × 16 tile keeps
// 8 ymm accumulators; activations are widened to int16 once per call.
#include "kernels/gemm_s8_tiles.h"

#include <immintrin.h>

#include <cstring>

namespace fb::gemm_detail {

namespace {

// Every helper touching the accumulators must inline, and every loop over them unroll, or
// GCC keeps the accumulators in memory.
#define FB_INLINE inline __attribute__((always_inline))

constexpr int MR = kAvx2MR;
constexpr int NV = kAvx2NR / 8;  // ymm vectors per tile row

FB_INLINE __m256i broadcast_pair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Lane i is all-ones when column 8·v + i is valid.
FB_INLINE __m256i column_mask(int cols, int v) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8 * v), lane);
}

template <int R>
FB_INLINE void load_partials(__m256i (&acc)[R][NV], const TileJob& job) {
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      acc[r][v] = job.first ? _mm256_setzero_si256()
                            : _mm256_maskload_epi32(job.c + r * job.ldc + 8 * v, column_mask(job.cols, v));
}

template <int R>
FB_INLINE void store_tile(__m256i (&acc)[R][NV], const TileJob& job) {
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256i corr = _mm256_set1_epi32(job.row_corr ? job.row_corr[r] : 0);
    const __m256 sa = _mm256_set1_ps(job.sa ? job.sa[job.sa_per_row ? r : 0] : 1.0f);
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m256i mask = column_mask(job.cols, v);
      if (!job.last) {
        _mm256_maskstore_epi32(job.c + r * job.ldc + 8 * v, mask, acc[r][v]);
        continue;
      }
      const __m256i exact = _mm256_sub_epi32(acc[r][v], corr);
      if (!job.y) {
        _mm256_maskstore_epi32(job.c + r * job.ldc + 8 * v, mask, exact);
        continue;
      }
      const __m256 sb = job.sb_per_col ? _mm256_maskload_ps(job.sb + 8 * v, mask) : _mm256_set1_ps(job.sb[0]);
      __m256 y = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(exact), sa), sb);
      if (job.bias) y = _mm256_add_ps(y, _mm256_maskload_ps(job.bias + 8 * v, mask));
      _mm256_maskstore_ps(job.y + r * job.ldy + 8 * v, mask, y);
    }
  }
}

// acc[r][·] += a[r][0]·w[·] lane pair 0 + a[r][1]·w[·] lane pair 1 (one k-pair).
template <int R>
FB_INLINE void dot_pair(__m256i (&acc)[R][NV], const int16_t* a, long lda, const __m256i (&w)[NV]) {
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256i av = broadcast_pair(a + r * lda);
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(av, w[v]));
  }
}

// The int16 rows are zero-padded to a multiple of 4, so a rounded-up pair count is exact.
template <int R>
void tile_s8(const TileJob& job) {
  __m256i acc[R][NV];
  load_partials<R>(acc, job);
  const int16_t* a = static_cast<const int16_t*>(job.a);
  const uint8_t* b = job.b;
  const long pairs = (job.k_len + 1) / 2;
  __m256i w[NV];
  for (long p = 0; p < pairs; ++p, b += 32 * NV) {
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) w[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32 * v));
    dot_pair<R>(acc, a + 2 * p, job.lda, w);
  }
  store_tile<R>(acc, job);
}

// One quad of k: each 16-byte half widens to 16 int16 lanes holding two nibbles each
// (low = k-pair 2q, high = k-pair 2q+1); a byte < 256 needs no mask after the shift.
template <int R>
void tile_s4(const TileJob& job) {
  __m256i acc[R][NV];
  load_partials<R>(acc, job);
  const int16_t* a = static_cast<const int16_t*>(job.a);
  const uint8_t* b = job.b;
  const long quads = (job.k_len + 3) / 4;
  const __m256i nibble = _mm256_set1_epi16(0x0F);
  __m256i lo[NV], hi[NV];
  for (long q = 0; q < quads; ++q, b += 16 * NV) {
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16 * v)));
      lo[v] = _mm256_and_si256(bytes, nibble);
      hi[v] = _mm256_srli_epi16(bytes, 4);
    }
    dot_pair<R>(acc, a + 4 * q, job.lda, lo);
    dot_pair<R>(acc, a + 4 * q + 2, job.lda, hi);
  }
  store_tile<R>(acc, job);
}

#define FB_ROWS_SWITCH(fn, job) \
  switch ((job).rows) {         \
    case 1: return fn<1>(job);  \
    case 2: return fn<2>(job);  \
    case 3: return fn<3>(job);  \
    default: return fn<4>(job); \
  }
static_assert(MR == 4, "FB_ROWS_SWITCH covers 1..4 rows");

}  // namespace

void tile_avx2_s8(const TileJob& job) { FB_ROWS_SWITCH(tile_s8, job); }
void tile_avx2_s4(const TileJob& job) { FB_ROWS_SWITCH(tile_s4, job); }

void widen_rows_avx2(const int8_t* A, long M, long K, int16_t* A16, long ld16, int32_t offset, int32_t* out) {
  for (long m = 0; m < M; ++m) {
    const int8_t* row = A + m * K;
    int16_t* dst = A16 + m * ld16;
    __m256i sum = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    long k = 0;
    for (; k + 16 <= K; k += 16) {
      const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), w);
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(w, ones));
    }
    int32_t lanes[8];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes), sum);
    int32_t total = 0;
    for (int32_t l : lanes) total += l;
    for (; k < K; ++k) {
      dst[k] = row[k];
      total += row[k];
    }
    for (; k < ld16; ++k) dst[k] = 0;
    if (out) out[m] = offset * total;
  }
}

}  // namespace fb::gemm_detail

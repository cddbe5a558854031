// AVX2 register tiles for the integer GEMM (compiled with -mavx2 -mfma; called only after the
// CPU check in kernels/gemm_s8.cpp). Products are formed by vpmaddwd on int16 pairs, which is
// exact for int8 inputs (vpmaddubsw would saturate its int16 pair sums). A 4 × 16 tile keeps
// 8 ymm accumulators; activations are widened to int16 once per call.
#include "kernels/gemm_s8_tiles.h"

#include <immintrin.h>

#include <cstring>

namespace fb::gemm_detail {

namespace {

#include "kernels/gemm_s8_tiles_impl.inc"

// The vector operations of the shared tile code (gemm_s8_tiles_impl.inc), on ymm registers.
struct Isa {
  static constexpr int kLanes = 8;
  using Int = __m256i;
  using Float = __m256;
  using Mask = __m256i;  // lane i all-ones when valid

  // Lane i is valid when column 8·v + i is.
  static FB_INLINE Mask column_mask(int cols, int v) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8 * v), lane);
  }
  static FB_INLINE Int zero() { return _mm256_setzero_si256(); }
  static FB_INLINE Int set1_i32(int32_t x) { return _mm256_set1_epi32(x); }
  static FB_INLINE Float set1_f32(float x) { return _mm256_set1_ps(x); }
  static FB_INLINE Int load(const int32_t* p, Mask m) { return _mm256_maskload_epi32(p, m); }
  static FB_INLINE Float load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static FB_INLINE void store(int32_t* p, Mask m, Int x) { _mm256_maskstore_epi32(p, m, x); }
  static FB_INLINE void store(float* p, Mask m, Float x) { _mm256_maskstore_ps(p, m, x); }
  static FB_INLINE Int sub_i32(Int a, Int b) { return _mm256_sub_epi32(a, b); }
  static FB_INLINE Float to_f32(Int x) { return _mm256_cvtepi32_ps(x); }
  static FB_INLINE Float mul_f32(Float a, Float b) { return _mm256_mul_ps(a, b); }
  static FB_INLINE Float add_f32(Float a, Float b) { return _mm256_add_ps(a, b); }
  static FB_INLINE Int broadcast4(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  // acc + w·a over each lane's int16 pair (vpmaddwd).
  static FB_INLINE Int dot4(Int acc, Int w, Int a) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, w)); }
};

constexpr int MR = kAvx2MR;
constexpr int NV = kAvx2NR / Isa::kLanes;  // ymm vectors per tile row

// The int16 rows are zero-padded to a multiple of 4, so a rounded-up pair count is exact.
// Each k-step is one k-pair.
template <int R>
void tile_s8(const TileJob& job) {
  __m256i acc[R][NV];
  load_partials<Isa>(acc, job);
  const int16_t* a = static_cast<const int16_t*>(job.a);
  const uint8_t* b = job.b;
  const long pairs = (job.k_len + 1) / 2;
  __m256i w[NV];
  for (long p = 0; p < pairs; ++p, b += 32 * NV) {
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) w[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32 * v));
    dot_step<Isa>(acc, a + 2 * p, job.lda, w);
  }
  store_tile<Isa>(acc, job);
}

// One quad of k: each 16-byte half widens to 16 int16 lanes holding two nibbles each
// (low = k-pair 2q, high = k-pair 2q+1); a byte < 256 needs no mask after the shift.
template <int R>
void tile_s4(const TileJob& job) {
  __m256i acc[R][NV];
  load_partials<Isa>(acc, job);
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
    dot_step<Isa>(acc, a + 4 * q, job.lda, lo);
    dot_step<Isa>(acc, a + 4 * q + 2, job.lda, hi);
  }
  store_tile<Isa>(acc, job);
}

}  // namespace

void tile_avx2_s8(const TileJob& job) { dispatch_rows<MR>(job.rows, [&]<int R>() { tile_s8<R>(job); }); }
void tile_avx2_s4(const TileJob& job) { dispatch_rows<MR>(job.rows, [&]<int R>() { tile_s4<R>(job); }); }

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

// AVX-512 VNNI register tiles for the integer GEMM (compiled with AVX-512 flags; called only
// after the CPU check in kernels/gemm_s8.cpp). A 6 × 64 tile keeps 24 zmm accumulators; each
// k-group of 4 costs 4 weight loads, 6 dword broadcasts from the packed A tile and 24
// vpdpbusd (u8 weights+offset × s8 activations).
#include "kernels/gemm_s8_tiles.h"

#include <immintrin.h>

#include <cstring>

namespace fb::gemm_detail {

namespace {

#include "kernels/gemm_s8_tiles_impl.inc"

// The vector operations of the shared tile code (gemm_s8_tiles_impl.inc), on zmm registers.
struct Isa {
  static constexpr int kLanes = 16;
  using Int = __m512i;
  using Float = __m512;
  using Mask = __mmask16;

  // Bit i is set when column 16·v + i is valid.
  static FB_INLINE Mask column_mask(int cols, int v) {
    int left = cols - 16 * v;
    return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
  }
  static FB_INLINE Int zero() { return _mm512_setzero_si512(); }
  static FB_INLINE Int set1_i32(int32_t x) { return _mm512_set1_epi32(x); }
  static FB_INLINE Float set1_f32(float x) { return _mm512_set1_ps(x); }
  static FB_INLINE Int load(const int32_t* p, Mask m) { return _mm512_maskz_loadu_epi32(m, p); }
  static FB_INLINE Float load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static FB_INLINE void store(int32_t* p, Mask m, Int x) { _mm512_mask_storeu_epi32(p, m, x); }
  static FB_INLINE void store(float* p, Mask m, Float x) { _mm512_mask_storeu_ps(p, m, x); }
  static FB_INLINE Int sub_i32(Int a, Int b) { return _mm512_sub_epi32(a, b); }
  static FB_INLINE Float to_f32(Int x) { return _mm512_cvtepi32_ps(x); }
  static FB_INLINE Float mul_f32(Float a, Float b) { return _mm512_mul_ps(a, b); }
  static FB_INLINE Float add_f32(Float a, Float b) { return _mm512_add_ps(a, b); }
  static FB_INLINE Int broadcast4(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  // acc + Σ of each lane's 4 products, u8 weights × s8 activations (vpdpbusd).
  static FB_INLINE Int dot4(Int acc, Int w, Int a) { return _mm512_dpbusd_epi32(acc, w, a); }
};

constexpr int MR = kVnniMR;
constexpr int NV = kVnniNR / Isa::kLanes;  // zmm vectors per tile row

// A is read from the block packed by pack_a_vnni: group g of 4 k for row r at
// a + g·kPackedGroupBytes + 4·r, zero-padded, so no k tail needs care here. Each k-step is
// one k-group of 4.
template <int R>
void tile_s8(const TileJob& job) {
  __m512i acc[R][NV];
  load_partials<Isa>(acc, job);
  const int8_t* a = static_cast<const int8_t*>(job.a);
  const uint8_t* b = job.b;
  const long groups = (job.k_len + 3) / 4;
  __m512i w[NV];
  for (long g = 0; g < groups; ++g, b += 64 * NV, a += kPackedGroupBytes) {
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) w[v] = _mm512_loadu_si512(b + 64 * v);
    dot_step<Isa>(acc, a, 4, w);
  }
  store_tile<Isa>(acc, job);
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
  dot_step<Isa>(acc, a, 4, lo);
  dot_step<Isa>(acc, a + kPackedGroupBytes, 4, hi);
}

template <int R>
void tile_s4(const TileJob& job) {
  __m512i acc[R][NV];
  load_partials<Isa>(acc, job);
  const int8_t* a = static_cast<const int8_t*>(job.a);
  const uint8_t* b = job.b;
  const long octets = (job.k_len + 7) / 8;
  for (long o = 0; o < octets; ++o, b += 64 * NV, a += 2 * kPackedGroupBytes) dot_octet_s4<R>(acc, a, b);
  store_tile<Isa>(acc, job);
}

}  // namespace

void tile_vnni_s8(const TileJob& job) { dispatch_rows<MR>(job.rows, [&]<int R>() { tile_s8<R>(job); }); }
void tile_vnni_s4(const TileJob& job) { dispatch_rows<MR>(job.rows, [&]<int R>() { tile_s4<R>(job); }); }

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

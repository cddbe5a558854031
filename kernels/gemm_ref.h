// Scalar reference kernels for the integer GEMMs: the ground truth every fast kernel in
// kernels/ is tested against. Plain loops, no blocking, no SIMD — correctness only.
//
// Layout conventions (shared by every integer GEMM here):
//   A:  M×K row-major int8 (activations, one token per row)
//   B:  N×K row-major int8 (weights, PyTorch nn.Linear layout: one output channel per row)
//   B4: N rows of K int4 values packed two per byte along K — low nibble = even k,
//       high nibble = odd k, two's complement — row stride (K+1)/2 bytes (an odd K leaves
//       the last high nibble unused; it must be ignored)
//   C:  M×N row-major int32
#pragma once

#include <cstdint>

namespace fb {

// C = A · Bᵀ, exact int32 accumulation.
void gemm_s8s8s32_ref(const int8_t* A, const int8_t* B, int32_t* C, long M, long N, long K);

// C = A · B4ᵀ with B4 packed int4 (see above).
void gemm_s8s4s32_ref(const int8_t* A, const uint8_t* B4, int32_t* C, long M, long N, long K);

// Dequantizing epilogue: Y[m,n] = float(C[m,n]) * sa[m or 0] * sb[n or 0] (+ bias[n]).
// n_sa is 1 (per-tensor) or M (per-token); n_sb is 1 (per-tensor) or N (per-channel);
// bias may be null. Throws std::invalid_argument for any other count.
void dequantize_s32_ref(const int32_t* C, long M, long N, const float* sa, long n_sa, const float* sb, long n_sb,
                        const float* bias, float* Y);

// Bytes per packed int4 row of K values.
inline long int4_row_bytes(long K) { return (K + 1) / 2; }

// The int4 at column k of a packed row (low nibble = even k, high nibble = odd k), sign-extended.
inline int32_t int4_at(const uint8_t* row, long k) {
  const uint8_t nibble = (k % 2 == 0 ? row[k / 2] : uint8_t(row[k / 2] >> 4)) & 0x0F;
  return nibble >= 8 ? int32_t(nibble) - 16 : int32_t(nibble);
}

}  // namespace fb

// Internal to kernels/fused_quant.cpp: the AVX-512 kernels (kernels/fused_quant_avx512.cpp,
// compiled with AVX-512 flags; called only when the CPU has AVX-512F).
#pragma once

#include "kernels/lac.h"

#include <cstdint>

namespace fb::fused_detail {

// How chunk c (outputs 16c … 16c+15) of a flatten row is fetched.
enum ChunkFetch : uint8_t {
  kFetchGather = 0,   // any sources (and every partial chunk)
  kFetchLoad = 1,     // src[16c + i] = src[16c] + i
  kFetchPermute = 2,  // src[16c] ≤ src[16c + i] < src[16c] + 32 ≤ K: two loads and a permute
};

// One row: q[j] = nearbyint(clamp(a[src[j]]·inv_div[j]·inv_scale (+ offset[j]))), q[j] = 0 for
// j ≥ k_flat; offset may be null.
void flatten_row_avx512(const float* a, const int32_t* src, const float* inv_div, const float* offset,
                        const uint8_t* modes, long k_flat, long k_out, float inv_scale, float qmax, int8_t* q);

// C (m×n, row stride ldc) = A (m×k, row stride lda) · B (k×n, row stride ldb), each
// element accumulated k = 0, 1, … by fused multiply-adds from zero.
void small_sgemm_avx512(const float* A, long lda, const float* B, long ldb, float* C, long ldc, long m, long n,
                        long k);

// Symmetric per-row quantization of one row y (len values); returns the scale.
float quantize_row_avx512(const float* y, long len, float qmax, ClipRatios clip, int8_t* q);

}  // namespace fb::fused_detail

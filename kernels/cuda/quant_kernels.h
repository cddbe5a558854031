// Fused activation kernels that feed the low-bit GEMMs (fp16 activations in, codes out):
//
// flatten_quantize (FlattenQuant's runtime op plus its per-tensor quantizer):
//   A'[t,j] = A[t, src[j]] · inv_div[j]                  j < K_pad (src[j] < 0: zero padding)
//   Q[t,j]  = clamp(rint(A'[t,j] · inv_scale (+ step_offset[j])), −128, 127)  int8, one static
//   per-tensor scale; step_offset (optional) staggers split copies (kernels/fused_quant.h SplitMode)
//
// kron_quantize (FlatQuant's online transform plus per-token quantizer):
//   X_t = x_t reshaped n1×n2 (row-major), Y_t = P1ᵀ · X_t · P2 (fp16 operands on the tensor
//   cores, fp32 accumulation; the intermediate X_t·P2 is rounded to fp16),
//   s_t = max(max(Y_t)·hi, −min(Y_t)·lo) / qmax (1 if 0), the learned clipping (LAC) the
//   method deploys (kernels/lac.h), Q = clamp(rint(Y_t · (1/s_t)), −qmax−1, qmax)
//   bits 8: int8 codes, row stride K; bits 4: packed int4 (even k in the low nibble), row
//   stride K/2. Limits: n1, n2 ≤ 128 (shared memory), K even for bits 4.
#pragma once

#include "kernels/lac.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fb::cuda {

// src, inv_div and step_offset (null: none): K_pad entries each, 16-byte aligned (cudaMalloc'd).
void flatten_quantize(const __half* a, long tokens, long k, const int* src, const float* inv_div, long k_pad,
                      float inv_scale, int8_t* q, cudaStream_t stream, const float* step_offset = nullptr);

struct KronQuantPlan {
  int n1 = 0, n2 = 0, bits = 8;
  int n1_pad = 0, n2_pad = 0;  // rounded up to 16 for the 16×16 tensor-core tiles
  int smem_bytes = 0, blocks = 0;
};
// Validates the shape (std::invalid_argument) and sizes the launch.
KronQuantPlan make_kron_quant_plan(int n1, int n2, int bits);

// p1: n1×n1, p2: n2×n2, row-major fp16. scales: one float per token (out). Ratios in (0, 1].
void kron_quantize(const KronQuantPlan& plan, const __half* x, long tokens, const __half* p1, const __half* p2,
                   ClipRatios clip, void* q, float* scales, cudaStream_t stream);

}  // namespace fb::cuda

// Plain C++ references for every CUDA kernel in kernels/cuda (no CUDA, no libraries):
// the ground truth the device test binary compares against. Integer GEMMs reuse the
// CPU suite's scalar kernels (kernels/gemm_ref.h), so CPU and GPU share one definition.
#pragma once

#include "kernels/lac.h"

#include <cstdint>
#include <vector>

namespace fb::cuda_ref {

// Y = float(A·Bᵀ) · sa[m or 0] · sb[n or 0], as the GPU epilogue computes it (before the
// final fp16 rounding). b_int4: B is packed int4 (kernels/gemm_ref.h layout).
std::vector<float> gemm_dequant(const int8_t* a, const void* b, bool b_int4, long m, long n, long k,
                                const std::vector<float>& sa, const std::vector<float>& sb);

// FlattenQuant gather + scale + per-tensor int8 quantize (kernels/cuda/quant_kernels.h).
// step_offset: empty, or K_pad offsets in quantization steps added before rounding (staggered copies).
std::vector<int8_t> flatten_quantize(const std::vector<float>& a, long tokens, long k, const std::vector<int>& src,
                                     const std::vector<float>& inv_div, float inv_scale,
                                     const std::vector<float>& step_offset = {});

// FlatQuant Kronecker transform + per-token quantize. x, p1, p2 hold fp16-representable
// values; the intermediate X·P2 is rounded to fp16 as on the GPU. Returns one code per
// element (int4 codes unpacked, in −8..7) and fills scales (one per token).
std::vector<int8_t> kron_quantize(const std::vector<float>& x, long tokens, int n1, int n2,
                                  const std::vector<float>& p1, const std::vector<float>& p2, int bits,
                                  ClipRatios clip, std::vector<float>& scales);

// Rounds to the nearest fp16 value (round-to-nearest-even), kept as float.
float round_to_half(float v);

}  // namespace fb::cuda_ref

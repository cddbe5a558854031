// FlatQuant's learnable activation clipping (LAC) as it is deployed (official
// ActivationQuantizer; docs/methods.md §2): the learned logits become two ratios
// hi = σ(α_max), lo = σ(α_min) that shrink a token's max and min before its scale is taken.
// One rule for the method's operators (methods/flatquant/deploy.cpp) and the kernels the
// benchmarks time (kernels/fused_quant.cpp, kernels/cuda/quant_kernels.cu), so the timed
// kernel does the reduction the method deploys.
#pragma once

#include <algorithm>

namespace fb {

struct ClipRatios {
  float hi = 1, lo = 1;  // (1, 1): no clipping
};

// The pair the GEMM benchmarks time with (CPU kron_quant, GPU ours_kron_quant): both ratios start
// at σ(4) ≈ 0.982 (methods/flatquant/block.cpp) and training moves them apart, so the timed
// kernels do the two-sided max/min reduction a trained model needs, not one absmax.
inline constexpr ClipRatios kBenchmarkClip{0.98f, 0.90f};

// The magnitude a symmetric quantizer maps to qmax, from a group's max ≥ 0 and min ≤ 0.
inline float lac_symmetric_range(float max, float min, ClipRatios c) { return std::max(max * c.hi, -min * c.lo); }

}  // namespace fb

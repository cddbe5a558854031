// FlattenQuant's tensor flatten (docs/methods.md §1.5): channels whose calibrated magnitude m_k
// exceeds the threshold T are split into n_k = ceil(m_k / T) copies of x_k / n_k, and the
// matching weight column is repeated n_k times, so flatten(X) · expand(W)ᵀ = X · Wᵀ in real
// arithmetic. The flattened width K' is zero-padded to K'' (a multiple of 32 by default).
//
// The plan itself is kernels/fused_quant.h's FlattenPlan (the fused gather + scale + quantize
// operator consumes it); this file decides the copy counts and expands weights / activations.
#pragma once

#include "kernels/fused_quant.h"
#include "models/model.h"

#include <string>
#include <vector>

namespace fb {

// What β scales: the tensor's largest channel magnitude (β ∈ (0, 1], β ≥ 1 flattens nothing)
// or the median channel magnitude (β > 1), docs/methods.md §1.5 step 1.
enum class BetaReference { max, median };
BetaReference parse_beta_reference(const std::string& name);  // throws naming the choices

// T = β · max_k m_k (or β · median_k m_k). m must be non-empty and non-negative.
float flatten_threshold(const Vec& magnitudes, float beta, BetaReference ref);

// n_k = max(1, ceil(m_k / T)); T ≤ 0 (an all-zero tensor) gives one copy each.
std::vector<int> flatten_copies(const Vec& magnitudes, float threshold);

// The plan for these magnitudes (copies adjacent, original order, K'' = pad_to·ceil(K'/pad_to)).
FlattenPlan plan_flatten(const Vec& magnitudes, float beta, BetaReference ref, long pad_to,
                         SplitMode split = SplitMode::equal);

inline long flat_width(const FlattenPlan& p) { return long(p.src.size()); }  // K'

// The largest flattened magnitude, max_k m_k / n_k (≤ T): the per-tensor range after flatten.
float flattened_range(const Vec& magnitudes, const FlattenPlan& plan);

// W' (N × K''): column j = W[:, src[j]] for j < K', zero for the padding (weights are repeated, not divided).
Mat expand_weight(const Mat& W, const FlattenPlan& plan);
// flatten_activations (X' = the flattened input, float) is in kernels/fused_quant.h beside the plan.

// Per input channel k: how many copies the plan holds (n_k).
std::vector<int> plan_copies(const FlattenPlan& plan);

}  // namespace fb

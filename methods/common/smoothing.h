// Channel smoothing (SmoothQuant, docs/methods.md §1.4 / §3.2): divide a norm's output channel k by
// s_k and multiply the matching input column of every linear reading it by s_k. Exact in real
// arithmetic; folded into the norm's gamma (and beta for LayerNorm), so the forward pass is
// unchanged. Reused by FlattenQuant's smoothing step.
#pragma once

#include "methods/common/calibration.h"
#include "models/model.h"

#include <vector>

namespace fb {

// Linears that read one norm's output: LLaMA q/k/v (attn_norm) and gate/up (mlp_norm);
// OPT q/k/v (self_attn_layer_norm) and fc1 (final_layer_norm).
struct SmoothGroup {
  int layer = 0;
  std::vector<Role> roles;
};
std::vector<SmoothGroup> smoothable_groups(const Model& m);
// The group's sites in role order, and their weight matrices (what smoothing_scales reads).
std::vector<LinearSite*> group_sites(Model& m, const SmoothGroup& g);
std::vector<const Mat*> weights_of(const std::vector<LinearSite*>& sites);

// s_k = max(m_k^α / w_k^(1−α), 1e-5), with m_k the input abs-max and w_k = max over the group's
// weights of |W[n,k]| (clamped ≥ 1e-5).
Vec smoothing_scales(const Vec& act_absmax, const std::vector<const Mat*>& weights, float alpha);

// γ_k ← γ_k / s_k, β_k ← β_k / s_k, W[:,k] ← W[:,k]·s_k for every site of the group.
void fold_smoothing(Norm& norm, const std::vector<LinearSite*>& sites, const Vec& s);

struct SmoothResult {
  SmoothGroup group;
  Vec scales;
};

// Smooths every group with statistics of the unsmoothed model, folds the scales, and rescales
// the statistics of the smoothed sites (their inputs are now x / s).
std::vector<SmoothResult> smooth_model(Model& m, SiteStatsMap& stats, float alpha);

}  // namespace fb

// Calibration statistics of FlattenQuant (docs/methods.md §1.3): per input channel of each linear
// input, the channel magnitude m_k as one of three statistics, plus a sample of input rows
// (reconstruction-error records). GPTQ collects its own Hessians, stage by stage, from the
// quantized model (pipeline.cpp gptq_expanded_weights).
//
//   max           m_k = max_t |x[t,k]|                       (SmoothQuant's running max)
//   percentile    m_k = the p-th percentile of |x[:,k]|      (robust: exact, from the top values),
//                 interpolated as numpy / torch.quantile do ("linear"): over the n values sorted
//                 ascending, position h = (n − 1)·p/100 between the values at ⌊h⌋ and ⌈h⌉. Unlike a
//                 nearest-rank rule it stays below the maximum when n·(1 − p/100) < 1 (8,192
//                 calibration tokens at p = 99.99: 18% of the way from the 2nd largest to the max)
//   seq_mean_max  m_k = mean over windows of max_t |x[t,k]|  (robust: one spike counts 1/windows)
//
// Linears that read the same tensor (q/k/v, LLaMA gate/up) share one entry, keyed by the
// "leader" site (q, gate) — they also share one flatten plan.
#pragma once

#include "methods/common/calibration.h"
#include "models/model.h"

#include <Eigen/Core>

#include <map>
#include <string>
#include <vector>

namespace fb {

enum class ChannelStat { max, percentile, seq_mean_max };
ChannelStat parse_channel_stat(const std::string& name);  // throws naming the choices

// The site whose input statistics a site uses (q for q/k/v, gate for gate/up, itself otherwise).
SiteId input_leader(const SiteId& id);

struct ChannelStats {
  Vec absmax;          // max_t |x[t,k]|
  Vec percentile;      // p-th percentile of |x[:,k]| (empty unless requested)
  Vec seq_mean_max;    // mean over windows of the per-window channel max
  long tokens = 0;
  int windows = 0;
  Mat rows;            // evenly strided sample of input rows

  const Vec& magnitude(ChannelStat stat) const;
  // Inputs divided per channel by s (after smoothing): every statistic scales with 1/s_k.
  void rescale(const Vec& s);
};

using ChannelStatsMap = std::map<int, ChannelStats>;  // site_key(leader) → statistics

struct ChannelStatsOptions {
  double percentile = -1;  // p in (0, 100] to compute the percentile statistic; ≤ 0: skip
  int max_rows = 1024;
};

// Runs the model over the windows (all the same length or not) with a site hook on the leaders.
ChannelStatsMap collect_channel_stats(Model& m, const std::vector<std::vector<int>>& windows,
                                      const ChannelStatsOptions& opt);

// The p-th percentile of n magnitudes as the collector computes it per channel (linear
// interpolation at h = (n − 1)·p/100 over the ascending values, see above).
float channel_percentile(std::vector<float> abs_values, double p);

}  // namespace fb

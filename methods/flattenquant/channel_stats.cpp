#include "methods/flattenquant/channel_stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <stdexcept>

namespace fb {

ChannelStat parse_channel_stat(const std::string& name) {
  if (name == "max") return ChannelStat::max;
  if (name == "percentile") return ChannelStat::percentile;
  if (name == "seq_mean_max") return ChannelStat::seq_mean_max;
  throw std::invalid_argument("flattenquant: stat must be max, percentile or seq_mean_max, got '" + name + "'");
}

SiteId input_leader(const SiteId& id) {
  switch (id.role) {
    case Role::k:
    case Role::v: return {id.layer, Role::q};
    case Role::up: return {id.layer, Role::gate};
    default: return id;
  }
}

const Vec& ChannelStats::magnitude(ChannelStat stat) const {
  const Vec& v = stat == ChannelStat::max ? absmax : stat == ChannelStat::percentile ? percentile : seq_mean_max;
  if (v.size() == 0) throw std::logic_error("flattenquant: the requested channel statistic was not collected");
  return v;
}

void ChannelStats::rescale(const Vec& s) {
  const Vec inv = s.cwiseInverse();
  for (Vec* v : {&absmax, &percentile, &seq_mean_max})
    if (v->size()) *v = v->cwiseProduct(inv);
  if (rows.size()) rows = rows * inv.asDiagonal();
}

namespace {
// Where the p-th percentile of n values sits: between the values of ascending index `lo` and
// lo + 1, `frac` of the way (numpy's "linear" rule).
struct PercentilePosition {
  size_t lo = 0;
  double frac = 0;
};
PercentilePosition percentile_position(size_t n, double p) {
  const double h = double(n - 1) * p / 100.0;
  PercentilePosition pos{std::min(n - 1, size_t(std::floor(h))), 0};
  pos.frac = pos.lo + 1 < n ? h - double(pos.lo) : 0;
  return pos;
}
// Values kept per channel so the two around the percentile are among them: the n − lo largest.
size_t values_to_keep(long n, double p) { return n > 0 ? size_t(n) - percentile_position(size_t(n), p).lo : 1; }
float interpolate(float at_lo, float at_hi, double frac) { return float(at_lo + frac * (double(at_hi) - at_lo)); }
}  // namespace

float channel_percentile(std::vector<float> v, double p) {
  if (v.empty()) return 0;
  const PercentilePosition pos = percentile_position(v.size(), p);
  std::nth_element(v.begin(), v.begin() + long(pos.lo), v.end());
  const float at_lo = v[pos.lo];
  const float at_hi = pos.frac > 0 ? *std::min_element(v.begin() + long(pos.lo) + 1, v.end()) : at_lo;
  return interpolate(at_lo, at_hi, pos.frac);
}

namespace {

// One input tensor's running statistics.
struct Collector {
  size_t keep_top = 0;  // values kept per channel for the percentile (0: none)
  std::vector<std::priority_queue<float, std::vector<float>, std::greater<float>>> top;  // min-heaps
  Vec absmax, max_sum;
  std::vector<Eigen::RowVectorXf> rows;
  long tokens = 0;
  int windows = 0;

  void add(const Mat& x, long stride, int max_rows) {
    const long K = x.cols();
    if (absmax.size() == 0) {
      absmax = max_sum = Vec::Zero(K);
      top.resize(keep_top ? size_t(K) : 0);
    }
    const Vec window_max = x.cwiseAbs().colwise().maxCoeff().transpose();
    absmax = absmax.cwiseMax(window_max);
    max_sum += window_max;
    ++windows;
    if (keep_top)
      for (long t = 0; t < x.rows(); ++t)
        for (long k = 0; k < K; ++k) push_top(top[size_t(k)], std::fabs(x(t, k)));
    for (long t = 0; t < x.rows(); ++t)
      if ((tokens + t) % stride == 0 && int(rows.size()) < max_rows) rows.push_back(x.row(t));
    tokens += x.rows();
  }

  void push_top(std::priority_queue<float, std::vector<float>, std::greater<float>>& h, float a) const {
    if (h.size() < keep_top) {
      h.push(a);
    } else if (a > h.top()) {
      h.pop();
      h.push(a);
    }
  }

  ChannelStats finish(double p) {
    ChannelStats st;
    st.absmax = absmax;
    st.seq_mean_max = max_sum / float(std::max(windows, 1));
    st.tokens = tokens;
    st.windows = windows;
    if (keep_top) {
      // The heap holds the n − lo largest values: its smallest is the value at ascending index
      // lo, the next one up the value at lo + 1.
      const PercentilePosition pos = percentile_position(size_t(std::max(tokens, 1L)), p);
      const size_t keep = values_to_keep(tokens, p);
      st.percentile.resize(absmax.size());
      for (long k = 0; k < absmax.size(); ++k) {
        auto& h = top[size_t(k)];
        while (h.size() > keep) h.pop();
        if (h.empty()) {
          st.percentile[k] = 0.f;
          continue;
        }
        const float at_lo = h.top();
        h.pop();
        st.percentile[k] = interpolate(at_lo, h.empty() ? at_lo : h.top(), pos.frac);
      }
    }
    st.rows.resize(long(rows.size()), absmax.size());
    for (size_t i = 0; i < rows.size(); ++i) st.rows.row(long(i)) = rows[i];
    return st;
  }
};

}  // namespace

ChannelStatsMap collect_channel_stats(Model& m, const std::vector<std::vector<int>>& windows,
                                      const ChannelStatsOptions& opt) {
  long total = 0;
  for (const auto& w : windows) total += long(w.size());
  if (opt.percentile > 100)
    throw std::invalid_argument(fmt::format("flattenquant: percentile must be in (0, 100], got {}", opt.percentile));
  const size_t keep_top = opt.percentile > 0 ? values_to_keep(total, opt.percentile) : 0;
  const long stride = opt.max_rows > 0 ? std::max(1L, (total + opt.max_rows - 1) / opt.max_rows) : total + 1;

  std::map<int, Collector> acc;
  forward_with_site_hook(m, windows, [&](const SiteId& id, const Mat& x) {
    const SiteId lead = input_leader(id);
    if (lead.role != id.role) return;  // the leader already saw this tensor
    Collector& c = acc[site_key(id)];
    c.keep_top = keep_top;
    c.add(x, stride, opt.max_rows);
  });

  ChannelStatsMap out;
  for (auto& [key, c] : acc) out[key] = c.finish(opt.percentile);
  return out;
}

}  // namespace fb

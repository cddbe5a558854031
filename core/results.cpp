#include "core/results.h"

#include <algorithm>
#include <cmath>

namespace fb {

namespace {
std::string number_word(double v) { return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }
}  // namespace

std::string non_finite_problem(const Metric& m) {
  if (!std::isfinite(m.value)) return "metric '" + m.name + "' is " + number_word(m.value);
  for (size_t i = 0; i < m.samples.size(); ++i)
    if (!std::isfinite(m.samples[i]))
      return "metric '" + m.name + "' repetition " + std::to_string(i + 1) + " of " + std::to_string(m.samples.size()) +
             " is " + number_word(m.samples[i]);
  return "";
}

std::string non_finite_problem(const JobResult& r) {
  for (const Metric& m : r.metrics)
    if (auto why = non_finite_problem(m); !why.empty()) return why;
  return "";
}

Summary summarise(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / n;
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.stddev = n > 1 ? std::sqrt(ss / (n - 1)) : 0;
  return s;
}

std::string gemm_metric_name(const GemmRecord& g) {
  return "ms/" + g.backend + "/" + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k);
}

Metric& add_gemm_metric(JobResult& result, const GemmRecord& g) {
  Metric& m = result.add(gemm_metric_name(g), g.median_ms, "ms");
  m.n = g.reps;
  m.samples = g.samples_ms;
  m.stddev = summarise(g.samples_ms).stddev;
  return m;
}

}  // namespace fb

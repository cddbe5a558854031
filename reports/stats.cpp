#include "reports/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace fb {

namespace {

// Midranks of a ∪ b (ties share the mean of their ranks); returns Σ ranks of a and the tie term Σ(t³ − t).
void rank_sums(const std::vector<double>& a, const std::vector<double>& b, double& rank_sum_a, double& tie_term) {
  std::vector<std::pair<double, int>> all;  // value, 0 = from a
  for (double x : a) all.push_back({x, 0});
  for (double x : b) all.push_back({x, 1});
  std::sort(all.begin(), all.end());
  rank_sum_a = 0;
  tie_term = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    double t = static_cast<double>(j - i), midrank = (i + 1 + j) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (all[k].second == 0) rank_sum_a += midrank;
    tie_term += t * t * t - t;
    i = j;
  }
}

// Number of arrangements of n1 + n2 items with U = u, for every u (the exact null distribution):
// c(n1, n2, u) = c(n1 − 1, n2, u − n2) + c(n1, n2 − 1, u).
std::vector<double> u_counts(int n1, int n2) {
  // table[i][j] = distribution for (i, j), built up row by row.
  std::vector<std::vector<std::vector<double>>> c(n1 + 1, std::vector<std::vector<double>>(n2 + 1));
  for (int i = 0; i <= n1; ++i)
    for (int j = 0; j <= n2; ++j) {
      auto& d = c[i][j];
      d.assign(i * j + 1, 0.0);
      if (i == 0 || j == 0) {
        d[0] = 1;
        continue;
      }
      for (size_t u = 0; u < c[i - 1][j].size(); ++u) d[u + j] += c[i - 1][j][u];
      for (size_t u = 0; u < c[i][j - 1].size(); ++u) d[u] += c[i][j - 1][u];
    }
  return c[n1][n2];
}

constexpr int kExactMaxN = 20;  // exact distribution when n1, n2 ≤ this and no ties (tables stay tiny)

}  // namespace

UTestResult mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b, UMethod method) {
  UTestResult r;
  const double n1 = static_cast<double>(a.size()), n2 = static_cast<double>(b.size());
  if (a.empty() || b.empty()) return r;
  double rank_sum_a = 0, tie_term = 0;
  rank_sums(a, b, rank_sum_a, tie_term);
  r.u = rank_sum_a - n1 * (n1 + 1) / 2;
  const double n = n1 + n2, mean = n1 * n2 / 2;
  bool small = a.size() <= kExactMaxN && b.size() <= kExactMaxN;
  if (tie_term == 0 && method != UMethod::Normal && small) {
    auto counts = u_counts(static_cast<int>(a.size()), static_cast<int>(b.size()));
    double total = std::accumulate(counts.begin(), counts.end(), 0.0);
    // Two-sided: twice the smaller tail, the convention of scipy's exact method.
    double u_small = std::min(r.u, n1 * n2 - r.u), tail = 0;
    for (size_t u = 0; u < counts.size() && u <= u_small; ++u) tail += counts[u];
    r.p = std::min(1.0, 2 * tail / total);
    r.exact = true;
    return r;
  }
  double var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)));
  if (var <= 0) return r;  // every value identical: no evidence of a difference
  double z = (std::fabs(r.u - mean) - 0.5) / std::sqrt(var);
  r.p = std::min(1.0, std::erfc(std::max(z, 0.0) / std::sqrt(2.0)));
  return r;
}

double geomean(const std::vector<double>& values) {
  double log_sum = 0;
  int n = 0;
  for (double v : values)
    if (v > 0 && std::isfinite(v)) {
      log_sum += std::log(v);
      ++n;
    }
  return n ? std::exp(log_sum / n) : NAN;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

}  // namespace fb

// Statistics for regression checks: the two-sided Mann-Whitney U test (what google
// benchmark's compare.py, asv and LNT run on repetition samples) and geometric means.
#pragma once

#include <vector>

namespace fb {

struct UTestResult {
  double u = 0;        // U of the first sample
  double p = 1;        // two-sided p-value
  bool exact = false;  // exact distribution (small samples without ties) or normal approximation
};

// Two-sided Mann-Whitney U test of a vs b. Exact when both samples are small and have no ties;
// otherwise the normal approximation with tie correction and continuity correction (scipy's
// `mannwhitneyu(method="asymptotic")`). p = 1 when either sample is empty.
// Auto and Exact use the exact distribution for n1, n2 <= 20 without ties, the normal approximation otherwise.
enum class UMethod { Auto, Exact, Normal };
UTestResult mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b, UMethod method = UMethod::Auto);

// Geometric mean of positive values (non-positive ones are skipped); NaN when none is left.
double geomean(const std::vector<double>& values);
double median(std::vector<double> values);

}  // namespace fb

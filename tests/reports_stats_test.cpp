// Mann-Whitney U against published values (scipy.stats.mannwhitneyu's documentation example) and
// hand-computed tie-corrected cases; geometric mean and median.
#include "reports/stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace fb {
namespace {

// scipy docs: male = [19, 22, 16, 29, 24], female = [20, 11, 17, 12] → U1 = 17,
// exact p = 0.1111111111111111, asymptotic (continuity-corrected) p = 0.11134688653314041.
const std::vector<double> kMale = {19, 22, 16, 29, 24}, kFemale = {20, 11, 17, 12};

TEST(ReportStats, ExactUMatchesScipyForSmallSamplesWithoutTies) {
  UTestResult r = mann_whitney_u(kMale, kFemale);
  EXPECT_TRUE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 17);
  EXPECT_NEAR(r.p, 1.0 / 9.0, 1e-12);
  UTestResult sep = mann_whitney_u({1, 2, 3}, {4, 5, 6});  // most extreme of 20 arrangements, two-sided: 2/20
  EXPECT_DOUBLE_EQ(sep.u, 0);
  EXPECT_NEAR(sep.p, 0.1, 1e-12);
}

TEST(ReportStats, NormalApproximationMatchesScipyAsymptotic) {
  UTestResult r = mann_whitney_u(kMale, kFemale, UMethod::Normal);
  EXPECT_FALSE(r.exact);
  EXPECT_NEAR(r.p, 0.11134688653314041, 1e-9);
}

TEST(ReportStats, TiesUseTheTieCorrectedVariance) {
  // Ranks of {1,2,2,3} in {1,2,2,3,3,4,4,5}: 1, 2.5, 2.5, 4.5 → U = 0.5; three tied pairs: Σ(t³−t) = 18;
  // var = 4·4/12·(9 − 18/56), z = (7.5 − 0.5)/√var = 2.0578 → p = 0.0396087.
  UTestResult r = mann_whitney_u({1, 2, 2, 3}, {3, 4, 4, 5});
  EXPECT_FALSE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 0.5);
  EXPECT_NEAR(r.p, 0.0396087046, 1e-8);
}

TEST(ReportStats, LargeSamplesSwitchToTheNormalApproximation) {
  std::vector<double> a, b;
  for (int i = 1; i <= 25; ++i) a.push_back(i), b.push_back(25 + i);
  UTestResult r = mann_whitney_u(a, b);
  EXPECT_FALSE(r.exact);
  EXPECT_NEAR(r.p, 1.4156562e-9, 1e-13);
  EXPECT_NEAR(mann_whitney_u(b, a).p, r.p, 1e-15);  // symmetric
}

TEST(ReportStats, IdenticalOrEmptySamplesGiveNoEvidence) {
  EXPECT_DOUBLE_EQ(mann_whitney_u({2, 2, 2}, {2, 2, 2}).p, 1);
  EXPECT_DOUBLE_EQ(mann_whitney_u({}, {1, 2}).p, 1);
}

TEST(ReportStats, GeomeanAndMedian) {
  EXPECT_NEAR(geomean({2, 8}), 4, 1e-12);
  EXPECT_NEAR(geomean({0.5, 2, -1}), 1, 1e-12);  // non-positive values are skipped
  EXPECT_TRUE(std::isnan(geomean({})));
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(median({4, 1, 2, 3}), 2.5);
}

}  // namespace
}  // namespace fb

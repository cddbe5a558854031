// FlattenQuant's outlier suppression at the default calibration size (32 × 256 = 8,192 tokens):
// the percentile statistic must not collapse to the channel maximum there, so suppress on and
// off give different flatten plans and static ranges on a model with outliers.
#include "methods/flattenquant/channel_stats.h"
#include "method_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace fb {
namespace {

// numpy.percentile / torch.quantile's default ("linear"): sort ascending, h = (n − 1)·p/100,
// interpolate between the values at ⌊h⌋ and ⌈h⌉.
double linear_percentile_reference(std::vector<float> v, double p) {
  std::sort(v.begin(), v.end());
  const double h = double(v.size() - 1) * p / 100.0;
  const size_t lo = size_t(std::floor(h)), hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (h - double(lo)) * (double(v[hi]) - double(v[lo]));
}

TEST(FlattenQuantSuppress, PercentileOfAFewOutlierTokensIsNotTheirMaximum) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> bulk(0.f, 1.f);
  std::vector<float> channel(8192 - 3);
  for (float& x : channel) x = bulk(rng);
  for (float spike : {40.f, 60.f, 100.f}) channel.push_back(spike);  // three outlier tokens
  std::shuffle(channel.begin(), channel.end(), rng);
  const double p = channel_percentile(channel, 99.99);
  EXPECT_NEAR(p, linear_percentile_reference(channel, 99.99), 1e-4);
  EXPECT_LT(p, 100.0) << "at 8,192 tokens the 99.99th percentile must not be the maximum";
  EXPECT_GT(p, 60.0);
  EXPECT_FLOAT_EQ(channel_percentile(channel, 100.0), 100.f);
  EXPECT_FLOAT_EQ(channel_percentile({3.f}, 99.99), 3.f);
}

// The collector's percentile (from the top values it keeps) equals the definition on all rows.
TEST(FlattenQuantSuppress, CollectorPercentileMatchesTheDefinitionAtTheDefaultSize) {
  Model m = test::tiny_synthetic("llama-tiny", 9, /*outlier_channels=*/2);
  std::mt19937_64 rng(1);
  std::vector<std::vector<int>> windows(32, std::vector<int>(256));
  for (auto& w : windows)
    for (int& t : w) t = int(rng() % uint64_t(m.cfg.vocab_size));
  ChannelStatsOptions opt;
  opt.percentile = 99.99;
  opt.max_rows = 8192;  // every row, for the comparison
  const ChannelStatsMap stats = collect_channel_stats(m, windows, opt);
  int below_max = 0, channels = 0;
  for (const auto& [key, st] : stats) {
    ASSERT_EQ(st.tokens, 8192);
    ASSERT_EQ(st.rows.rows(), 8192);
    for (long k = 0; k < st.rows.cols(); ++k) {
      std::vector<float> col(8192);
      for (long t = 0; t < 8192; ++t) col[size_t(t)] = std::fabs(st.rows(t, k));
      EXPECT_NEAR(st.percentile[k], linear_percentile_reference(col, 99.99), 1e-5 * st.absmax[k]);
      below_max += st.percentile[k] < st.absmax[k];
      ++channels;
    }
  }
  EXPECT_GT(below_max, channels / 2) << "the statistic must differ from the maximum at 8,192 tokens";
}

TEST(FlattenQuantSuppress, SuppressionChangesThePlanAtTheDefaultCalibrationSize) {
  auto run = [](bool suppress) {
    Model m = test::tiny_synthetic("llama-tiny", 9, /*outlier_channels=*/2);
    // calib_samples and calib_seqlen stay at their defaults: 32 × 256 tokens.
    return test::run_method("flattenquant", m, nullptr,
                            {{"suppress", suppress}, {"bits_mode", "int8"}, {"w_quantizer", "rtn"},
                             {"check_windows", 0}, {"calib_rows", 256}, {"beta", 0.5}});
  };
  const JobResult on = run(true), off = run(false);
  ASSERT_EQ(test::metric(on, "calib_tokens"), 8192);
  ASSERT_EQ(on.sites.size(), off.sites.size());
  int changed = 0;
  for (size_t i = 0; i < on.sites.size(); ++i) {
    const SiteRecord &a = on.sites[i], &b = off.sites[i];
    ASSERT_EQ(a.role, b.role);
    changed += a.extra["range"].get<double>() != b.extra["range"].get<double>() || a.k_flat != b.k_flat ||
               a.a_scale != b.a_scale;
  }
  EXPECT_GT(changed, 0) << "suppress true and false gave identical plans and static ranges";
}

}  // namespace
}  // namespace fb

// Regression checks on a DB with known history: an injected 20% slowdown is flagged, noise of the
// same spread is not; PPL and throughput follow their own directions and thresholds; only the same
// machine's history counts; `flatbench nightly` runs a sweep twice and exits 0 / 1 as it should.
#include "reports/regression.h"

#include "reports/nightly.h"
#include "reports_test_util.h"
#include "store_rows_test_util.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace fb {
namespace {

using test::make_spec;
using test::metric;
using test::noisy;

constexpr const char* kLatency = "ms/openblas_fp32/256x768x768";

class NightlyCheck : public ::testing::Test {
 protected:
  test::ReportDb db;
  json spec = make_spec("stories260K", "rtn", {{"w_bits", 8}}, "ppl");

  // Four earlier runs on hostA: latency ≈ 10 ms (±10% spread, 9 repetitions), PPL 10, 500 tok/s.
  void SetUp() override {
    for (int r = 0; r < 4; ++r) {
      std::string run = db.run("hostA", "abc1234", "2026-11-1" + std::to_string(r) + "T02:00:00.000Z");
      record(run, noisy(10, 0.2, 9, r + 1), 10.0, 500);
    }
  }

  long record(const std::string& run, std::vector<double> ms, double ppl, double tok_s) {
    JobResult res;
    res.metrics = {metric(kLatency, ms.empty() ? 0 : ms[0], "ms", ms), metric("ppl", ppl),
                   metric("tok_per_s", tok_s, "tok/s", noisy(tok_s, 0.02, 5, 99))};
    return db.job(run, spec, res, "stories260K rtn(w_bits=8) ppl");
  }

  const Finding& find(const CheckReport& rep, const std::string& name) {
    for (const auto& f : rep.findings)
      if (f.metric == name) return f;
    throw std::runtime_error("no finding for " + name);
  }

  CheckReport check_new_run(std::vector<double> ms, double ppl, double tok_s, const std::string& host = "hostA") {
    std::string run = db.run(host, "def5678", "2026-11-20T02:00:00.000Z");
    record(run, std::move(ms), ppl, tok_s);
    return check_run(db.store, run, CheckOptions{});
  }
};

TEST_F(NightlyCheck, FlagsAnInjectedTwentyPercentSlowdown) {
  auto rep = check_new_run(noisy(12, 0.2, 9, 77), 10.0, 500);
  const Finding& f = find(rep, kLatency);
  EXPECT_EQ(f.verdict, "regression");
  EXPECT_LT(f.p, 0.01);
  EXPECT_NEAR(f.change, 0.2, 0.1);  // medians of 9 noisy repetitions
  EXPECT_EQ(f.n_baseline, 36);
  EXPECT_EQ(f.n_current, 9);
  EXPECT_EQ(rep.count("regression"), 1);
  std::string md = rep.markdown(db.store, CheckOptions{});
  EXPECT_NE(md.find("**1 regressions**"), std::string::npos) << md;
  EXPECT_NE(md.find(kLatency), std::string::npos);
}

TEST_F(NightlyCheck, IgnoresNoiseOfTheSameSpread) {
  for (uint32_t seed = 100; seed < 120; ++seed) {
    auto rep = check_new_run(noisy(10, 0.2, 9, seed), 10.0, 500);
    EXPECT_EQ(find(rep, kLatency).verdict, "unchanged") << "seed " << seed;
    EXPECT_EQ(rep.count("regression"), 0);
  }
}

TEST_F(NightlyCheck, NoisierRunsWithoutAShiftAreNotFlaggedEither) {
  auto rep = check_new_run(noisy(10, 0.4, 9, 5), 10.0, 500);  // twice the spread, same centre
  EXPECT_EQ(find(rep, kLatency).verdict, "unchanged");
}

TEST_F(NightlyCheck, SpeedupIsAnImprovementNotARegression) {
  auto rep = check_new_run(noisy(8, 0.2, 9, 3), 10.0, 500);
  EXPECT_EQ(find(rep, kLatency).verdict, "improvement");
  EXPECT_EQ(rep.count("regression"), 0);
}

TEST_F(NightlyCheck, PplUsesItsOwnMinimumChange) {
  EXPECT_EQ(find(check_new_run(noisy(10, 0.2, 9, 8), 10.02, 500), "ppl").verdict, "unchanged");  // 0.2% < 0.5%
  EXPECT_EQ(find(check_new_run(noisy(10, 0.2, 9, 9), 10.1, 500), "ppl").verdict, "regression");   // 1% worse
  EXPECT_EQ(find(check_new_run(noisy(10, 0.2, 9, 10), 9.8, 500), "ppl").verdict, "improvement");
}

TEST_F(NightlyCheck, ThroughputPrefersHigher) {
  EXPECT_EQ(find(check_new_run(noisy(10, 0.2, 9, 11), 10.0, 400), "tok_per_s").verdict, "regression");
  EXPECT_EQ(find(check_new_run(noisy(10, 0.2, 9, 12), 10.0, 600), "tok_per_s").verdict, "improvement");
}

TEST_F(NightlyCheck, OnlyTheSameMachineCountsAsHistory) {
  auto rep = check_new_run(noisy(30, 0.2, 9, 13), 10.0, 500, "hostB");  // 3x slower, but on another machine
  EXPECT_EQ(find(rep, kLatency).verdict, "new");
  EXPECT_EQ(rep.count("regression"), 0);
}

TEST(ReportJudge, DeterministicMetricsCompareTheirValueNotTheirPerWindowSamples) {
  // mean_nll carries per-window NLLs as samples; those are not repetitions. A 1% higher mean is a regression
  // even though the window samples are identical.
  std::vector<double> windows = noisy(4.8, 0.5, 200, 1);
  Metric past = metric("mean_nll", 4.80, "nats", windows), now = metric("mean_nll", 4.848, "nats", windows);
  Finding f = judge(now, {past, past}, CheckOptions{});
  EXPECT_EQ(f.test, "deterministic");
  EXPECT_DOUBLE_EQ(f.baseline, 4.80);
  EXPECT_EQ(f.verdict, "regression");
  EXPECT_EQ(f.n_current, 1);
}

TEST(ReportPolicy, DirectionsAndThresholds) {
  EXPECT_EQ(metric_policy("ms/x/1x1x1", "ms").better, Better::Lower);
  EXPECT_DOUBLE_EQ(metric_policy("ms/x/1x1x1", "ms").min_change, 0.05);
  EXPECT_EQ(metric_policy("ppl", "").better, Better::Lower);
  EXPECT_DOUBLE_EQ(metric_policy("ppl", "").min_change, 0.005);
  EXPECT_EQ(metric_policy("tok_per_s", "tok/s").better, Better::Higher);
  EXPECT_EQ(metric_policy("acc_norm", "").better, Better::Higher);
  EXPECT_EQ(metric_policy("mem_total", "bytes").better, Better::Lower);
  EXPECT_EQ(metric_policy("int4_share_layers", "").better, Better::Neither);
}

// The whole command: a sweep run twice (selftest evaluator, deterministic values) has nothing to flag;
// a check of a run with an injected slowdown exits 1 and writes the report.
TEST(ReportNightlyCommand, RunsTheSweepTwiceAndThenFlagsAnInjectedSlowdown) {
  test::TempDir dir;
  std::ofstream(dir / "nightly.yaml") << "name: nightly-test\nevaluations:\n  - name: selftest\n    metrics: 2\n";
  NightlyOptions opt;
  opt.config = dir / "nightly.yaml";
  opt.db = dir / "n.db";
  opt.report = dir / "report.md";
  opt.quiet = true;
  std::ostringstream log;
  EXPECT_EQ(run_nightly(opt, log), 0) << log.str();
  EXPECT_EQ(run_nightly(opt, log), 0) << log.str();
  std::ifstream in(opt.report);
  std::string md((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(md.find("**0 regressions**"), std::string::npos) << md;
  EXPECT_NE(md.find("value_1"), std::string::npos) << md;
  {
    Store store(opt.db);
    EXPECT_EQ(test::rows_with_status(store, "done").size(), 2u);  // force: one fresh row per nightly
  }

  test::ReportDb db;
  json spec = make_spec("", "", json::object(), "gemm");
  for (int r = 0; r < 3; ++r) {
    JobResult res;
    res.metrics = {metric(kLatency, 10, "ms", noisy(10, 0.1, 9, r))};
    db.job(db.run("hostA", "abc", "2026-11-1" + std::to_string(r) + "T00:00:00.000Z"), spec, res);
  }
  JobResult slow;
  slow.metrics = {metric(kLatency, 12, "ms", noisy(12, 0.1, 9, 42))};
  std::string run = db.run("hostA", "def", "2026-11-20T00:00:00.000Z");
  db.job(run, spec, slow);
  NightlyOptions check;
  check.check_only = true;
  check.db = db.path;
  check.report = dir / "slow.md";
  EXPECT_EQ(run_nightly(check, log), 1);
  std::ifstream slow_in(check.report);
  std::string slow_md((std::istreambuf_iterator<char>(slow_in)), std::istreambuf_iterator<char>());
  EXPECT_NE(slow_md.find("| regression |"), std::string::npos) << slow_md;
  EXPECT_NE(slow_md.find("commit def"), std::string::npos);
}

}  // namespace
}  // namespace fb

// `flatbench compare`: runs and commits resolve by prefix; ratios, verdicts and geometric means
// come out of known values.
#include "reports/compare.h"

#include "reports_test_util.h"

#include <gtest/gtest.h>

namespace fb {
namespace {

using test::make_spec;
using test::metric;
using test::noisy;

class ReportCompare : public ::testing::Test {
 protected:
  test::ReportDb db;
  std::string a = db.run("hostA", "aaaa1111", "2026-11-20T00:00:00.000Z");
  std::string b = db.run("hostA", "bbbb2222", "2026-11-21T00:00:00.000Z");
  json spec = make_spec("stories260K", "rtn", {{"w_bits", 4}}, "ppl");
  json other = make_spec("stories260K", "fp16", json::object(), "ppl");

  void SetUp() override {
    JobResult ra, rb, only_a;
    ra.metrics = {metric("ms/x", 10, "ms", noisy(10, 0.02, 9, 1)), metric("ppl", 5), metric("tok_per_s", 100, "tok/s")};
    rb.metrics = {metric("ms/x", 8, "ms", noisy(8, 0.02, 9, 2)), metric("ppl", 5.5), metric("tok_per_s", 100, "tok/s")};
    only_a.metrics = {metric("ppl", 4)};
    db.job(a, spec, ra, "rtn job");
    db.job(b, spec, rb, "rtn job");
    db.job(a, other, only_a, "fp16 job");  // only in A: not compared
  }

  static const std::vector<std::string>& row(const Table& t, const std::string& metric_name) {
    for (const auto& r : t.rows)
      if (r[1] == metric_name) return r;
    throw std::runtime_error("no row for " + metric_name);
  }
};

TEST_F(ReportCompare, RatiosVerdictsAndGeomeanOfTwoRuns) {
  auto tables = compare_tables(db.store, a.substr(0, 6), b.substr(0, 6));
  ASSERT_EQ(tables.size(), 2u);
  const Table& t = tables[0];
  EXPECT_EQ(t.rows.size(), 3u);  // the fp16 job ran only in A
  EXPECT_EQ(row(t, "ppl")[5], "1.1");
  EXPECT_EQ(row(t, "ppl")[8], "worse");
  EXPECT_EQ(row(t, "tok_per_s")[8], "");  // no change
  const auto& ms = row(t, "ms/x");
  EXPECT_NEAR(std::stod(ms[5]), 0.8, 0.01);
  EXPECT_EQ(ms[8], "better");
  EXPECT_LT(std::stod(ms[7]), 0.001);  // p of the U test on 9 vs 9 repetitions
  const Table& g = tables[1];
  // lower is better: ms/x ≈ 0.8 and ppl 1.1 → √0.88 ≈ 0.938; all three: ∛0.88 ≈ 0.958
  EXPECT_NEAR(std::stod(g.rows[1][2]), std::sqrt(0.8 * 1.1), 0.005);
  EXPECT_NEAR(std::stod(g.rows[0][2]), std::cbrt(0.8 * 1.1), 0.005);
  EXPECT_EQ(g.rows[2][2], "1");
}

TEST_F(ReportCompare, CommitsResolveToTheirRuns) {
  auto tables = compare_tables(db.store, "aaaa", "bbbb");
  EXPECT_NE(tables[0].title.find("commit aaaa (1 run)"), std::string::npos) << tables[0].title;
  EXPECT_EQ(tables[0].rows.size(), 3u);
}

TEST_F(ReportCompare, UnknownOrAmbiguousReferencesAreClearErrors) {
  EXPECT_THROW(compare_tables(db.store, "zzzz", "bbbb"), std::invalid_argument);
  std::string c = db.run("hostA", "cccc", "2026-11-22T00:00:00.000Z");
  (void)c;
  try {
    compare_tables(db.store, "", "bbbb");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos);
  }
}

}  // namespace
}  // namespace fb

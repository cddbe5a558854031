// One bad value must not poison the database: a NaN/Inf metric fails its job instead of being
// stored; a row an older binary stored with a NULL metric (SQLite stores a NaN bind as NULL) is
// flagged by every reader — show, report, dashboard — which keep going, and merge leaves it out.
#include "cli_test_util.h"
#include "harness/config.h"
#include "harness/runner.h"
#include "harness/store.h"
#include "reports/compare.h"
#include "reports/dashboard.h"
#include "reports/regression.h"
#include "reports/query.h"
#include "reports/summary.h"
#include "reports/tables.h"
#include "reports_test_util.h"
#include "runner_test_util.h"
#include "store_rows_test_util.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace fb {
namespace {

using test::CliResult;
using test::run_flatbench;
using test::TempDir;

constexpr const char* kBadKey = "bad0bad0bad0bad0bad0bad0bad0bad0";
constexpr const char* kBadLabel = "stories260K smoothquant(alpha=nan) ppl";

// A DB holding one good job (ppl 12.5) and, written as flatbench at 8360576 wrote a NaN result,
// one done job whose PPL value and stddev are NULL and whose repetitions are JSON nulls.
struct BadDb : test::ReportDb {
  std::string run_uuid = run();
  long good_id = job(run_uuid, test::make_spec("stories260K", "fp16", json::object(), "ppl"),
                     [] {
                       JobResult r;
                       r.metrics.push_back(test::metric("ppl", 12.5, "", {12.4, 12.6}));
                       return r;
                     }(),
                     "stories260K fp16 ppl");
  std::string good_key = test::rows_with_id(store, good_id).front().key;

  BadDb() {
    json spec = test::make_spec("stories260K", "smoothquant", {{"alpha", nullptr}}, "ppl");
    test::raw_sql(path, "INSERT INTO jobs(run_uuid, key, model, method, evaluation, label, spec, status, synthetic, "
                        "started_at, ended_at, duration_s) VALUES ('" + run_uuid + "', '" + kBadKey +
                        "', 'stories260K', 'smoothquant', 'ppl', '" + kBadLabel + "', '" + spec.dump() +
                        "', 'done', 0, '2026-11-20T10:01:00.000Z', '2026-11-20T10:02:00.000Z', 1.5);"
                        "INSERT INTO metrics(job_id, name, value, unit, n, stddev, samples) VALUES "
                        "(last_insert_rowid(), 'ppl', NULL, '', 2, NULL, '[null,null]'), "
                        "(last_insert_rowid(), 'method_seconds', 0.25, 's', 1, 0, NULL);");
  }
  long bad_id() const { return test::rows_of_key(store, kBadKey).front().id; }
};

int occurrences(const std::string& text, const std::string& word) {
  int n = 0;
  for (size_t p = text.find(word); p != std::string::npos; p = text.find(word, p + 1)) ++n;
  return n;
}

TEST(BadRows, NonFiniteProblemNamesTheMetricAndTheRepetition) {
  EXPECT_EQ(non_finite_problem(Metric{"ppl", 12.5}), "");
  EXPECT_EQ(non_finite_problem(Metric{"ppl", NAN}), "metric 'ppl' is nan");
  EXPECT_EQ(non_finite_problem(Metric{"tok_s", -INFINITY}), "metric 'tok_s' is -inf");
  Metric reps{"ms", 1.0, "ms", 3, 0.1, {1.0, INFINITY, 1.1}};
  EXPECT_EQ(non_finite_problem(reps), "metric 'ms' repetition 2 of 3 is inf");
  JobResult r;
  r.add("fine", 1.0);
  r.add("acc", NAN);
  EXPECT_EQ(non_finite_problem(r), "metric 'acc' is nan");
}

TEST(BadRows, ANaNMetricFailsItsJobWithAMessageNamingIt) {
  TempDir dir;
  auto cfg_path = test::write_text(dir / "s.yaml", "evaluations:\n  - name: selftest\n    metrics: 2\n");
  Config cfg = load_config(cfg_path, dir.path);
  ASSERT_EQ(cfg.jobs.size(), 1u);
  // No config can ask for this any more (validation refuses nan); a method or model still can produce one.
  cfg.jobs[0].spec.eval.params["value"] = std::nan("");
  RunOptions opt;
  opt.db_path = dir / "r.db";
  opt.quiet = true;
  std::ostringstream out;
  RunCounts c = test::run_and_print(cfg, opt, out);
  EXPECT_EQ(c.failed, 1);
  EXPECT_EQ(c.ran, 0);
  Store store(opt.db_path, true);
  auto rows = store.jobs();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, "failed");
  EXPECT_NE(rows[0].error.find("metric 'value_0' is nan"), std::string::npos) << rows[0].error;
  EXPECT_TRUE(store.metrics(rows[0].id).empty()) << "nothing of a failed job is stored";
}

// A real model whose layer-0 query weights are NaN: its PPL job ends failed, naming the metric.
TEST(BadRows, NaNWeightsFailThePplJobNamingTheMetric) {
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  TempDir dir;
  std::filesystem::create_directories(dir / "m");
  std::filesystem::copy_file(test::data_dir() / "stories260K/tok512.model", dir / "m/tok512.model");
  {
    std::ifstream in(test::data_dir() / "stories260K/stories260K.bin", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    int32_t header[7];
    std::memcpy(header, bytes.data(), sizeof header);
    const long dim = header[0], layers = header[2], vocab = std::abs(header[5]);
    const long wq_offset = sizeof header + 4 * (vocab * dim + layers * dim);  // after embeddings and rms_att
    const float nan = std::nanf("");
    for (long i = 0; i < dim * dim; ++i) std::memcpy(bytes.data() + wq_offset + 4 * i, &nan, 4);
    std::ofstream(dir / "m/poisoned.bin", std::ios::binary) << bytes;
  }
  auto cfg_path = test::write_text(dir / "s.yaml",
                                   "models:\n  - name: poisoned\n    format: llama2c\n    path: m/poisoned.bin\n"
                                   "    tokenizer: m/tok512.model\nmethods:\n  - name: fp16\n"
                                   "evaluations:\n  - name: ppl\n    dataset: wikitext2\n    seqlen: 64\n"
                                   "    max_windows: 2\n");
  if (!std::filesystem::exists(test::data_dir() / "wikitext2")) GTEST_SKIP() << "no WikiText-2 in the data dir";
  std::filesystem::create_directory_symlink(std::filesystem::absolute(test::data_dir() / "wikitext2"),
                                            dir / "wikitext2");
  RunOptions opt;
  opt.db_path = dir / "r.db";
  opt.quiet = true;
  std::ostringstream out;
  RunCounts c = test::run_and_print(load_config(cfg_path, dir.path), opt, out);
  EXPECT_EQ(c.failed, 1);
  Store store(opt.db_path, true);
  auto rows = store.jobs();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, "failed");
  EXPECT_NE(rows[0].error.find("'ppl'"), std::string::npos) << rows[0].error;
}

TEST(BadRows, StoreReadsANullMetricAsNaNWithoutThrowing) {
  BadDb db;
  std::vector<Metric> m;
  ASSERT_NO_THROW(m = db.store.metrics(db.bad_id()));
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].name, "ppl");
  EXPECT_TRUE(std::isnan(m[0].value)) << "NULL must not read as 0, a plausible number";
  ASSERT_EQ(m[0].samples.size(), 2u);
  EXPECT_TRUE(std::isnan(m[0].samples[0]));
  EXPECT_EQ(non_finite_problem(m[0]), "metric 'ppl' is nan");
}

TEST(BadRows, ReportsLeaveTheBadJobOutAndSayWhichOnce) {
  BadDb db;
  testing::internal::CaptureStderr();
  std::vector<ReportRow> latest;
  ASSERT_NO_THROW(latest = latest_rows(db.store));
  ASSERT_NO_THROW(all_rows(db.store));
  ASSERT_NO_THROW(build_tables(db.store, "all"));
  std::string html;
  ASSERT_NO_THROW(html = dashboard_html(db.store, DashboardOptions{false, 300}));
  std::string err = testing::internal::GetCapturedStderr();
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0].job.key, db.good_key);
  EXPECT_EQ(occurrences(err, std::string(kBadKey).substr(0, 12)), 1) << "one warning per bad job: " << err;
  EXPECT_NE(err.find("metric 'ppl' is nan"), std::string::npos) << err;
  // The dashboard's drill-down still lists the job, flagged.
  EXPECT_NE(html.find(std::string(kBadKey).substr(0, 12)), std::string::npos);
  EXPECT_NE(html.find("metric 'ppl' is nan"), std::string::npos);
}

TEST(BadRows, SummaryFlagsTheBadJob) {
  BadDb db;
  testing::internal::CaptureStderr();
  auto tables = summary_tables(db.store);
  testing::internal::GetCapturedStderr();
  bool flagged = false, good = false;
  for (const auto& row : tables[0].rows) {
    std::string line;
    for (const auto& c : row) line += c + " | ";
    if (line.find(std::string(kBadKey).substr(0, 12)) != std::string::npos)
      flagged = line.find("metric 'ppl' is nan") != std::string::npos;
    if (line.find(db.good_key.substr(0, 12)) != std::string::npos) good = line.find("ppl=12.5") != std::string::npos;
  }
  EXPECT_TRUE(flagged);
  EXPECT_TRUE(good);
}

// A bad row is no side of a comparison and no baseline of a regression check.
TEST(BadRows, CompareAndRegressionChecksLeaveTheBadRowOut) {
  BadDb db;
  std::string run2 = db.run("hostA", "abc1234def", "2026-11-21T10:00:00.000Z");
  JobResult bad_then_good;
  bad_then_good.metrics.push_back(test::metric("ppl", 30.0, "", {29.0, 31.0}));
  long id = db.store.start_job(run2, kBadKey, test::make_spec("stories260K", "smoothquant", {{"alpha", 0.5}}, "ppl"),
                               kBadLabel);
  db.store.finish_job(id, bad_then_good, 1.0);
  testing::internal::CaptureStderr();
  std::vector<Table> cmp;
  ASSERT_NO_THROW(cmp = compare_tables(db.store, db.run_uuid.substr(0, 8), run2.substr(0, 8)));
  CheckReport rep;
  ASSERT_NO_THROW(rep = check_run(db.store, run2.substr(0, 8), CheckOptions{}));
  testing::internal::GetCapturedStderr();
  ASSERT_FALSE(cmp.empty());
  EXPECT_TRUE(cmp[0].rows.empty()) << "run 1's only comparable job is the bad one:\n" << cmp[0].text();
  ASSERT_EQ(rep.findings.size(), 1u);  // run2's ppl, judged with no history (the bad row is none)
  EXPECT_EQ(rep.findings[0].key, kBadKey);
  EXPECT_EQ(rep.findings[0].n_baseline, 0) << "the NULL row was taken as history";
}

TEST(BadRows, CliReportShowAndDashboardSucceedAndFlagTheJob) {
  BadDb db;
  const std::string bad12 = std::string(kBadKey).substr(0, 12);
  CliResult report = run_flatbench({"report", "--db", db.path.string()});
  EXPECT_EQ(report.exit_code, 0) << report.output;
  EXPECT_NE(report.output.find("metric 'ppl' is nan"), std::string::npos) << report.output;
  EXPECT_NE(report.output.find("12.5"), std::string::npos) << report.output;

  CliResult tables = run_flatbench({"report", "--table", "all", "--format", "json", "--db", db.path.string()});
  EXPECT_EQ(tables.exit_code, 0) << tables.output;
  EXPECT_NE(tables.output.find(bad12), std::string::npos) << "the bad job is named: " << tables.output;

  CliResult show = run_flatbench({"show", "bad0", "--db", db.path.string()});
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_NE(show.output.find("metric 'ppl' is nan"), std::string::npos) << show.output;
  CliResult show_json = run_flatbench({"show", "bad0", "--json", "--db", db.path.string()});
  EXPECT_EQ(show_json.exit_code, 0) << show_json.output;
  EXPECT_NE(show_json.output.find("\"warnings\""), std::string::npos) << show_json.output;

  CliResult dash =
      run_flatbench({"dashboard", "--no-plots", "--out", (db.dir / "d.html").string(), "--db", db.path.string()});
  EXPECT_EQ(dash.exit_code, 0) << dash.output;
  EXPECT_TRUE(std::filesystem::exists(db.dir / "d.html"));
}

TEST(BadRows, MergeLeavesTheBadJobOutAndNamesSourceAndJob) {
  BadDb src;
  TempDir dir;
  auto target = dir / "all.db";
  long added = 0;
  std::vector<std::string> warnings;
  {
    Store all(target);
    added = all.merge_from(src.path, &warnings);
  }
  EXPECT_EQ(added, 1) << "the good job comes in";
  EXPECT_EQ(test::sql_count(target, std::string("SELECT COUNT(*) FROM jobs WHERE key = '") + kBadKey + "'"), 0);
  EXPECT_EQ(test::sql_count(target, "SELECT COUNT(*) FROM metrics WHERE value IS NULL"), 0);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(src.path.string()), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find(std::string(kBadKey).substr(0, 12)), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("metric 'ppl' is nan"), std::string::npos) << warnings[0];

  auto target2 = dir / "cli.db";
  CliResult merge = run_flatbench({"merge", src.path.string(), "--db", target2.string()});
  EXPECT_EQ(merge.exit_code, 0) << merge.output;
  EXPECT_NE(merge.output.find(std::string(kBadKey).substr(0, 12)), std::string::npos) << merge.output;
  EXPECT_EQ(test::sql_count(target2, "SELECT COUNT(*) FROM jobs"), 1);
}

}  // namespace
}  // namespace fb

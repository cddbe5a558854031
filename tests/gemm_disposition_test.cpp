// A GEMM row carries its own disposition (passed / incorrect / not_supported, as the CUTLASS
// profiler keeps it apart from the job's status): one backend that fails its check against the
// fp32 reference no longer drops the whole gemm job, and the store keeps the verdict.
#include "harness/evaluator.h"
#include "harness/store.h"
#include "kernels/gemm_backend.h"
#include "test_util.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <random>

namespace fb {
namespace {

// A naive fp32 C = A·Bᵀ whose run() can be told to drop the last k term: a deliberately wrong
// backend whose error the real verify arithmetic (max |C − C_ref| / max |C_ref|) measures.
class NaiveProblem : public GemmProblem {
 public:
  NaiveProblem(const GemmShape& s, uint64_t seed, bool drop_last_k) : s_(s), drop_last_k_(drop_last_k) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1, 1);
    a_.resize(s.m * s.k), b_.resize(s.n * s.k), c_.resize(s.m * s.n);
    for (auto& v : a_) v = u(rng);
    for (auto& v : b_) v = u(rng);
  }
  void run() override { multiply(drop_last_k_ ? s_.k - 1 : s_.k, c_); }
  double verify() override {
    std::vector<float> want(c_.size());
    multiply(s_.k, want);
    run();
    double err = 0, scale = 0;
    for (size_t i = 0; i < want.size(); ++i)
      err = std::max(err, double(std::abs(c_[i] - want[i]))), scale = std::max(scale, double(std::abs(want[i])));
    return err / scale;
  }

 private:
  void multiply(long k_used, std::vector<float>& c) const {
    for (long i = 0; i < s_.m; ++i)
      for (long j = 0; j < s_.n; ++j) {
        float acc = 0;
        for (long l = 0; l < k_used; ++l) acc += a_[i * s_.k + l] * b_[j * s_.k + l];
        c[i * s_.n + j] = acc;
      }
  }
  GemmShape s_;
  bool drop_last_k_;
  std::vector<float> a_, b_, c_;
};

bool always() { return true; }
bool never() { return false; }

FB_REGISTER_GEMM_BACKEND({"test_naive_fp32", gemm_dtype::kFp32, "test only: a correct naive fp32 GEMM", false, always,
                          [](const GemmShape& s, uint64_t seed, int) {
                            return std::make_unique<NaiveProblem>(s, seed, false);
                          }});
FB_REGISTER_GEMM_BACKEND({"test_wrong_fp32", gemm_dtype::kFp32, "test only: a naive fp32 GEMM that drops the last k",
                          false, always, [](const GemmShape& s, uint64_t seed, int) {
                            return std::make_unique<NaiveProblem>(s, seed, true);
                          }});
FB_REGISTER_GEMM_BACKEND({"test_unavailable_fp32", gemm_dtype::kFp32, "test only: never available", false, never,
                          [](const GemmShape&, uint64_t, int) -> std::unique_ptr<GemmProblem> {
                            throw std::logic_error("prepare of an unavailable backend");
                          }});

using test::error_of;

// Runs the gemm evaluator on one small shape with these backends, as the runner does.
JobResult run_gemm_job(const json& backends) {
  const EvaluatorInfo* gemm = Registry<EvaluatorInfo>::instance().find("gemm");
  if (!gemm) throw std::logic_error("no gemm evaluator registered");
  const json params = fill_defaults(gemm->params, {{"shapes", {{4, 8, 16}}},
                                                   {"backends", backends},
                                                   {"reps", 2},
                                                   {"min_time_ms", 0.1},
                                                   {"warmup_ms", 0.0},
                                                   {"threads", 1}});
  Progress progress(true);
  const std::filesystem::path dir = test::data_dir();
  EvalContext ctx{params, dir, nullptr, nullptr, 7, progress};
  JobResult r;
  gemm->run(ctx, r);
  return r;
}

const GemmRecord& row_of(const JobResult& r, const std::string& backend) {
  auto it = std::find_if(r.gemms.begin(), r.gemms.end(), [&](const GemmRecord& g) { return g.backend == backend; });
  if (it == r.gemms.end()) throw std::logic_error("no gemm row for " + backend);
  return *it;
}

bool has_metric_of(const JobResult& r, const std::string& backend) {
  return std::any_of(r.metrics.begin(), r.metrics.end(),
                     [&](const Metric& m) { return m.name.find("/" + backend + "/") != std::string::npos; });
}

TEST(GemmDisposition, AWrongBackendIsAnIncorrectRowAndTheJobGoesOn) {
  JobResult r;
  ASSERT_EQ(error_of([&] { r = run_gemm_job({"openblas_fp32", "test_wrong_fp32", "test_naive_fp32"}); }), "");
  ASSERT_EQ(r.gemms.size(), 3u);

  const GemmRecord& wrong = row_of(r, "test_wrong_fp32");
  EXPECT_EQ(wrong.disposition, gemm_disposition::kIncorrect);
  EXPECT_GT(wrong.verify_error, wrong.verify_tolerance);
  EXPECT_EQ(wrong.verify_tolerance, 1e-4);  // GemmProblem's default bound, as verify used it before
  EXPECT_EQ(wrong.reps, 0);                 // not timed: a wrong product's latency means nothing
  EXPECT_EQ(wrong.median_ms, 0);
  EXPECT_TRUE(wrong.samples_ms.empty());
  EXPECT_FALSE(has_metric_of(r, "test_wrong_fp32"));
  ASSERT_TRUE(r.info.contains("incorrect"));
  ASSERT_EQ(r.info["incorrect"].size(), 1u);
  EXPECT_NE(r.info["incorrect"][0].get<std::string>().find("test_wrong_fp32 [4, 8, 16]"), std::string::npos)
      << r.info.dump();

  for (const char* ok : {"openblas_fp32", "test_naive_fp32"}) {
    const GemmRecord& g = row_of(r, ok);
    EXPECT_EQ(g.disposition, gemm_disposition::kPassed) << ok;
    EXPECT_LE(g.verify_error, g.verify_tolerance) << ok;
    EXPECT_EQ(g.reps, 2) << ok;
    EXPECT_GT(g.median_ms, 0) << ok;
    EXPECT_TRUE(has_metric_of(r, ok)) << ok;
  }
  EXPECT_GT(row_of(r, "test_naive_fp32").ratio_to_fp32, 0);  // against openblas_fp32, the passed baseline
}

TEST(GemmDisposition, AnUnavailableBackendIsANotSupportedRow) {
  JobResult r = run_gemm_job({"test_unavailable_fp32", "test_naive_fp32"});
  ASSERT_EQ(r.gemms.size(), 2u);
  const GemmRecord& g = row_of(r, "test_unavailable_fp32");
  EXPECT_EQ(g.disposition, gemm_disposition::kNotSupported);
  EXPECT_EQ(g.reps, 0);
  EXPECT_FALSE(has_metric_of(r, "test_unavailable_fp32"));
  EXPECT_EQ(row_of(r, "test_naive_fp32").disposition, gemm_disposition::kPassed);
}

TEST(GemmDisposition, WithoutVerifyTheDispositionIsUnknown) {
  const EvaluatorInfo* gemm = Registry<EvaluatorInfo>::instance().find("gemm");
  ASSERT_NE(gemm, nullptr);
  const json params = fill_defaults(gemm->params, {{"shapes", {{4, 8, 16}}}, {"backends", {"test_wrong_fp32"}},
                                                   {"reps", 1}, {"min_time_ms", 0.1}, {"warmup_ms", 0.0},
                                                   {"verify", false}});
  Progress progress(true);
  const std::filesystem::path dir = test::data_dir();
  EvalContext ctx{params, dir, nullptr, nullptr, 7, progress};
  JobResult r;
  gemm->run(ctx, r);
  ASSERT_EQ(r.gemms.size(), 1u);
  EXPECT_EQ(r.gemms[0].disposition, "");  // not checked: neither passed nor incorrect
  EXPECT_EQ(r.gemms[0].reps, 1);
}

TEST(GemmDisposition, AJobWhoseEveryBackendIsIncorrectFails) {
  const std::string e = error_of([] { run_gemm_job({"test_wrong_fp32"}); });
  EXPECT_NE(e.find("every backend failed verification"), std::string::npos) << e;
  EXPECT_NE(e.find("test_wrong_fp32"), std::string::npos) << e;
}

RunInfo a_run() {
  RunInfo r;
  r.uuid = new_uuid();
  r.started_at = "2026-12-01T10:00:00.000Z";
  r.provenance = json::object();
  return r;
}

JobResult rows_of_every_disposition() {
  JobResult r;
  GemmRecord ok{"cpu", "openblas_fp32", "fp32", 4, 8, 16};
  ok.reps = 1, ok.min_ms = ok.median_ms = ok.max_ms = 0.25, ok.samples_ms = {0.25};
  ok.disposition = gemm_disposition::kPassed, ok.verify_error = 2e-7, ok.verify_tolerance = 1e-4;
  GemmRecord wrong{"cpu", "test_wrong_fp32", "fp32", 4, 8, 16};
  wrong.disposition = gemm_disposition::kIncorrect, wrong.verify_error = 0.3, wrong.verify_tolerance = 1e-4;
  GemmRecord absent{"cpu", "test_unavailable_fp32", "fp32", 4, 8, 16};
  absent.disposition = gemm_disposition::kNotSupported;
  r.gemms = {ok, wrong, absent};
  return r;
}

void expect_same_verdicts(const std::vector<GemmRecord>& got, const std::vector<GemmRecord>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].backend, want[i].backend);
    EXPECT_EQ(got[i].disposition, want[i].disposition) << want[i].backend;
    EXPECT_EQ(got[i].verify_error, want[i].verify_error) << want[i].backend;
    EXPECT_EQ(got[i].verify_tolerance, want[i].verify_tolerance) << want[i].backend;
  }
}

TEST(GemmDisposition, TheStoreAndMergeKeepEachRowsVerdict) {
  test::TempDir dir;
  const RunInfo run = a_run();
  const JobResult result = rows_of_every_disposition();
  long id = 0;
  {
    Store src(dir.path / "src.db");
    src.begin_run(run);
    id = src.start_job(run.uuid, "g", json::object());
    src.finish_job(id, result, 1);
    expect_same_verdicts(src.gemms(id), result.gemms);
  }
  Store dst(dir.path / "dst.db");
  ASSERT_EQ(dst.merge_from(dir.path / "src.db"), 1);
  std::vector<JobRow> jobs = dst.jobs();
  ASSERT_EQ(jobs.size(), 1u);
  expect_same_verdicts(dst.gemms(jobs[0].id), result.gemms);
}

// Rows measured before dispositions existed claim no verdict: they read back as "" (unknown),
// both when the old file is migrated in place and when it is merged without migrating.
TEST(GemmDisposition, ASchemaTwoDatabaseGainsTheColumnWithUnknownVerdicts) {
  test::TempDir dir;
  const RunInfo run = a_run();
  {
    Store old(dir.path / "v2.db");
    old.begin_run(run);
    old.finish_job(old.start_job(run.uuid, "g", json::object()), rows_of_every_disposition(), 1);
  }
  auto downgrade_to_v2 = [&](const std::filesystem::path& path) {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &h), SQLITE_OK);
    for (const char* sql : {"ALTER TABLE gemm DROP COLUMN verify_tolerance", "ALTER TABLE gemm DROP COLUMN verify_error",
                            "ALTER TABLE gemm DROP COLUMN disposition", "PRAGMA user_version = 2"})
      EXPECT_EQ(sqlite3_exec(h, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(h);
    sqlite3_close(h);
  };
  downgrade_to_v2(dir.path / "v2.db");
  std::filesystem::copy_file(dir.path / "v2.db", dir.path / "v2-merged.db");
  std::filesystem::copy_file(dir.path / "v2.db", dir.path / "v2-read.db");

  {  // `show` and the reports open read-only: they read an old DB without changing the file
    auto bytes = [](const std::filesystem::path& p) {
      std::ifstream in(p, std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), {});
    };
    const std::string before = bytes(dir.path / "v2-read.db");
    Store reader(dir.path / "v2-read.db", /*read_only=*/true, /*leave_no_files=*/true);
    std::vector<GemmRecord> rows = reader.gemms(reader.jobs().at(0).id);
    ASSERT_EQ(rows.size(), 3u);
    for (const GemmRecord& g : rows) EXPECT_EQ(g.disposition, "") << g.backend;
    EXPECT_EQ(bytes(dir.path / "v2-read.db"), before) << "a read-only open changed the file";
  }

  Store dst(dir.path / "dst.db");
  ASSERT_EQ(dst.merge_from(dir.path / "v2-merged.db"), 1);
  for (const GemmRecord& g : dst.gemms(dst.jobs().at(0).id)) EXPECT_EQ(g.disposition, "") << g.backend;

  Store migrated(dir.path / "v2.db");
  EXPECT_EQ(migrated.schema_version(), kSchemaVersion);
  std::vector<GemmRecord> rows = migrated.gemms(migrated.jobs().at(0).id);
  ASSERT_EQ(rows.size(), 3u);
  for (const GemmRecord& g : rows) {
    EXPECT_EQ(g.disposition, "") << g.backend;
    EXPECT_TRUE(std::isnan(g.verify_error)) << g.backend;  // NULL: never measured
  }
  EXPECT_EQ(rows[0].median_ms, 0.25);  // the old row itself is intact
}

}  // namespace
}  // namespace fb

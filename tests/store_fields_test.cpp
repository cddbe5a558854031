// The store's field lists: one list per table drives its INSERT, SELECT, reader and merge, so
// the lists must name exactly the columns the migrations make, and a merge must carry every
// field of every record. Also the small queries reports use instead of SQL of their own.
#include "harness/store.h"
#include "test_util.h"

#include <sqlite3.h>

#include <cctype>
#include <set>

namespace fb {
namespace {

using test::TempDir;

// (name, declared type) of each column, as PRAGMA table_info lists them.
std::vector<std::pair<std::string, std::string>> migrated_columns(const Store& s, const std::string& table) {
  std::vector<std::pair<std::string, std::string>> out;
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(s.handle(), ("PRAGMA table_info(" + table + ")").c_str(), -1, &st, nullptr), SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW)
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 1)),
                     reinterpret_cast<const char*>(sqlite3_column_text(st, 2)));
  sqlite3_finalize(st);
  return out;
}

std::set<std::string> migrated_tables(const Store& s) {
  std::set<std::string> out;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(s.handle(), "SELECT name FROM sqlite_master WHERE type = 'table'", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) out.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  return out;
}

std::string job_info(const Store& s, long job_id) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(s.handle(), "SELECT info FROM jobs WHERE id = ?", -1, &st, nullptr);
  sqlite3_bind_int64(st, 1, job_id);
  std::string out = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)
                        ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0))
                        : "";
  sqlite3_finalize(st);
  return out;
}

TEST(StoreFields, ListsEqualTheMigratedSchemaTableByTable) {
  TempDir dir;
  Store s(dir / "fresh.db");
  std::vector<std::string> tables = store_tables();
  EXPECT_EQ(std::set<std::string>(tables.begin(), tables.end()), migrated_tables(s));
  for (const std::string& table : tables) {
    std::vector<std::pair<std::string, std::string>> listed;
    for (const StoreColumn& c : store_columns(table)) listed.emplace_back(c.name, c.type);
    EXPECT_EQ(listed, migrated_columns(s, table)) << "table " << table;
  }
  EXPECT_TRUE(store_columns("no_such_table").empty());
}

RunInfo full_run() {
  RunInfo r;
  r.uuid = new_uuid();
  r.started_at = "2026-11-30T10:00:00.000Z";
  r.provenance = {{"git", {{"commit", "0123456789abcdef"}, {"dirty", true}}}, {"host", "node7"}};
  r.config_path = "configs/sweep.yaml";
  r.config_hash = "c0ffee";
  r.config_text = "models: [a]\n";
  r.shard = "2/3";
  return r;
}

JobResult full_result() {
  JobResult res;
  res.add("ppl", 12.5, "").n = 1;
  Metric& t = res.add("ms", 3.25, "ms");
  t.n = 3;
  t.stddev = 0.5;
  t.samples = {2.75, 3.25, 3.75};
  SiteRecord site;
  site.layer = 3;
  site.role = "down";
  site.w_bits = 4;
  site.a_bits = 8;
  site.k_in = 64;
  site.k_flat = 96;
  site.k_pad = 128;
  site.w_scale = 0.125;
  site.a_scale = 0.0625;
  site.kl = 0.01;
  site.clip = 0.9;
  site.mse = 1e-4;
  site.flops = 8192;
  site.extra = {{"channels", {1, 5}}};
  res.sites.push_back(site);
  GemmRecord g;
  g.device = "cuda:H200";
  g.backend = "ours";
  g.dtype = "w4a8";
  g.m = 16;
  g.n = 32;
  g.k = 64;
  g.reps = 2;
  g.min_ms = 0.5;
  g.median_ms = 0.75;
  g.max_ms = 1;
  g.gops = 1.5;
  g.ratio_to_fp32 = 2.5;
  g.samples_ms = {0.5, 1};
  g.extra = {{"tile", "64x64"}};
  g.disposition = gemm_disposition::kPassed;
  g.verify_error = 3e-6;
  g.verify_tolerance = 1e-4;
  res.gemms.push_back(g);
  res.info = {{"threads", 4}};
  res.synthetic = true;
  return res;
}

void expect_same_metrics(const std::vector<Metric>& a, const std::vector<Metric>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].value, b[i].value);
    EXPECT_EQ(a[i].unit, b[i].unit);
    EXPECT_EQ(a[i].n, b[i].n);
    EXPECT_EQ(a[i].stddev, b[i].stddev);
    EXPECT_EQ(a[i].samples, b[i].samples);
  }
}

void expect_same_sites(const std::vector<SiteRecord>& a, const std::vector<SiteRecord>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(std::tie(a[i].layer, a[i].role, a[i].w_bits, a[i].a_bits, a[i].k_in, a[i].k_flat, a[i].k_pad),
              std::tie(b[i].layer, b[i].role, b[i].w_bits, b[i].a_bits, b[i].k_in, b[i].k_flat, b[i].k_pad));
    EXPECT_EQ(std::tie(a[i].w_scale, a[i].a_scale, a[i].kl, a[i].clip, a[i].mse, a[i].flops),
              std::tie(b[i].w_scale, b[i].a_scale, b[i].kl, b[i].clip, b[i].mse, b[i].flops));
    EXPECT_EQ(a[i].extra, b[i].extra);
  }
}

void expect_same_gemms(const std::vector<GemmRecord>& a, const std::vector<GemmRecord>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(std::tie(a[i].device, a[i].backend, a[i].dtype, a[i].m, a[i].n, a[i].k, a[i].reps),
              std::tie(b[i].device, b[i].backend, b[i].dtype, b[i].m, b[i].n, b[i].k, b[i].reps));
    EXPECT_EQ(std::tie(a[i].min_ms, a[i].median_ms, a[i].max_ms, a[i].gops, a[i].ratio_to_fp32),
              std::tie(b[i].min_ms, b[i].median_ms, b[i].max_ms, b[i].gops, b[i].ratio_to_fp32));
    EXPECT_EQ(a[i].samples_ms, b[i].samples_ms);
    EXPECT_EQ(a[i].extra, b[i].extra);
    EXPECT_EQ(std::tie(a[i].disposition, a[i].verify_error, a[i].verify_tolerance),
              std::tie(b[i].disposition, b[i].verify_error, b[i].verify_tolerance));
  }
}

TEST(StoreFields, MergeRoundTripKeepsEveryFieldOfEveryRecord) {
  TempDir dir;
  const RunInfo run = full_run();
  const JobResult result = full_result();
  const json spec = {{"model", {{"name", "stories260K"}}}, {"method", {{"name", "rtn"}}}, {"eval", {{"name", "ppl"}}}};
  {
    Store src(dir / "src.db");
    src.begin_run(run);
    long id = src.start_job(run.uuid, "k1", spec, "rtn w4 ppl");
    src.finish_job(id, result, 1.5);
    src.end_run(run.uuid);
  }
  Store src(dir / "src.db", true);
  Store dst(dir / "dst.db");
  ASSERT_EQ(dst.merge_from(dir / "src.db"), 1);

  std::optional<RunInfo> a = src.run(run.uuid), b = dst.run(run.uuid);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->started_at, run.started_at);
  EXPECT_FALSE(a->ended_at.empty());
  EXPECT_EQ(std::tie(a->uuid, a->started_at, a->ended_at, a->config_path, a->config_hash, a->config_text, a->shard),
            std::tie(b->uuid, b->started_at, b->ended_at, b->config_path, b->config_hash, b->config_text, b->shard));
  EXPECT_EQ(a->provenance, b->provenance);
  EXPECT_EQ(b->provenance, run.provenance);

  std::vector<JobRow> ja = src.jobs(), jb = dst.jobs();
  ASSERT_EQ(ja.size(), 1u);
  ASSERT_EQ(jb.size(), 1u);
  const JobRow &x = ja[0], &y = jb[0];
  EXPECT_EQ(std::tie(x.key, x.run_uuid, x.model, x.method, x.evaluation, x.label, x.status, x.error),
            std::tie(y.key, y.run_uuid, y.model, y.method, y.evaluation, y.label, y.status, y.error));
  EXPECT_EQ(std::tie(x.started_at, x.ended_at, x.duration_s, x.synthetic),
            std::tie(y.started_at, y.ended_at, y.duration_s, y.synthetic));
  EXPECT_EQ(x.spec, y.spec);
  EXPECT_EQ(y.spec, spec);
  EXPECT_EQ(y.model, "stories260K");
  EXPECT_EQ(y.label, "rtn w4 ppl");
  EXPECT_TRUE(y.synthetic);
  EXPECT_EQ(y.duration_s, 1.5);
  EXPECT_EQ(json::parse(job_info(dst, y.id)), result.info);

  expect_same_metrics(dst.metrics(y.id), result.metrics);
  expect_same_sites(dst.sites(y.id), result.sites);
  expect_same_gemms(dst.gemms(y.id), result.gemms);
  expect_same_metrics(src.metrics(x.id), dst.metrics(y.id));
}

// A DB an older flatbench wrote (schema 1: no lease columns) still merges: merge_from copies
// the record's fields, never a running row's lease.
TEST(StoreFields, MergesASchemaOneSourceWithoutTheLeaseColumns) {
  TempDir dir;
  const RunInfo run = full_run();
  {
    Store src(dir / "old.db");
    src.begin_run(run);
    src.finish_job(src.start_job(run.uuid, "k1", json::object()), full_result(), 2);
  }
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "old.db").c_str(), &h), SQLITE_OK);
  for (const char* sql : {"ALTER TABLE jobs DROP COLUMN owner", "ALTER TABLE jobs DROP COLUMN heartbeat_at",
                          "PRAGMA user_version = 1"})
    EXPECT_EQ(sqlite3_exec(h, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(h);
  sqlite3_close(h);
  Store dst(dir / "dst.db");
  ASSERT_EQ(dst.merge_from(dir / "old.db"), 1);
  std::vector<JobRow> jobs = dst.jobs();
  ASSERT_EQ(jobs.size(), 1u);
  expect_same_metrics(dst.metrics(jobs[0].id), full_result().metrics);
  expect_same_gemms(dst.gemms(jobs[0].id), full_result().gemms);
}

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

TEST(StoreQueries, AnswerWhatReportsAsk) {
  TempDir dir;
  Store s(dir / "q.db");
  EXPECT_EQ(s.max_job_id(), 0);
  EXPECT_EQ(s.latest_run_uuid(), "");
  RunInfo old_run = full_run(), new_run = full_run();
  new_run.started_at = "2026-12-01T10:00:00.000Z";
  new_run.provenance["git"]["commit"] = "fedcba9876543210";
  s.begin_run(old_run);
  s.begin_run(new_run);
  const json ppl = {{"method", {{"name", "rtn"}}}, {"eval", {{"name", "ppl"}}}};
  const json gemm = {{"eval", {{"name", "gemm"}}}};
  long a1 = s.start_job(old_run.uuid, "a", ppl);
  s.finish_job(a1, {}, 1);
  long g1 = s.start_job(old_run.uuid, "g", gemm);
  s.finish_job(g1, {}, 1);
  long a2 = s.start_job(new_run.uuid, "a", ppl);
  s.finish_job(a2, {}, 1);
  long b2 = s.start_job(new_run.uuid, "b", ppl);
  s.fail_job(b2, "boom", 1);

  EXPECT_EQ(s.max_job_id(), b2);
  EXPECT_EQ(s.latest_run_uuid(), new_run.uuid);
  EXPECT_EQ(s.runs_with_uuid_prefix(new_run.uuid.substr(0, 6)), std::vector<std::string>{new_run.uuid});
  EXPECT_EQ(s.runs_of_commit("FEDCBA"), std::vector<std::string>{new_run.uuid}) << "LIKE: case-insensitive";
  EXPECT_TRUE(s.runs_of_commit("999").empty());
  // '%' and '_' are characters of a prefix, not wildcards (with LIKE, "%" named every run).
  EXPECT_TRUE(s.runs_with_uuid_prefix("%").empty());
  EXPECT_TRUE(s.runs_with_uuid_prefix(std::string(new_run.uuid.size(), '_')).empty());
  EXPECT_TRUE(s.runs_of_commit("%").empty());
  EXPECT_EQ(s.runs_with_uuid_prefix(upper(new_run.uuid.substr(0, 6))), std::vector<std::string>{new_run.uuid})
      << "still case-insensitive";
  EXPECT_TRUE(s.done_jobs({.run_uuid_prefix = "%"}).empty());

  auto ids = [](const std::vector<JobRow>& rows) {
    std::vector<long> out;
    for (const JobRow& j : rows) out.push_back(j.id);
    return out;
  };
  EXPECT_EQ(ids(s.done_jobs()), (std::vector<long>{a1, g1, a2}));
  EXPECT_EQ(ids(s.done_jobs({.key = "a"})), (std::vector<long>{a1, a2}));
  EXPECT_EQ(ids(s.done_jobs({.run_uuid = old_run.uuid})), (std::vector<long>{a1, g1}));
  EXPECT_EQ(ids(s.done_jobs({.after_id = g1})), (std::vector<long>{a2}));
  EXPECT_EQ(ids(s.latest_done_jobs()), (std::vector<long>{g1, a2}));
  EXPECT_EQ(ids(s.latest_done_jobs("rtn")), (std::vector<long>{a2}));
  EXPECT_EQ(ids(s.latest_done_jobs("-")), (std::vector<long>{g1})) << "'-': jobs with no method";
  EXPECT_EQ(ids(s.latest_done_jobs("", "gemm")), (std::vector<long>{g1}));
}

}  // namespace
}  // namespace fb

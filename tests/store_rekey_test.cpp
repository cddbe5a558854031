// The store's v3 → v4 migration (harness/store.cpp rekey_jobs): every row's spec in the one
// canonical shape and its key by the one rule, so a row an older flatbench wrote, a row written
// today and a merge of the two name the same job once.
#include "harness/config.h"
#include "harness/runner.h"
#include "harness/store.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>

namespace fb {
namespace {

using test::TempDir;

void sql(sqlite3* db, const std::string& text) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, text.c_str(), nullptr, nullptr, &err), SQLITE_OK) << text << ": " << (err ? err : "");
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// The spec an older flatbench stored for `spec` (flat model part, no backend), under the key it used.
json old_shape(const JobSpec& spec, bool with_data) {
  json doc = spec.to_json();
  doc.erase("backend");
  if (!with_data) doc.erase("data");
  if (spec.model) {
    json flat = spec.model->params;
    flat["name"] = spec.model->name;
    flat["format"] = spec.model->format;
    doc["model"] = flat;
  }
  return doc;
}

// A schema-3 DB holding, in one run, `spec` as v3 wrote it (with data), a v1-era row without data,
// a running row, and one GPU GEMM job keyed by path and run id.
void write_v3_db(const std::filesystem::path& path, const JobSpec& spec) {
  {
    Store s(path);
    RunInfo run;
    run.uuid = "oldrun";
    s.begin_run(run);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  auto insert = [&](const std::string& key, const json& doc, const std::string& status, const std::string& method) {
    sql(db, "INSERT INTO jobs(run_uuid, key, model, method, evaluation, label, spec, status, started_at) VALUES "
            "('oldrun', " + quoted(key) + ", 'x', " + quoted(method) + ", 'ppl', '', " + quoted(doc.dump()) + ", " +
                quoted(status) + ", '2026-01-01T00:00:00.000Z')");
  };
  const json v3 = old_shape(spec, true);
  insert(hash_text(v3.dump()), v3, "done", "rtn");
  sql(db, "INSERT INTO metrics(job_id, name, value) VALUES (last_insert_rowid(), 'ppl', 12.5)");
  JobSpec other = spec;
  other.seed = 9;
  const json v1 = old_shape(other, false);
  insert(hash_text(v1.dump()), v1, "done", "rtn");
  const json gpu = {{"model", {{"name", "opt-13b"}}}, {"method", {{"name", "ours_s8"}}},
                    {"eval", {{"name", "gemm"}, {"device", "cuda:H200"}, {"tokens", {16}}, {"max_reps", 30}}}};
  insert("gpu-gemm/opt-13b/ours_s8/oldrun", gpu, "done", "ours_s8");
  sql(db, "PRAGMA user_version = 3");
  sqlite3_close(db);
}

JobSpec a_ppl_job(const std::filesystem::path& dir) {
  const auto path = dir / "c.yaml";
  test::put(path, "models:\n  - name: tiny\n    format: synthetic\n    arch: opt-tiny\n"
                  "methods:\n  - name: rtn\n    w_bits: 4\n"
                  "evaluations:\n  - name: selftest\n");
  const Config cfg = load_config(path, dir);
  EXPECT_EQ(cfg.jobs.size(), 1u);
  return cfg.jobs.at(0).spec;
}

TEST(StoreRekey, OpeningAVersionThreeDbRekeysEveryRowByTheOneRule) {
  TempDir dir;
  const JobSpec spec = a_ppl_job(dir.path);
  write_v3_db(dir / "old.db", spec);
  Store s(dir / "old.db");
  EXPECT_EQ(s.schema_version(), kSchemaVersion);
  const std::vector<JobRow> jobs = s.jobs();
  ASSERT_EQ(jobs.size(), 3u);
  for (const JobRow& j : jobs) {
    EXPECT_EQ(j.key, hash_text(j.spec.dump())) << j.spec.dump();
    EXPECT_NO_THROW(JobSpec::from_json(j.spec)) << j.spec.dump();
  }
  EXPECT_EQ(jobs[0].key, spec.key()) << "the v3 row with fingerprints is today's job";
  EXPECT_EQ(s.metrics(jobs[0].id).size(), 1u) << "its measurements stay with it";
  EXPECT_TRUE(jobs[1].spec["data"].is_null());
  EXPECT_EQ(jobs[2].spec["backend"], "cuda");
  EXPECT_EQ(jobs[2].method, "") << "the GPU row's name columns follow its spec";
  EXPECT_EQ(jobs[2].evaluation, "gemm");
}

TEST(StoreRekey, ATodayRunSkipsTheJobAnOldDbFinished) {
  TempDir dir;
  const JobSpec spec = a_ppl_job(dir.path);
  write_v3_db(dir / "old.db", spec);
  const auto statuses = existing_job_statuses(dir / "old.db");
  ASSERT_TRUE(statuses.count(spec.key()));
  EXPECT_EQ(statuses.at(spec.key()), "done");
}

// A copy of the old DB merged into one that migrated it adds nothing: both name each job by
// today's key (without the rekey of the source, all three came in again under their old keys).
TEST(StoreRekey, MergingAnOldDbIntoItsMigratedSelfAddsNothing) {
  TempDir dir;
  const JobSpec spec = a_ppl_job(dir.path);
  write_v3_db(dir / "old.db", spec);
  std::filesystem::copy_file(dir / "old.db", dir / "old-copy.db");
  auto bytes = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string source_before = bytes(dir / "old-copy.db");
  Store merged(dir / "old.db");  // migrated on open
  EXPECT_EQ(merged.merge_from(dir / "old-copy.db"), 0);
  EXPECT_EQ(merged.jobs().size(), 3u);

  Store fresh(dir / "fresh.db");
  EXPECT_EQ(fresh.merge_from(dir / "old-copy.db"), 3);
  EXPECT_EQ(fresh.merge_from(dir / "old.db"), 0);
  EXPECT_EQ(fresh.jobs()[0].key, spec.key());
  EXPECT_EQ(bytes(dir / "old-copy.db"), source_before) << "a source is read, never migrated in place";
}

}  // namespace
}  // namespace fb

// The SQLite store: migration from an empty file, one-transaction job outcomes, resume
// after a killed process, merge idempotency, and the CLI's run/skip behaviour end to end.
#include "harness/config.h"
#include "harness/runner.h"
#include "harness/store.h"
#include "runner_test_util.h"
#include "store_rows_test_util.h"
#include "test_util.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace fb {
namespace {

using test::TempDir;

long count_rows(const Store& s, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(s.handle(), sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return n;
}

std::filesystem::path write_config(const TempDir& dir, const std::string& text) {
  auto p = dir / "sweep.yaml";
  std::ofstream(p) << text;
  return p;
}

RunOptions quiet_options(const std::filesystem::path& db) {
  RunOptions o;
  o.db_path = db;
  o.quiet = true;
  return o;
}

TEST(Store, MigratesAnEmptyFileToTheCurrentSchema) {
  TempDir dir;
  auto path = dir / "empty.db";
  std::ofstream(path).close();  // a zero-byte file is a valid empty SQLite database
  Store s(path);
  EXPECT_EQ(s.schema_version(), kSchemaVersion);
  for (const char* table : {"runs", "jobs", "metrics", "sites", "gemm"})
    EXPECT_EQ(count_rows(s, std::string("SELECT COUNT(*) FROM sqlite_master WHERE name='") + table + "'"), 1)
        << table;
  EXPECT_EQ(count_rows(s, "PRAGMA foreign_keys"), 1);
}

TEST(Store, RefusesADatabaseFromANewerFlatbench) {
  TempDir dir;
  auto path = dir / "future.db";
  { Store s(path); }
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, ("PRAGMA user_version = " + std::to_string(kSchemaVersion + 1)).c_str(), nullptr, nullptr, nullptr);
  sqlite3_close(db);
  EXPECT_THROW(Store s(path), std::runtime_error);
}

TEST(Store, JobOutcomeIsAllOrNothing) {
  TempDir dir;
  Store s(dir / "r.db");
  s.begin_run({"run1"});
  long id = s.start_job("run1", "k1", {{"eval", {{"name", "selftest"}}}}, "label");
  EXPECT_EQ(s.job_status("k1"), "running");
  EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM metrics"), 0);
  JobResult r;
  r.add("a", 1.0);
  r.add("a", 2.0);  // duplicate metric name violates the primary key mid-transaction
  EXPECT_THROW(s.finish_job(id, r, 0.1), std::runtime_error);
  EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM metrics"), 0) << "the first metric must be rolled back";
  EXPECT_EQ(s.job_status("k1"), "running");
  JobResult ok;
  ok.add("a", 1.0);
  ok.sites.push_back(SiteRecord{0, "q"});
  s.finish_job(id, ok, 0.1);
  EXPECT_EQ(s.job_status("k1"), "done");
  EXPECT_EQ(s.metrics(id).size(), 1u);
  EXPECT_EQ(s.sites(id).size(), 1u);
}

TEST(Runner, RerunningAFinishedSweepDoesNothing) {
  TempDir dir;
  Config cfg = load_config(write_config(dir, "evaluations:\n  - name: selftest\n    metrics: [1, 2, 3]\n"), dir.path);
  std::ostringstream out;
  RunCounts first = test::run_and_print(cfg, quiet_options(dir / "r.db"), out);
  EXPECT_EQ(first.ran, 3);
  RunCounts second = test::run_and_print(cfg, quiet_options(dir / "r.db"), out);
  EXPECT_EQ(second.ran, 0);
  EXPECT_EQ(second.done_before, 3);
  Store s(dir / "r.db");
  EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM jobs"), 3);
  EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM runs"), 1) << "a run with nothing to do records no run";
}

TEST(Runner, FailedJobsAreRecordedAndRetriedOnlyOnRequest) {
  TempDir dir;
  Config cfg = load_config(write_config(dir, "evaluations:\n  - name: selftest\n    fail: [false, true]\n"), dir.path);
  std::ostringstream out;
  RunCounts c = test::run_and_print(cfg, quiet_options(dir / "r.db"), out);
  EXPECT_EQ(c.ran, 1);
  EXPECT_EQ(c.failed, 1);
  Store s(dir / "r.db");
  auto failed = test::rows_with_status(s, "failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].error.find("failing as asked"), std::string::npos);
  EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM metrics WHERE job_id = " + std::to_string(failed[0].id)), 0)
      << "a failed job keeps no metrics";
  EXPECT_EQ(test::run_and_print(cfg, quiet_options(dir / "r.db"), out).failed_before, 1);
  RunOptions retry = quiet_options(dir / "r.db");
  retry.retry_failed = true;
  EXPECT_EQ(test::run_and_print(cfg, retry, out).failed, 1);
}

// Runs `flatbench run` in a child process and kills it with SIGKILL while a job is in flight.
TEST(Runner, ResumesAfterAJobIsKilled) {
  TempDir dir;
  auto cfg_path = write_config(dir, "evaluations:\n  - name: selftest\n    sleep_ms: 1500\n    metrics: 30\n"
                                    "    value: [1, 2]\n");
  auto db = dir / "r.db";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(FLATBENCH_BINARY, FLATBENCH_BINARY, "run", cfg_path.c_str(), "--db", db.c_str(), "--data-dir",
          dir.path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until the first job is in flight (its 'running' row exists), then kill mid-job.
  bool running = false;
  for (int i = 0; i < 200 && !running; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    if (std::filesystem::exists(db)) {
      try {
        running = test::rows_with_status(Store(db, true), "running").size() == 1;
      } catch (const std::exception&) {
      }
    }
  }
  ASSERT_TRUE(running) << "the child never started a job";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  {
    Store s(db);
    EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM jobs WHERE status = 'done'"), 0);
    EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM metrics"), 0) << "no half-written metrics";
  }
  Config cfg = load_config(cfg_path, dir.path);
  std::ostringstream out;
  RunCounts c = test::run_and_print(cfg, quiet_options(db), out);
  EXPECT_EQ(c.ran, 2) << "the killed job and the one never started are both run";
  Store s(db);
  EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM jobs"), 2) << "the stale 'running' row was replaced";
  EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM jobs WHERE status = 'done'"), 2);
  EXPECT_EQ(count_rows(s, "SELECT COUNT(*) FROM metrics"), 60);
}

TEST(Runner, ShardsMergeIntoTheWholeSweepIdempotently) {
  TempDir dir;
  Config cfg = load_config(write_config(dir, "evaluations:\n  - name: selftest\n    metrics: [1, 2, 3, 4, 5]\n"), dir.path);
  std::ostringstream out;
  for (int i = 0; i < 3; ++i) {
    RunOptions o = quiet_options(dir / ("shard" + std::to_string(i) + ".db"));
    o.shard_index = i;
    o.shard_count = 3;
    test::run_and_print(cfg, o, out);
  }
  Store all(dir / "all.db");
  long added = 0;
  for (int i = 0; i < 3; ++i) added += all.merge_from(dir / ("shard" + std::to_string(i) + ".db"));
  EXPECT_EQ(added, 5);
  EXPECT_EQ(all.merge_from(dir / "shard0.db"), 0) << "merging twice adds nothing";
  EXPECT_EQ(count_rows(all, "SELECT COUNT(*) FROM jobs"), 5);
  EXPECT_EQ(count_rows(all, "SELECT COUNT(*) FROM metrics"), 1 + 2 + 3 + 4 + 5);
  EXPECT_EQ(count_rows(all, "SELECT COUNT(*) FROM runs"), 3);
  // The merged DB now holds the whole sweep: nothing is left to run.
  EXPECT_EQ(test::run_and_print(cfg, quiet_options(dir / "all.db"), out).ran, 0);
}

TEST(Runner, ParseShardAcceptsOneBasedIndices) {
  int i = -1, n = -1;
  EXPECT_TRUE(parse_shard("1/4", i, n));
  EXPECT_EQ(i, 0);
  EXPECT_EQ(n, 4);
  EXPECT_TRUE(parse_shard("4/4", i, n));
  EXPECT_EQ(i, 3);
  EXPECT_FALSE(parse_shard("0/4", i, n));
  EXPECT_FALSE(parse_shard("5/4", i, n));
  EXPECT_FALSE(parse_shard("2-4", i, n));
}

}  // namespace
}  // namespace fb

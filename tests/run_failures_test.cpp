// Partial work is not reported as success: a run whose selection holds failed jobs (now or
// from an earlier run) exits non-zero and lists them, and an infrastructure failure (the
// disk full while a job's outcome is written) is not remembered as the job's own failure,
// so freeing space and running again redoes the job.
#include "app/cli.h"
#include "cli_test_util.h"
#include "harness/store.h"
#include "harness/runner.h"
#include "harness/config.h"
#include "store_rows_test_util.h"
#include "test_util.h"

#include <sqlite3.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace fb {
namespace {

using test::sql_count;
using test::TempDir;

std::filesystem::path write_config(const TempDir& dir, const std::string& text) {
  auto p = dir / "sweep.yaml";
  std::ofstream(p) << text;
  return p;
}

struct CliResult {
  int rc = 0;
  std::string err;
};

// `flatbench ARGS...` in this process, with its stderr.
CliResult flatbench(std::vector<std::string> args) {
  args.insert(args.begin(), "flatbench");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  CliResult r;
  r.rc = cli_main(static_cast<int>(argv.size()), argv.data());
  testing::internal::GetCapturedStdout();
  r.err = testing::internal::GetCapturedStderr();
  return r;
}

std::vector<std::string> run_args(const TempDir& dir, const std::filesystem::path& cfg) {
  return {"run", cfg.string(), "--db", (dir / "r.db").string(), "--data-dir", dir.path.string(), "-q"};
}

TEST(RunFailures, FailedJobsFromAnEarlierRunMakeAPlainRerunExitNonZeroAndAreListed) {
  TempDir dir;
  auto cfg = write_config(dir,
                          "evaluations:\n  - name: selftest\n    metrics: 2\n    value: [1, 2]\n"
                          "    fail: [false, true]\n");
  CliResult first = flatbench(run_args(dir, cfg));
  EXPECT_EQ(first.rc, 1) << first.err;
  ASSERT_EQ(sql_count(dir / "r.db", "SELECT COUNT(*) FROM jobs WHERE status = 'failed'"), 2);

  CliResult again = flatbench(run_args(dir, cfg));
  EXPECT_EQ(again.rc, 1) << "failed jobs of the selection must not exit 0\n" << again.err;
  Store s(dir / "r.db", true);
  for (const JobRow& row : test::rows_with_status(s, "failed")) {
    EXPECT_NE(again.err.find(row.key.substr(0, 12)), std::string::npos) << again.err;
    EXPECT_NE(again.err.find(row.label), std::string::npos) << again.err;
  }
  EXPECT_NE(again.err.find("failing as asked"), std::string::npos) << again.err;
}

// The disk "fills up" once the test says so: every connection opened while the limit is on
// can grow the DB file by at most kSpareFullPages pages (SQLite's max_page_count → SQLITE_FULL).
long g_max_pages = 0;
int limit_db_size(sqlite3* db, char**, const void*) {
  if (g_max_pages > 0)
    sqlite3_exec(db, ("PRAGMA max_page_count = " + std::to_string(g_max_pages)).c_str(), nullptr, nullptr, nullptr);
  return SQLITE_OK;
}

// A row another process reclaimed while this one ran the job (it took this process for dead)
// belongs to that process: this run writes nothing and counts the job as running elsewhere,
// not as failed (it was reported FAILED, with an exit code of 1, before).
TEST(RunFailures, AJobReclaimedMeanwhileIsTheOtherProcessesNotAFailure) {
  TempDir dir;
  const auto cfg_path = write_config(dir, "evaluations:\n  - name: selftest\n    sleep_ms: 1500\n");
  const Config cfg = load_config(cfg_path, dir.path);
  RunOptions opt;
  opt.db_path = dir / "r.db";
  opt.quiet = true;
  RunCounts counts;
  std::thread runner([&] {
    Store store(opt.db_path);
    counts = run_sweep(cfg, opt, store);
  });
  // Once our row runs, a process on another host reclaims it (deletes ours, inserts its own).
  for (int i = 0; i < 200 && sql_count(dir / "r.db", "SELECT COUNT(*) FROM jobs WHERE status = 'running'") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  test::raw_sql(dir / "r.db", "UPDATE jobs SET owner = 'elsewhere:1:1', heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ') "
                              "WHERE status = 'running'");
  runner.join();
  EXPECT_EQ(counts.failed, 0) << "the job is the other process's now";
  EXPECT_EQ(counts.ran, 0);
  EXPECT_EQ(counts.running_elsewhere, 1);
  EXPECT_EQ(sql_count(dir / "r.db", "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND owner = 'elsewhere:1:1'"), 1)
      << "its row is left to it";
  EXPECT_EQ(sql_count(dir / "r.db", "SELECT COUNT(*) FROM metrics"), 0) << "nothing of this run's outcome is written";
}

TEST(RunFailures, DiskFullWhileWritingAJobIsNotRememberedAsItsFailure) {
  TempDir dir;
  // The small job fits in the pages the DB already has; the big one's 2000 metrics do not.
  auto cfg = write_config(dir, "evaluations:\n  - name: selftest\n    metrics: [1, 2000]\n");
  auto db = dir / "r.db";
  {
    Store s(db);  // schema in place, and a first run row, so later writes need few pages
    s.begin_run({"warmup"});
  }
  g_max_pages = sql_count(db, "PRAGMA page_count") + 3;
  sqlite3_auto_extension(reinterpret_cast<void (*)()>(limit_db_size));
  CliResult full = flatbench(run_args(dir, cfg));
  g_max_pages = 0;  // "free space"
  sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(limit_db_size));
  EXPECT_NE(full.rc, 0) << "a job that could not be written is not a success\n" << full.err;
  EXPECT_NE(full.err.find("full"), std::string::npos) << full.err;
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM jobs WHERE status = 'failed'"), 0)
      << "disk full is not the job's failure";

  CliResult again = flatbench(run_args(dir, cfg));
  EXPECT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(sql_count(db, "SELECT COUNT(DISTINCT key) FROM jobs WHERE status = 'done'"), 2);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM jobs WHERE status != 'done'"), 0);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM metrics"), 2001);
}

}  // namespace
}  // namespace fb

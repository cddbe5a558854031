// Several `flatbench run` processes on one DB share the work: each job is claimed atomically
// right before it runs, a live process's running row is never taken over (a dead one's is
// reclaimed), and the sweep ends with every job done exactly once, whichever process ran it.
#include "cli_test_util.h"
#include "harness/store.h"
#include "store_rows_test_util.h"
#include "test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace fb {
namespace {

using test::sql_count;
using test::spawn_flatbench;
using test::TempDir;
using test::wait_exit;

// Rows of the DB in state 'running'; -1 while the DB or its schema is not there yet.
long running_rows(const std::filesystem::path& db) {
  sqlite3* h = nullptr;
  long n = -1;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, "SELECT COUNT(*) FROM jobs WHERE status = 'running'", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return n;
}

std::filesystem::path write_config(const TempDir& dir, const std::string& name, const std::string& text) {
  auto p = dir / name;
  std::ofstream(p) << text;
  return p;
}

// 20 quick selftest jobs.
std::string twenty_jobs(int sleep_ms) {
  return "evaluations:\n  - name: selftest\n    sleep_ms: " + std::to_string(sleep_ms) +
         "\n    metrics: 3\n    value: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]\n";
}

std::vector<std::string> run_args(const TempDir& dir, const std::filesystem::path& cfg) {
  return {"run", cfg.string(), "--db", (dir / "r.db").string(), "--data-dir", dir.path.string(), "-q"};
}

// Starts n copies of `flatbench run ARGS` at once; returns their exit codes.
std::vector<int> run_concurrently(int n, const std::vector<std::string>& args) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) pids.push_back(spawn_flatbench(args));
  std::vector<int> codes;
  for (pid_t p : pids) codes.push_back(wait_exit(p));
  return codes;
}

void expect_each_job_done_once(const std::filesystem::path& db, long jobs, long metrics_per_job) {
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM jobs WHERE status = 'done'"), jobs);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(DISTINCT key) FROM jobs WHERE status = 'done'"), jobs);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM jobs WHERE status != 'done'"), 0) << "failed or running rows left";
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM metrics"), jobs * metrics_per_job);
}

TEST(StoreConcurrency, ThreeProcessesOnOneDatabaseRunEveryJobExactlyOnce) {
  TempDir dir;
  auto cfg = write_config(dir, "sweep.yaml", twenty_jobs(30));
  for (int code : run_concurrently(3, run_args(dir, cfg))) EXPECT_EQ(code, 0);
  expect_each_job_done_once(dir / "r.db", 20, 3);
  EXPECT_GE(sql_count(dir / "r.db", "SELECT COUNT(DISTINCT run_uuid) FROM jobs"), 2) << "the processes share the work";

  // A plain rerun finds everything done and adds nothing.
  EXPECT_EQ(wait_exit(spawn_flatbench(run_args(dir, cfg))), 0);
  expect_each_job_done_once(dir / "r.db", 20, 3);
}

TEST(StoreConcurrency, ForcedRerunsByTwoProcessesRedoEachJobOnce) {
  TempDir dir;
  auto cfg = write_config(dir, "sweep.yaml", twenty_jobs(20));
  ASSERT_EQ(wait_exit(spawn_flatbench(run_args(dir, cfg))), 0);
  auto forced = run_args(dir, cfg);
  forced.push_back("--force");
  for (int code : run_concurrently(2, forced)) EXPECT_EQ(code, 0);
  auto db = dir / "r.db";
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM jobs WHERE status = 'done'"), 40) << "the first run plus one redo each";
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM (SELECT key FROM jobs GROUP BY key HAVING COUNT(*) != 2)"), 0);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM jobs WHERE status != 'done'"), 0);
}

TEST(StoreConcurrency, ARunDoesNotTakeOverAJobALiveProcessIsRunning) {
  TempDir dir;
  auto slow = write_config(dir, "slow.yaml", "evaluations:\n  - name: selftest\n    sleep_ms: 3000\n    metrics: 2\n");
  auto db = dir / "r.db";
  pid_t first = spawn_flatbench(run_args(dir, slow));
  // Wait until the first process has claimed the job.
  for (int i = 0; i < 500 && running_rows(db) != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(running_rows(db), 1);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(wait_exit(spawn_flatbench(run_args(dir, slow))), 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.5)
      << "the second process must skip the job running elsewhere, not rerun it";
  EXPECT_EQ(wait_exit(first), 0);
  expect_each_job_done_once(db, 1, 2);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM jobs j JOIN runs r ON r.uuid = j.run_uuid "
                      "WHERE r.started_at = (SELECT MIN(started_at) FROM runs)"),
            1)
      << "the job is the first process's";
}

}  // namespace
}  // namespace fb

// ---- claims on one connection: whose running row is live --------------------------------

namespace fb {
namespace {

const json kSpec = {{"eval", {{"name", "selftest"}}}};

// A running row for `key` as another process would have left it.
void insert_running(Store& s, const std::string& run, const std::string& key, const std::string& owner,
                    const std::string& heartbeat_at) {
  const std::string sql = "INSERT INTO jobs(run_uuid, key, spec, status, started_at, owner, heartbeat_at) VALUES ('" +
                          run + "', '" + key + "', '{}', 'running', '" + heartbeat_at + "', '" + owner + "', '" +
                          heartbeat_at + "')";
  ASSERT_EQ(sqlite3_exec(s.handle(), sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(s.handle());
}

long rows_of(const Store& s, const std::string& key) {
  return static_cast<long>(test::rows_of_key(s, key).size());
}

// A child process that reports its owner string and then waits to be killed.
struct LiveChild {
  pid_t pid = -1;
  std::string owner;
  LiveChild() {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
      std::string me = this_process_owner();
      (void)!write(fds[1], me.data(), me.size());
      close(fds[1]);
      for (;;) pause();
    }
    close(fds[1]);
    char buf[512];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) owner.append(buf, size_t(n));
    close(fds[0]);
  }
  ~LiveChild() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};

TEST(StoreClaims, ALiveProcessesRunningRowIsNotTakenOverADeadOnesIsReclaimed) {
  TempDir dir;
  Store s(dir / "r.db");
  s.begin_run({"other"});
  s.begin_run({"mine"});
  const std::string now = now_iso8601();
  std::string dead_owner;
  {
    LiveChild child;
    ASSERT_FALSE(child.owner.empty());
    ASSERT_TRUE(owner_is_alive(child.owner, ""));
    insert_running(s, "other", "k-live", child.owner, now);
    EXPECT_EQ(s.claim_job("mine", "k-live", kSpec, "", {}).outcome, ClaimOutcome::running_elsewhere);
    EXPECT_EQ(rows_of(s, "k-live"), 1);
    // The same pid with another start time is a reused pid: that owner is gone.
    const std::string reused = child.owner.substr(0, child.owner.rfind(':')) + ":1";
    insert_running(s, "other", "k-reused", reused, now);
    EXPECT_EQ(s.claim_job("mine", "k-reused", kSpec, "", {}).outcome, ClaimOutcome::claimed);
    dead_owner = child.owner;
  }  // killed and reaped
  EXPECT_FALSE(owner_is_alive(dead_owner, now));
  Claim c = s.claim_job("mine", "k-live", kSpec, "", {});
  ASSERT_EQ(c.outcome, ClaimOutcome::claimed) << "the dead process's row is reclaimed";
  auto rows = test::rows_of_key(s, "k-live");
  ASSERT_EQ(rows.size(), 1u) << "the dead row is replaced, not kept beside ours";
  EXPECT_EQ(rows[0].id, c.job_id);
  EXPECT_EQ(rows[0].run_uuid, "mine");
  // Our own running row is live too: a second claim of it in this process is refused.
  EXPECT_EQ(s.claim_job("mine", "k-live", kSpec, "", {}).outcome, ClaimOutcome::running_elsewhere);
}

TEST(StoreClaims, AnotherHostsRunningRowIsLiveWhileItsLeaseIsFresh) {
  TempDir dir;
  Store s(dir / "r.db");
  s.begin_run({"other"});
  s.begin_run({"mine"});
  insert_running(s, "other", "k-fresh", "far-away-node:4242:99", now_iso8601());
  EXPECT_EQ(s.claim_job("mine", "k-fresh", kSpec, "", {}).outcome, ClaimOutcome::running_elsewhere);
  insert_running(s, "other", "k-stale", "far-away-node:4243:99", "2000-01-01T00:00:00.000Z");
  EXPECT_EQ(s.claim_job("mine", "k-stale", kSpec, "", {}).outcome, ClaimOutcome::claimed);
  EXPECT_EQ(rows_of(s, "k-stale"), 1);
}

TEST(StoreClaims, DoneAndFailedRowsFollowThePolicy) {
  TempDir dir;
  Store s(dir / "r.db");
  s.begin_run({"r1"});
  s.begin_run({"r2"});
  long done = s.claim_job("r1", "k-done", kSpec, "", {}).job_id;
  s.finish_job(done, JobResult{}, 0.1);
  long failed = s.claim_job("r1", "k-failed", kSpec, "", {}).job_id;
  s.fail_job(failed, "boom", 0.1);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // timestamps have millisecond resolution
  const std::string after = now_iso8601();

  EXPECT_EQ(s.claim_job("r2", "k-done", kSpec, "", {}).outcome, ClaimOutcome::done);
  EXPECT_EQ(s.claim_job("r2", "k-failed", kSpec, "", {}).outcome, ClaimOutcome::failed);
  // Rows written since the run began are the sweep's own (another process redid them while
  // this run went on): not redone even when forced. Older rows are redone.
  const ClaimPolicy forced_since_long_ago{true, true, "2000-01-01T00:00:00.000Z"};
  EXPECT_EQ(s.claim_job("r2", "k-done", kSpec, "", forced_since_long_ago).outcome, ClaimOutcome::done);
  EXPECT_EQ(s.claim_job("r2", "k-failed", kSpec, "", forced_since_long_ago).outcome, ClaimOutcome::failed);
  // Older rows of a run still going on in a live process (a sibling forced run that began
  // moments earlier) are the sweep's own too; once that run has ended, they are redone.
  const ClaimPolicy forced{true, true, after};
  EXPECT_EQ(s.claim_job("r2", "k-done", kSpec, "", forced).outcome, ClaimOutcome::done);
  EXPECT_EQ(s.claim_job("r2", "k-failed", kSpec, "", forced).outcome, ClaimOutcome::failed);
  s.end_run("r1");
  EXPECT_EQ(s.claim_job("r2", "k-done", kSpec, "", forced).outcome, ClaimOutcome::claimed);
  EXPECT_EQ(s.claim_job("r2", "k-failed", kSpec, "", forced).outcome, ClaimOutcome::claimed);
}

TEST(StoreClaims, OutcomesAreWrittenOnlyToOurOwnRunningRow) {
  TempDir dir;
  Store s(dir / "r.db");
  s.begin_run({"r1"});
  long id = s.claim_job("r1", "k", kSpec, "", {}).job_id;
  ASSERT_EQ(sqlite3_exec(s.handle(), "UPDATE jobs SET owner = 'far-away-node:1:1'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  JobResult r;
  r.add("a", 1.0);
  EXPECT_THROW(s.finish_job(id, r, 0.1), JobReclaimed);
  EXPECT_TRUE(s.metrics(id).empty());
  EXPECT_THROW(s.fail_job(id, "boom", 0.1), JobReclaimed) << "the failure is not ours to write either";
  s.release_job(id);
  auto rows = test::rows_with_id(s, id);
  ASSERT_EQ(rows.size(), 1u) << "another's row is not released";
  EXPECT_EQ(rows[0].status, "running");
}

TEST(StoreClaims, InfrastructureErrorsAreToldFromAJobsOwnFailure) {
  EXPECT_TRUE(is_infrastructure_error(StoreError("x", SQLITE_FULL)));
  EXPECT_TRUE(is_infrastructure_error(StoreError("x", SQLITE_BUSY)));
  EXPECT_TRUE(is_infrastructure_error(StoreError("x", SQLITE_IOERR_WRITE)));
  EXPECT_FALSE(is_infrastructure_error(StoreError("x", SQLITE_CONSTRAINT_PRIMARYKEY)));
  EXPECT_TRUE(is_infrastructure_error(
      std::filesystem::filesystem_error("write", std::make_error_code(std::errc::no_space_on_device))));
  EXPECT_TRUE(is_infrastructure_error(std::system_error(EIO, std::generic_category())));
  EXPECT_FALSE(is_infrastructure_error(std::system_error(EACCES, std::generic_category())));
  EXPECT_FALSE(is_infrastructure_error(std::runtime_error("the job's own error")));
  // A real one: SQLite's own SQLITE_FULL from a size-capped DB.
  TempDir dir;
  Store s(dir / "r.db");
  s.begin_run({"r1"});
  long id = s.claim_job("r1", "k", kSpec, "", {}).job_id;
  ASSERT_EQ(sqlite3_exec(s.handle(), "PRAGMA max_page_count = 1", nullptr, nullptr, nullptr), SQLITE_OK);
  JobResult big;
  for (int i = 0; i < 2000; ++i) big.add(std::string("m").append(std::to_string(i)), i);  // not "m" + ...: GCC 12's -Wrestrict false positive
  try {
    s.finish_job(id, big, 0.1);
    FAIL() << "expected SQLITE_FULL";
  } catch (const std::exception& e) {
    EXPECT_TRUE(is_infrastructure_error(e)) << e.what();
  }
}

}  // namespace
}  // namespace fb

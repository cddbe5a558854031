// Integration: a sweep through a real single-node Slurm cluster (slurmctld + slurmd + munge on
// localhost, started by tests/slurm/cluster.sh): `flatbench slurm --array 3`, the generated
// submit script, the array tasks and the dependent merge job, then the merged DB is checked.
// Skips with the reason where Slurm cannot start (not installed, not root, no munge key).
#include "harness/store.h"
#include "test_util.h"

#include <sqlite3.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

namespace fb {
namespace {

using test::TempDir;

std::string run_capture(const std::string& cmd, int& status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[512];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  status = p ? pclose(p) : -1;
  return out;
}

long done_jobs(const std::filesystem::path& db) {
  if (!std::filesystem::exists(db)) return -1;
  try {
    Store s(db, true);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(s.handle(), "SELECT COUNT(*) FROM jobs WHERE status='done'", -1, &st, nullptr);
    long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
  } catch (const std::exception&) {
    return -1;
  }
}

TEST(SlurmCluster, SweepRunsAsAJobArrayAndMerges) {
  TempDir dir;
  const std::string script = std::string(FLATBENCH_SOURCE_ROOT) + "/tests/slurm/cluster.sh";
  int status = 0;
  std::string conf = run_capture("bash " + script + " start " + (dir / "cluster").string() + " 2>&1", status);
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "Slurm cannot start here: " << conf;
  ASSERT_EQ(WEXITSTATUS(status), 0) << conf;
  while (!conf.empty() && conf.back() == '\n') conf.pop_back();
  setenv("SLURM_CONF", conf.c_str(), 1);
  struct Stop {
    std::string cmd;
    ~Stop() { std::system(cmd.c_str()); }
  } stop{"bash " + script + " stop " + (dir / "cluster").string()};

  std::ofstream(dir / "sweep.yaml") << "evaluations:\n  - name: selftest\n    sleep_ms: 200\n"
                                       "    metrics: [1, 2, 3, 4, 5, 6, 7]\n";
  auto merged = dir / "merged.db";
  std::string gen = std::string(FLATBENCH_BINARY) + " slurm " + (dir / "sweep.yaml").string() + " --array 3 --out " +
                    (dir / "out").string() + " --db " + merged.string() + " --data-dir " + dir.path.string() +
                    " --time 00:05:00 --local-dir " + dir.path.string() + " 2>&1";
  std::string out = run_capture(gen, status);
  ASSERT_EQ(WEXITSTATUS(status), 0) << out;
  out = run_capture("bash " + (dir / "out" / "submit.sh").string() + " 2>&1", status);
  ASSERT_EQ(WEXITSTATUS(status), 0) << out;

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (done_jobs(merged) < 7 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(done_jobs(merged), 7) << "submit said: " << out;
  for (int task = 1; task <= 3; ++task)
    EXPECT_TRUE(std::filesystem::exists(dir / "out" / "shards" / ("shard-" + std::to_string(task) + "-of-3.db")));
}

}  // namespace
}  // namespace fb

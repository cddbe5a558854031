// Crash safety and scale-out: a sweep killed with SIGKILL at random points many times loses
// no job and keeps no partial rows; two processes writing one DB at once never corrupt it;
// the Slurm scripts, run task by task, shard and merge a sweep into one DB; bad result paths
// give clear errors.
#include "cli_test_util.h"
#include "harness/config.h"
#include "harness/runner.h"
#include "harness/slurm.h"
#include "harness/store.h"
#include "test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace fb {
namespace {

using test::sql_count;
using test::spawn_flatbench;
using test::TempDir;
using test::wait_exit;

std::filesystem::path write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
  return p;
}

// Every job of the sweep exactly once as 'done', each with exactly its metrics, nothing else.
void expect_whole_sweep(const std::filesystem::path& db, long jobs, long metrics_per_job) {
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM jobs"), jobs);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(DISTINCT key) FROM jobs WHERE status = 'done'"), jobs);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM metrics"), jobs * metrics_per_job);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM jobs j WHERE (SELECT COUNT(*) FROM metrics m WHERE m.job_id = j.id) != " +
                          std::to_string(metrics_per_job)),
            0)
      << "a job with a partial set of metrics";
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check != 'ok'"), 0);
}

TEST(Reliability, SurvivesManyKillsAtRandomPointsWithoutLosingOrDuplicatingJobs) {
  TempDir dir;
  const int kJobs = 12, kMetrics = 4, kKills = 25;
  auto cfg = write_file(dir / "sweep.yaml",
                        "evaluations:\n  - name: selftest\n    sleep_ms: 60\n    metrics: 4\n"
                        "    value: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n");
  auto db = dir / "r.db";
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> delay_ms(5, 250);
  int kills = 0;
  for (; kills < kKills; ++kills) {
    pid_t pid = spawn_flatbench({"run", cfg.string(), "--db", db.string(), "--data-dir", dir.path.string(), "-q"});
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    kill(pid, SIGKILL);
    if (wait_exit(pid) == 0) break;  // it finished before the kill landed: the sweep is complete
  }
  EXPECT_GE(kills, 5) << "too few kills landed to test anything";
  // One clean run finishes what is left; then the DB holds the whole sweep exactly once.
  EXPECT_EQ(wait_exit(spawn_flatbench({"run", cfg.string(), "--db", db.string(), "--data-dir", dir.path.string(), "-q"})),
            0);
  expect_whole_sweep(db, kJobs, kMetrics);
  std::cout << "[ info ] kills survived: " << kills << ", jobs lost: "
            << kJobs - sql_count(db, "SELECT COUNT(*) FROM jobs WHERE status='done'") << "\n";
}

TEST(Reliability, TwoProcessesWritingOneDatabaseAtOnce) {
  TempDir dir;
  auto cfg = write_file(dir / "sweep.yaml",
                        "evaluations:\n  - name: selftest\n    sleep_ms: 20\n    metrics: 5\n"
                        "    value: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]\n");
  auto db = dir / "r.db";
  std::vector<pid_t> pids;
  for (const char* shard : {"1/2", "2/2"})
    pids.push_back(spawn_flatbench(
        {"run", cfg.string(), "--db", db.string(), "--data-dir", dir.path.string(), "-q", "--shard", shard}));
  for (pid_t p : pids) EXPECT_EQ(wait_exit(p), 0);
  expect_whole_sweep(db, 20, 5);
  EXPECT_EQ(sql_count(db, "SELECT COUNT(*) FROM runs"), 2);
}

TEST(Reliability, SlurmArrayScriptsShardAndMergeTheSweep) {
  TempDir dir;
  auto cfg = write_file(dir / "sweep.yaml", "evaluations:\n  - name: selftest\n    metrics: [1, 2, 3, 4, 5, 6, 7]\n");
  SlurmOptions o;
  o.config = cfg;
  o.out_dir = dir / "slurm";
  o.db = dir / "merged.db";
  o.data_dir = dir.path;
  o.binary = FLATBENCH_BINARY;
  o.array = 3;
  o.local_dir = (dir / "local").string();
  std::filesystem::create_directories(dir / "local");
  SlurmScripts s = write_slurm_scripts(o);
  std::ifstream array_in(s.array_script);
  std::string array_text((std::istreambuf_iterator<char>(array_in)), {});
  EXPECT_NE(array_text.find("#SBATCH --array=1-3"), std::string::npos);
  EXPECT_NE(array_text.find("--shard \"${task}/3\""), std::string::npos);
  EXPECT_EQ(array_text.find("--gres"), std::string::npos) << "no GPUs asked for: none requested";
  // Run what Slurm would run: each array task, then the merge job.
  for (int task = 1; task <= 3; ++task) {
    std::string cmd = "SLURM_ARRAY_TASK_ID=" + std::to_string(task) + " SLURM_ARRAY_JOB_ID=42 bash " +
                      s.array_script.string() + " >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  EXPECT_EQ(std::system(("bash " + s.merge_script.string() + " >/dev/null 2>&1").c_str()), 0);
  long jobs = sql_count(o.db, "SELECT COUNT(*) FROM jobs WHERE status = 'done'");
  EXPECT_EQ(jobs, 7);
  EXPECT_EQ(sql_count(o.db, "SELECT COUNT(*) FROM metrics"), 1 + 2 + 3 + 4 + 5 + 6 + 7);
  EXPECT_EQ(sql_count(o.db, "SELECT COUNT(DISTINCT shard) FROM runs"), 3);
  // The merge is idempotent: running it again changes nothing.
  EXPECT_EQ(std::system(("bash " + s.merge_script.string() + " >/dev/null 2>&1").c_str()), 0);
  EXPECT_EQ(sql_count(o.db, "SELECT COUNT(*) FROM jobs"), 7);
}

// A GPU sweep asks one GRES GPU per array task, and none for the merge job (it only reads DBs).
TEST(Reliability, SlurmArrayTasksAskForTheirGpus) {
  TempDir dir;
  SlurmOptions o;
  o.config = write_file(dir / "sweep.yaml", "evaluations:\n  - name: selftest\n");
  o.out_dir = dir / "slurm";
  o.db = dir / "merged.db";
  o.data_dir = dir.path;
  o.binary = FLATBENCH_BINARY;
  o.array = 4;
  o.gpus_per_task = 1;
  const SlurmScripts s = write_slurm_scripts(o);
  auto text_of = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  EXPECT_NE(text_of(s.array_script).find("#SBATCH --gres=gpu:1\n"), std::string::npos);
  EXPECT_EQ(text_of(s.merge_script).find("--gres"), std::string::npos);
  o.gpus_per_task = -1;
  EXPECT_THROW(write_slurm_scripts(o), std::invalid_argument);
}

TEST(Reliability, ReadOnlyDatabaseGivesAClearError) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores file permissions; the read-only case cannot be staged";
  TempDir dir;
  auto db = dir / "r.db";
  { Store s(db); }
  std::filesystem::permissions(db, std::filesystem::perms::owner_read);
  EXPECT_THROW({ Store s(db); }, std::runtime_error);
}

TEST(Reliability, DatabaseInAnUnwritablePlaceGivesAClearError) {
  TempDir dir;
  write_file(dir / "not-a-dir", "x");
  try {
    Store s(dir / "not-a-dir" / "r.db");
    FAIL() << "opened a database under a regular file";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("not-a-dir"), std::string::npos) << e.what();
  }
}

TEST(Reliability, MissingDataDirectoryIsNamedInTheError) {
  TempDir dir;
  auto cfg = write_file(dir / "c.yaml",
                        "models:\n  - name: m\n    format: llama2c\n    path: stories260K/stories260K.bin\n"
                        "methods:\n  - name: fp16\nevaluations:\n  - name: ppl\n");
  try {
    load_config(cfg, dir / "no-such-data-dir");
    FAIL() << "loaded a config whose data directory does not exist";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-data-dir"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fb

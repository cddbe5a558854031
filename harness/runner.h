// Runs a sweep's jobs: skips those already done, runs the rest, and writes each job's
// whole outcome in one transaction. Each job is claimed right before it runs, so several
// processes on one DB share the work and run each job once. A job that throws is recorded
// as failed and the sweep goes on; an infrastructure failure (disk full, a lock, I/O) is not
// the job's: nothing of it is recorded, the sweep stops, and the next run redoes it. A
// process killed mid-job leaves a 'running' row whose dead owner the next run reclaims.
#pragma once

#include "harness/config.h"
#include "harness/store.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace fb {

struct RunOptions {
  std::filesystem::path db_path = kDefaultDbPath;
  bool dry_run = false;
  bool force = false;         // rerun jobs that are done (a new row; history is kept)
  bool retry_failed = false;  // rerun jobs whose newest row failed
  bool json = false;          // machine-readable summary on stdout
  bool quiet = false;         // no progress on stderr
  int shard_index = 0, shard_count = 1;
};

// A job of the selection that did not end done, as the run reports it.
struct JobProblem {
  std::string key, label, error;
};

struct RunCounts {
  std::vector<Job> selection;  // the jobs of this shard
  std::vector<Job> todo;       // those the run runs (or, in a plan, would run)
  int selected = 0, done_before = 0, failed_before = 0, ran = 0, failed = 0;
  int done_elsewhere = 0, failed_elsewhere = 0, running_elsewhere = 0;  // settled by other processes meanwhile
  std::vector<JobProblem> failures;       // every failed job of the selection at the end, now or before
  std::vector<JobProblem> interruptions;  // infrastructure failures: not recorded, the next run redoes them
  bool complete() const { return failures.empty() && interruptions.empty(); }
};

// What a run would do: the shard's jobs, those done or failed before, those to run. Reads no
// file: `statuses` is the newest status per job key (Store::job_statuses, existing_job_statuses).
RunCounts plan_sweep(const Config& cfg, const RunOptions& opt, const std::map<std::string, std::string>& statuses);

// Runs the planned jobs into `store` and returns what it did; progress goes to stderr (unless
// quiet), and printing the results is the caller's (app/cli.cpp, reports/nightly.cpp).
RunCounts run_sweep(const Config& cfg, const RunOptions& opt, Store& store);

// The statuses of an existing DB, opened so that no file is created or changed (dry runs).
std::map<std::string, std::string> existing_job_statuses(const std::filesystem::path& db);

// Parses "i/N" (1-based i as users write it, e.g. from SLURM_ARRAY_TASK_ID) into 0-based index and count.
bool parse_shard(const std::string& text, int& index, int& count);

}  // namespace fb

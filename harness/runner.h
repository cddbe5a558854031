// Runs a sweep's jobs: skips those already done, runs the rest, and writes each job's
// whole outcome in one transaction. A job that throws is recorded as failed and the
// sweep goes on; a process killed mid-job leaves a 'running' row that the next run redoes.
#pragma once

#include "harness/config.h"

#include <filesystem>
#include <iosfwd>

namespace fb {

struct RunOptions {
  std::filesystem::path db_path = "results/flatbench.db";
  bool dry_run = false;
  bool force = false;         // rerun jobs that are done (a new row; history is kept)
  bool retry_failed = false;  // rerun jobs whose newest row failed
  bool json = false;          // machine-readable summary on stdout
  bool quiet = false;         // no progress on stderr
  int shard_index = 0, shard_count = 1;
};

struct RunCounts {
  int selected = 0, done_before = 0, failed_before = 0, ran = 0, failed = 0;
};

// Returns the counts; prints the progress on stderr and the result table on `out`.
RunCounts run_sweep(const Config& cfg, const RunOptions& opt, std::ostream& out);

// Parses "i/N" (1-based i as users write it, e.g. from SLURM_ARRAY_TASK_ID) into 0-based index and count.
bool parse_shard(const std::string& text, int& index, int& count);

}  // namespace fb

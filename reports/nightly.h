// `flatbench nightly CONFIG`: reruns a sweep (every job gets a fresh row), checks every metric
// against the recent history of the same job on the same machine, writes a markdown report and
// returns non-zero when something regressed (or a job failed), for cron / systemd / CI.
#pragma once

#include "harness/store.h"
#include "reports/regression.h"

#include <filesystem>
#include <iosfwd>
#include <string>

namespace fb {

struct NightlyOptions {
  std::filesystem::path config;     // sweep to run (empty with check_only)
  std::filesystem::path data_dir;   // empty = the config's default
  std::filesystem::path db = kDefaultDbPath;
  std::filesystem::path report;     // markdown report; empty = stdout
  bool check_only = false;          // run nothing: check `run` (uuid prefix) or the newest run
  std::string run;
  bool quiet = false;
  CheckOptions check;
};

// Returns the process exit code: 0 clean, 1 regression or failed job.
int run_nightly(const NightlyOptions& opt, std::ostream& log);

}  // namespace fb

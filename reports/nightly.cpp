#include "reports/nightly.h"

#include "harness/config.h"
#include "harness/runner.h"
#include "harness/store.h"
#include "reports/summary.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace fb {

namespace {

long max_job_id(const std::filesystem::path& db) {
  if (!holds_results(db)) return 0;
  return Store(db, true).max_job_id();
}

// Runs the sweep with force, so every job of the config gets a new row; returns how many failed.
int run_fresh(const NightlyOptions& opt, const Config& cfg, std::ostream& log) {
  RunOptions ro;
  ro.db_path = opt.db;
  ro.force = true;
  ro.quiet = opt.quiet;
  Store store(ro.db_path);
  RunCounts c = run_sweep(cfg, ro, store);
  print_summary(store, c.selection, log, false);  // the sweep's own summary goes to the log, not into the report
  const int interrupted = static_cast<int>(c.interruptions.size());  // not recorded: as bad as failed here
  log << fmt::format("nightly: {} jobs ran, {} failed, {} interrupted\n", c.ran, c.failed, interrupted);
  return c.failed + interrupted;
}

void write_report(const NightlyOptions& opt, const std::string& md) {
  if (opt.report.empty()) {
    std::cout << md;
    return;
  }
  if (opt.report.has_parent_path()) std::filesystem::create_directories(opt.report.parent_path());
  std::ofstream f(opt.report);
  if (!f) throw std::runtime_error("cannot write nightly report " + opt.report.string());
  f << md;
}

}  // namespace

int run_nightly(const NightlyOptions& opt, std::ostream& log) {
  CheckReport rep;
  int failed = 0;
  if (opt.check_only) {
    if (!std::filesystem::exists(opt.db)) throw std::runtime_error("no results database at " + opt.db.string());
    Store store(opt.db, true);
    std::string run = opt.run.empty() ? store.latest_run_uuid() : opt.run;
    if (run.empty()) throw std::runtime_error("no runs in " + opt.db.string());
    rep = check_run(store, run, opt.check);
    write_report(opt, rep.markdown(store, opt.check));
  } else {
    Config cfg = load_config(opt.config, opt.data_dir);
    long before = max_job_id(opt.db);
    failed = run_fresh(opt, cfg, log);
    Store store(opt.db, true);
    std::set<std::string> keys;
    for (const auto& j : cfg.jobs) keys.insert(j.key);
    std::vector<JobRow> fresh;
    for (const auto& j : store.done_jobs({.after_id = before}))
      if (keys.count(j.key)) fresh.push_back(j);
    std::vector<ReportRow> rows = reportable_rows(store, fresh);
    rep = check_rows(store, rows, opt.check);
    std::string md = rep.markdown(store, opt.check);
    if (failed) md += fmt::format("\n**{} job(s) failed** — see `flatbench list {}`.\n", failed, opt.config.string());
    write_report(opt, md);
  }
  log << fmt::format("nightly: {} regressions, {} improvements, {} other changes{}\n", rep.count("regression"),
                     rep.count("improvement"), rep.count("changed"),
                     opt.report.empty() ? "" : " — report in " + opt.report.string());
  return rep.count("regression") > 0 || failed > 0 ? 1 : 0;
}

}  // namespace fb

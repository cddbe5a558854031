#include "reports/commands.h"

#include "harness/store.h"
#include "reports/compare.h"
#include "reports/dashboard.h"
#include "reports/plot.h"
#include "reports/tables.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

namespace fb {

namespace fs = std::filesystem;

namespace {

void require_db(const std::string& db) {
  if (std::string why = db_path_problem(db); !why.empty()) throw CLI::ValidationError("--db", why);
  if (!holds_results(db)) throw std::runtime_error("no results in " + db + " (run a sweep first, or pass --db)");
}

void add_thresholds(CLI::App* cmd, CheckOptions& c) {
  cmd->add_option("--alpha", c.alpha, "significance level of the Mann-Whitney U test")->capture_default_str();
  cmd->add_option("--min-latency", c.thresholds.latency, "minimum relative change for latency (ms, s)")->capture_default_str();
  cmd->add_option("--min-throughput", c.thresholds.throughput, "minimum relative change for tok/s, GOP/s")->capture_default_str();
  cmd->add_option("--min-ppl", c.thresholds.ppl, "minimum relative change for PPL / mean NLL")->capture_default_str();
  cmd->add_option("--min-accuracy", c.thresholds.accuracy, "minimum relative change for accuracy")->capture_default_str();
  cmd->add_option("--min-memory", c.thresholds.memory, "minimum relative change for memory (bytes)")->capture_default_str();
}

}  // namespace

int report_table_command(const std::string& db, const std::string& table, const std::string& format) {
  require_db(db);
  Store store(db, true);
  auto tables = build_tables(store, table);
  if (format == "json") {  // one JSON document (an array of tables), so tools can parse the output whole
    nlohmann::json all = nlohmann::json::array();
    for (const auto& t : tables) all.push_back(t.to_json());
    std::cout << all.dump(2) << "\n";
    return 0;
  }
  for (const auto& t : tables) std::cout << t.render(format) << "\n";
  return 0;
}

void ReportCommands::add(CLI::App& app) {
  plot_ = app.add_subcommand("plot", "PNG and SVG plots (gnuplot) from the DB: β, γ, latency, per-site, trends");
  plot_->add_option("NAME", plot_name_, "plot to draw, or all")->capture_default_str();
  plot_->add_option("--out-dir", out_dir_, "folder for <plot>.png and <plot>.svg")->capture_default_str();
  plot_->add_option("--db", db_, "results database (SQLite)")->capture_default_str();
  plot_->footer("\nPlots:\n" + plot_list_help() +
                "\nExample:\n  flatbench plot latency --out-dir results/plots   (needs gnuplot: apt-get install gnuplot-nox)\n");

  dashboard_ = app.add_subcommand("dashboard", "one self-contained offline HTML page: tables, plots, trends, per-job drill-down");
  dashboard_->add_option("--out", out_html_, "HTML file to write")->capture_default_str();
  dashboard_->add_option("--db", db_, "results database (SQLite)")->capture_default_str();
  dashboard_->add_flag("--no-plots", no_plots_, "leave out the gnuplot plots");
  dashboard_->footer("\nExample:\n  flatbench dashboard --out results/dashboard.html && xdg-open results/dashboard.html\n");

  nightly_ = app.add_subcommand("nightly",
                                "rerun CONFIG, compare every metric with the recent history of the same job on this machine, "
                                "write a markdown report; exit 1 on a regression");
  nightly_->add_option("CONFIG", config_, "YAML sweep config (not needed with --check-only)")->check(CLI::ExistingFile);
  nightly_->add_option("--db", db_, "results database (SQLite)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& path) {  // it runs a sweep into it: a path that cannot persist is refused first
            return db_path_problem(path);  // CLI11 puts "--db: " before it
          },
          "FILE"));
  nightly_->add_option("--data-dir", data_dir_, "where models and datasets live");
  nightly_->add_option("--report", report_, "markdown report file (default: stdout)");
  nightly_->add_option("--window", nightly_opt_.check.window, "history: previous runs of each job to compare with")
      ->capture_default_str();
  nightly_->add_flag("--check-only", nightly_opt_.check_only, "run nothing; check --run (or the newest run) against history");
  nightly_->add_option("--run", nightly_opt_.run, "with --check-only: run uuid prefix to check");
  nightly_->add_flag("-q,--quiet", nightly_opt_.quiet, "no progress on stderr");
  add_thresholds(nightly_, nightly_opt_.check);
  nightly_->footer(
      "\nA change is flagged only when it is significant (Mann-Whitney U on the repetitions, p < alpha) AND larger\n"
      "than the metric's minimum; lower is better for ms/PPL/memory, higher for tok/s, GOP/s, accuracy.\n"
      "\nExample:\n  flatbench nightly configs/nightly.yaml --db results/nightly.db --report results/nightly.md\n");

  compare_ = app.add_subcommand("compare", "compare two runs (uuid prefixes) or two commits: ratio per metric, geometric mean");
  compare_->add_option("A", run_a_, "baseline: run uuid prefix or commit hash prefix")->required();
  compare_->add_option("B", run_b_, "contender: run uuid prefix or commit hash prefix")->required();
  compare_->add_option("--db", db_, "results database (SQLite)")->capture_default_str();
  compare_->add_option("--format", format_, "text | md | csv | json")->capture_default_str();
  add_thresholds(compare_, compare_opt_);
  compare_->footer("\nExample:\n  flatbench compare 1a2b3c4d 5e6f7a8b --format md     (or two commits: flatbench compare 26229ab d37a218)\n");
}

std::optional<int> ReportCommands::run() {
  if (plot_ && *plot_) {
    require_db(db_);
    Store store(db_, true);
    auto plots = build_plots(store, plot_name_);
    if (plots.empty()) std::cerr << "no data for plot '" << plot_name_ << "' in " << db_ << "\n";
    for (const auto& p : plots)
      for (const auto& f : render_plot(p, out_dir_)) std::cout << f.string() << "\n";
    return plots.empty() ? 1 : 0;
  }
  if (dashboard_ && *dashboard_) {
    require_db(db_);
    Store store(db_, true);
    DashboardOptions opt;
    opt.plots = !no_plots_;
    write_dashboard(store, out_html_, opt);
    std::cerr << "wrote " << out_html_ << "\n";
    return 0;
  }
  if (nightly_ && *nightly_) {
    if (config_.empty() && !nightly_opt_.check_only) throw CLI::ValidationError("CONFIG", "a config is needed unless --check-only");
    nightly_opt_.config = config_;
    nightly_opt_.data_dir = data_dir_;
    nightly_opt_.db = db_;
    nightly_opt_.report = report_;
    return run_nightly(nightly_opt_, std::cerr);
  }
  if (compare_ && *compare_) {
    require_db(db_);
    Store store(db_, true);
    auto tables = compare_tables(store, run_a_, run_b_, compare_opt_);
    if (format_ == "json") {
      nlohmann::json all = nlohmann::json::array();
      for (const auto& t : tables) all.push_back(t.to_json());
      std::cout << all.dump(2) << "\n";
      return 0;
    }
    for (const auto& t : tables) std::cout << t.render(format_) << "\n";
    return 0;
  }
  return std::nullopt;
}

}  // namespace fb

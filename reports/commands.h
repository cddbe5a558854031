// The reporting subcommands of the CLI (plot, dashboard, nightly, compare) and `report --table`.
// app/cli.cpp only registers them (ReportCommands::add) and dispatches (ReportCommands::run);
// the work lives here and in the other reports/ files.
#pragma once

#include "reports/nightly.h"

#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace fb {

// `flatbench report --table NAME`: renders the named table(s) in format text | md | csv | json.
int report_table_command(const std::string& db, const std::string& table, const std::string& format);

class ReportCommands {
 public:
  void add(CLI::App& app);
  // The exit code when one of these subcommands was given, else nullopt.
  std::optional<int> run();

 private:
  CLI::App *plot_ = nullptr, *dashboard_ = nullptr, *nightly_ = nullptr, *compare_ = nullptr;
  std::string db_ = kDefaultDbPath;
  std::string plot_name_ = "all", out_dir_ = "results/plots", out_html_ = "results/dashboard.html";
  std::string format_ = "text", config_, data_dir_, report_, run_a_, run_b_;
  bool no_plots_ = false;
  NightlyOptions nightly_opt_;
  CheckOptions compare_opt_;
};

}  // namespace fb

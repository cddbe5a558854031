// `flatbench dashboard --out FILE.html`: one self-contained offline HTML page (inline CSS, JS and
// SVG; nothing fetched from the network) with every report table, the gnuplot plots, trend
// sparklines per job and metric, and a per-job drill-down (<details>) to metrics, sites and GEMM rows.
#pragma once

#include "reports/table.h"

#include <filesystem>
#include <string>
#include <vector>

namespace fb {

class Store;

struct DashboardOptions {
  bool plots = true;     // gnuplot plots (skipped with a visible note when gnuplot is absent)
  int max_jobs = 300;    // drill-down entries (newest first)
};

std::string dashboard_html(const Store& store, const DashboardOptions& opt = {});
void write_dashboard(const Store& store, const std::filesystem::path& out, const DashboardOptions& opt = {});

std::string html_escape(const std::string& s);
std::string table_html(const Table& t, const std::string& css_class = "");
// A small inline SVG polyline of the values (oldest left), for trend columns.
std::string sparkline_svg(const std::vector<double>& values, int width = 120, int height = 28);

}  // namespace fb

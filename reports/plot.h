// Plots with gnuplot: each plot is data (series of points, or bars per category) turned into a
// gnuplot script with inline data blocks, rendered to PNG (pngcairo) and SVG. Plot builders
// read the DB like the table builders, one PlotDef per plot:
//
//   flatbench plot beta --out-dir plots/      → plots/beta_<model>.png, .svg
#pragma once

#include "reports/param_reads.h"

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace fb {

class Store;

struct Series {
  std::string title;
  std::vector<std::pair<double, double>> points;  // (x, y); for bar plots x = category index
  bool y2 = false;                                // right-hand axis
  std::string style = "linespoints";              // gnuplot `with` style: linespoints, points, boxes, lines
};

struct Plot {
  std::string name;  // file stem
  std::string title, xlabel, ylabel, y2label;
  bool logy = false;
  bool x_is_time = false;               // x = Unix seconds, shown as dates
  std::vector<std::string> categories;  // non-empty: clustered bars, one bar per series per category
  std::vector<Series> series;
  bool logx = false;
  bool empty() const;
};

// The gnuplot script drawing `plot` to `output` with terminal "png" or "svg".
std::string gnuplot_script(const Plot& plot, const std::string& format, const std::filesystem::path& output);

// Path of the gnuplot executable, or "" when it is not installed.
std::string find_gnuplot();
// Writes <dir>/<name>.png and .svg. Throws std::runtime_error when gnuplot is missing or fails.
std::vector<std::filesystem::path> render_plot(const Plot& plot, const std::filesystem::path& dir);
// The plot as SVG text (no XML prolog), for inlining into HTML.
std::string render_svg(const Plot& plot);

struct PlotDef {
  std::string name, help;
  std::function<std::vector<Plot>(const Store&)> build;
  std::vector<ParamRef> reads = {};  // the method parameters it reads (a test checks each against the schema)
};
const std::vector<PlotDef>& plot_defs();
// The named plots, or every plot for "all"; plots without data are dropped. Throws on an unknown name.
std::vector<Plot> build_plots(const Store& store, const std::string& name);
std::string plot_list_help();

// "2026-11-23T19:00:00.123Z" → Unix seconds (NaN when unparsable).
double iso_to_unix(const std::string& iso);

}  // namespace fb

#include "reports/plot.h"

#include "harness/store.h"
#include "reports/query.h"
#include "reports/tables.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <tuple>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

namespace fb {

namespace fs = std::filesystem;

bool Plot::empty() const {
  for (const auto& s : series)
    if (!s.points.empty()) return false;
  return true;
}

double iso_to_unix(const std::string& iso) {
  std::tm tm{};
  double sec = 0;
  if (std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%lf", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &sec) != 6)
    return NAN;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_sec = static_cast<int>(sec);
  return static_cast<double>(timegm(&tm)) + (sec - tm.tm_sec);
}

namespace {

// A gnuplot double-quoted string: backslashes and quotes escaped.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string number(double v) { return std::isfinite(v) ? fmt::format("{:.9g}", v) : "?"; }

std::string data_blocks(const Plot& p) {
  std::string out;
  if (!p.categories.empty()) {  // one row per category: label then one column per series
    out += "$bars << EOD\n";
    for (size_t c = 0; c < p.categories.size(); ++c) {
      out += quoted(p.categories[c]);
      for (const auto& s : p.series) {
        double y = NAN;
        for (const auto& [x, v] : s.points)
          if (static_cast<size_t>(x) == c) y = v;
        out += " " + number(y);
      }
      out += "\n";
    }
    return out + "EOD\n";
  }
  for (size_t i = 0; i < p.series.size(); ++i) {
    out += fmt::format("$d{} << EOD\n", i);
    for (const auto& [x, y] : p.series[i].points) out += number(x) + " " + number(y) + "\n";
    out += "EOD\n";
  }
  return out;
}

std::string plot_command(const Plot& p) {
  std::string cmd = "plot ";
  for (size_t i = 0; i < p.series.size(); ++i) {
    const Series& s = p.series[i];
    if (i) cmd += ", \\\n     ";
    if (!p.categories.empty())
      cmd += fmt::format("$bars using {}{} title {}", i + 2, i == 0 ? ":xtic(1)" : "", quoted(s.title));
    else
      cmd += fmt::format("$d{} using 1:2 with {} title {}{}", i, s.style, quoted(s.title), s.y2 ? " axes x1y2" : "");
  }
  return cmd + "\n";
}

}  // namespace

std::string gnuplot_script(const Plot& p, const std::string& format, const fs::path& output) {
  std::string s;
  if (format == "png")
    s += "set terminal pngcairo size 960,560 noenhanced font \"sans,10\" background rgb \"white\"\n";
  else if (format == "svg")
    s += "set terminal svg size 960,560 noenhanced font \"sans,10\" background rgb \"white\"\n";
  else
    throw std::invalid_argument("plot format must be png or svg, got '" + format + "'");
  s += "set output " + quoted(output.string()) + "\n";
  s += "set datafile missing \"?\"\nset grid\nset key outside below\n";
  s += "set title " + quoted(p.title) + "\nset xlabel " + quoted(p.xlabel) + "\nset ylabel " + quoted(p.ylabel) + "\n";
  bool any_y2 = false;
  for (const auto& sr : p.series) any_y2 = any_y2 || sr.y2;
  if (any_y2) s += "set y2label " + quoted(p.y2label) + "\nset ytics nomirror\nset y2tics\n";
  if (p.logy) s += "set logscale y\n";
  if (p.logx) s += "set logscale x\n";
  if (p.x_is_time) s += "set xdata time\nset timefmt \"%s\"\nset format x \"%m-%d\\n%H:%M\"\n";
  if (!p.categories.empty())
    s += "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1\n"
         "set xtics rotate by -30\nset boxwidth 0.9\n";
  s += data_blocks(p);
  s += plot_command(p);
  return s;
}

std::string find_gnuplot() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    fs::path exe = fs::path(dir) / "gnuplot";
    if (!dir.empty() && access(exe.c_str(), X_OK) == 0) return exe.string();
  }
  return "";
}

namespace {
void run_gnuplot(const Plot& p, const std::string& format, const fs::path& output) {
  std::string gnuplot = find_gnuplot();
  if (gnuplot.empty())
    throw std::runtime_error("gnuplot not found on PATH: plots need it (Debian: apt-get install gnuplot-nox; "
                             "scripts/deps.sh installs it)");
  fs::path script = output;
  script += ".gp";
  fs::path err = output;
  err += ".err";
  {
    std::ofstream f(script);
    if (!f) throw std::runtime_error("cannot write " + script.string());
    f << gnuplot_script(p, format, output);
  }
  std::string cmd = fmt::format("'{}' '{}' 2> '{}'", gnuplot, script.string(), err.string());
  int rc = std::system(cmd.c_str());
  std::ifstream e(err);
  std::string message((std::istreambuf_iterator<char>(e)), std::istreambuf_iterator<char>());
  fs::remove(err);
  if (rc != 0 || !fs::exists(output) || fs::file_size(output) == 0)
    throw std::runtime_error(fmt::format("gnuplot failed on {} ({}): {}", script.string(), p.name, message));
  fs::remove(script);
}
}  // namespace

std::vector<fs::path> render_plot(const Plot& p, const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<fs::path> out;
  for (const char* format : {"png", "svg"}) {
    fs::path file = dir / (p.name + "." + format);
    run_gnuplot(p, format, file);
    out.push_back(file);
  }
  return out;
}

std::string render_svg(const Plot& p) {
  std::string tmpl = (fs::temp_directory_path() / "flatbench-plot-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary folder for plots");
  fs::path dir = tmpl, file = dir / "plot.svg";
  std::string svg;
  try {
    run_gnuplot(p, "svg", file);
    std::ifstream f(file);
    svg.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  } catch (...) {
    fs::remove_all(dir);
    throw;
  }
  fs::remove_all(dir);
  auto start = svg.find("<svg");
  return start == std::string::npos ? svg : svg.substr(start);
}

// ---------------------------------------------------------------- plot builders
namespace {

std::string safe_stem(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
  return s;
}

// FlattenQuant rows per model, then per setting (the method's other non-default parameters), sorted by
// the swept parameter; points outside (0, 1e29) are left out (γ < 0 and γ = 1e30 are "all INT8/INT4").
using Sweep = std::map<std::string, std::map<std::string, std::vector<std::pair<double, const MergedRow*>>>>;
Sweep sweep_by_model(const std::vector<MergedRow>& merged, const ParamRef& param) {
  Sweep out;
  for (const auto& m : merged) {
    const json* v = method_param(m.row.job.spec, param);
    if (!v || !v->is_number()) continue;
    double x = v->get<double>();
    if (!(x > 0 && x < 1e29)) continue;
    out[model_cell(m.row)][method_cell(m.row.job.spec, {param.name})].push_back({x, &m});
  }
  for (auto& [model, settings] : out) {
    for (auto& [setting, pts] : settings)
      std::sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    // fewer than 3 points is not a sweep (e.g. β = 0.5 / 1 inside a γ sweep)
    std::erase_if(settings, [](const auto& kv) { return kv.second.size() < 3; });
  }
  std::erase_if(out, [](const auto& kv) { return kv.second.empty(); });
  return out;
}

// One plot per model of a FlattenQuant sweep over `param` (named after it: beta_<model>, ...);
// `series_of` turns one setting's points into its curves, empty curves are left out.
using SweepPoints = std::vector<std::pair<double, const MergedRow*>>;
struct SweepPlot {
  const ParamRef& param;
  std::string title;  // the model is appended
  std::string xlabel, ylabel, y2label;
  bool logx = false;
  std::function<std::vector<Series>(const std::string& setting, const SweepPoints& pts)> series_of;
};

std::vector<Plot> sweep_plots(const Store& store, const SweepPlot& sweep) {
  std::vector<Plot> out;
  auto jobs = latest_rows(store, "flattenquant");
  auto merged = merge_by_method(jobs);
  for (const auto& [model, settings] : sweep_by_model(merged, sweep.param)) {
    Plot p{sweep.param.name + "_" + safe_stem(model), sweep.title + " — " + model, sweep.xlabel, sweep.ylabel,
           sweep.y2label, false, false, {}, {}};
    p.logx = sweep.logx;
    for (const auto& [setting, pts] : settings)
      for (Series& s : sweep.series_of(setting, pts))
        if (!s.points.empty()) p.series.push_back(std::move(s));
    out.push_back(p);
  }
  return out;
}

// β sweep: PPL (left axis) and the flatten ratio (right axis) of one setting.
std::vector<Series> beta_curves(const std::string& setting, const SweepPoints& pts) {
  Series ppl{"PPL " + setting, {}, false, "linespoints"}, ratio{"flatten % " + setting, {}, true, "linespoints dt 2"};
  for (const auto& [beta, m] : pts) {
    if (m->row.has("ppl")) ppl.points.push_back({beta, m->row.value("ppl")});
    double r = fraction_metric(m->row, "flatten_ratio");
    if (!std::isnan(r)) ratio.points.push_back({beta, 100 * r});
  }
  return {ppl, ratio};
}

// γ sweep: the INT4 share by layers and by FLOPs (left axis) and PPL (right axis) of one setting.
std::vector<Series> gamma_curves(const Store& store, const std::string& setting, const SweepPoints& pts) {
  Series layers{"INT4 % (layers) " + setting, {}, false, "linespoints"},
      flops{"INT4 % (FLOPs) " + setting, {}, false, "linespoints dt 3"}, ppl{"PPL " + setting, {}, true, "linespoints dt 2"};
  for (const auto& [g, m] : pts) {
    Int4Share s = int4_share(store, m->row);
    if (!std::isnan(s.layers)) layers.points.push_back({g, 100 * s.layers});
    if (!std::isnan(s.flops)) flops.points.push_back({g, 100 * s.flops});
    if (m->row.has("ppl")) ppl.points.push_back({g, m->row.value("ppl")});
  }
  return {layers, flops, ppl};
}

std::vector<Plot> beta_plots(const Store& store) {
  return sweep_plots(store, {report_params::kBeta, "PPL and flatten ratio vs β", "β (flatten threshold, log scale)",
                             "PPL", "flatten ratio (%)", true, beta_curves});
}

std::vector<Plot> gamma_plots(const Store& store) {
  return sweep_plots(store, {report_params::kGamma, "INT4 share and PPL vs γ", "γ (KL threshold, log scale)",
                             "INT4 share (%)", "PPL", true,
                             [&store](const std::string& setting, const SweepPoints& pts) {
                               return gamma_curves(store, setting, pts);
                             }});
}

std::vector<Plot> latency_plots(const Store& store) {
  // One plot per device: bars per shape, one bar per precision (best backend's median).
  using Shape = std::tuple<long, long, long>;  // M, N, K: numeric order on the x axis
  std::map<std::string, std::map<Shape, std::map<std::string, double>>> best;  // device → shape → class → ms
  for (const auto& r : latest_rows(store, "", "gemm"))
    for (const auto& g : store.gemms(r.job.id)) {
      std::string cls = precision_class(g.dtype);
      if (cls.empty() || g.median_ms <= 0) continue;
      auto& slot = best[g.device][{g.m, g.n, g.k}];
      if (!slot.count(cls) || g.median_ms < slot[cls]) slot[cls] = g.median_ms;
    }
  std::vector<Plot> out;
  for (const auto& [device, shapes] : best) {
    Plot p{"latency_" + safe_stem(device), "GEMM latency per precision and shape (M×N×K) — " + device, "shape", "median ms",
           "", true, false, {}, {}};
    std::vector<std::string> classes;
    for (const char* c : {"fp32", "fp16", "fp8", "int8", "int4", "flatten", "transform"})
      for (const auto& [shape, m] : shapes)
        if (m.count(c) && std::find(classes.begin(), classes.end(), c) == classes.end()) classes.push_back(c);
    // Bars per shape while they stay readable; beyond that a log-log scatter of latency against GEMM size.
    constexpr size_t kMaxBarShapes = 12;
    const bool bars = shapes.size() <= kMaxBarShapes;
    if (bars) {
      for (const auto& [shape, m] : shapes)
        p.categories.push_back(fmt::format("{}x{}x{}", std::get<0>(shape), std::get<1>(shape), std::get<2>(shape)));
    } else {
      p.xlabel = "GFLOP per GEMM (2·M·N·K, log scale)";
      p.logx = true;
    }
    for (const auto& c : classes) {
      Series s{c, {}, false, bars ? "boxes" : "points pt 7 ps 0.5"};
      size_t i = 0;
      for (const auto& [shape, m] : shapes) {
        double gflop = 2e-9 * std::get<0>(shape) * std::get<1>(shape) * std::get<2>(shape);
        if (m.count(c)) s.points.push_back({bars ? static_cast<double>(i) : gflop, m.at(c)});
        ++i;
      }
      p.series.push_back(s);
    }
    out.push_back(p);
  }
  return out;
}

std::vector<Plot> site_plots(const Store& store) {
  // Per model, the FlattenQuant job that flattened most (newest among equals): channels added and KL per site.
  std::map<std::string, std::pair<long, ReportRow>> chosen;  // model → (channels added, job)
  for (auto& r : latest_rows(store, "flattenquant")) {
    long added = 0;
    for (const auto& x : store.sites(r.job.id)) added += x.k_flat - x.k_in;
    auto it = chosen.find(model_cell(r));
    if (it == chosen.end() || added >= it->second.first) chosen.insert_or_assign(model_cell(r), std::make_pair(added, r));
  }
  std::vector<Plot> out;
  for (const auto& [model, choice] : chosen) {
    const ReportRow& row = choice.second;
    auto sites = store.sites(row.job.id);
    if (sites.empty()) continue;
    Plot p{"sites_" + safe_stem(model), "Per-site flatten counts and KL — " + model + " (" + method_cell(row.job.spec) + ")",
           "site (layer-major order)", "channels added by flatten", "KL value", false, false, {}, {}};
    Series added{"K flat − K in", {}, false, "boxes fill solid 0.5"}, kl{"KL (INT4 histogram)", {}, true, "points pt 7"};
    for (size_t i = 0; i < sites.size(); ++i) {
      added.points.push_back({double(i), double(sites[i].k_flat - sites[i].k_in)});
      if (sites[i].kl >= 0) kl.points.push_back({double(i), sites[i].kl});
    }
    p.series = {added, kl};
    out.push_back(p);
  }
  return out;
}

// Metric history over runs, relative to each series' first value so different shapes share an axis.
std::vector<Plot> trend_plots(const Store& store) {
  struct Group {
    const char* name;
    const char* title;
    std::function<bool(const Metric&)> want;
  };
  const Group groups[] = {
      {"trend_latency", "Latency over runs (relative to the first run)",
       [](const Metric& m) { return m.unit == "ms"; }},
      {"trend_ppl", "PPL over runs (relative to the first run)", [](const Metric& m) { return m.name == "ppl"; }},
      {"trend_throughput", "Throughput over runs (relative to the first run)",
       [](const Metric& m) { return m.unit == "tok/s"; }},
  };
  auto history = all_rows(store);
  std::vector<Plot> out;
  constexpr size_t kMaxSeries = 12;  // more lines than this is unreadable
  for (const auto& g : groups) {
    std::map<std::string, Series> series;  // label/metric → points
    for (const auto& r : history)
      for (const auto& [name, m] : r.metrics) {
        if (!g.want(m)) continue;
        std::string title = (r.job.label.empty() ? r.job.key.substr(0, 8) : r.job.label) + " " + name;
        auto& s = series[title];
        s.title = title;
        s.points.push_back({iso_to_unix(r.job.started_at), m.value});
      }
    Plot p{g.name, g.title, "run date (UTC)", "value / first value", "", false, true, {}, {}};
    for (auto& [title, s] : series) {
      if (s.points.size() < 2 || p.series.size() == kMaxSeries) continue;
      double first = s.points.front().second;
      for (auto& pt : s.points) pt.second = first != 0 ? pt.second / first : NAN;
      p.series.push_back(s);
    }
    out.push_back(p);
  }
  return out;
}

}  // namespace

const std::vector<PlotDef>& plot_defs() {
  static const std::vector<PlotDef> defs = {
      {"beta", "PPL and flatten ratio vs β, per model (FlattenQuant Table 8)", beta_plots, {report_params::kBeta}},
      {"gamma", "INT4 share and PPL vs γ, per model (FlattenQuant Table 10)", gamma_plots, {report_params::kGamma}},
      {"latency", "GEMM latency per precision per shape, per device (Table 5)", latency_plots},
      {"sites", "per-layer flatten counts and KL values of the newest FlattenQuant job per model", site_plots},
      {"trend", "latency, PPL and throughput over runs (nightly history)", trend_plots},
  };
  return defs;
}

std::vector<Plot> build_plots(const Store& store, const std::string& name) {
  std::vector<Plot> out;
  bool found = false;
  for (const auto& d : plot_defs()) {
    if (name != "all" && d.name != name) continue;
    found = true;
    for (auto& p : d.build(store))
      if (!p.empty()) out.push_back(std::move(p));
  }
  if (!found) {
    std::string known;
    for (const auto& d : plot_defs()) known += (known.empty() ? "" : ", ") + d.name;
    throw std::invalid_argument("unknown plot '" + name + "' (known: " + known + ", all)");
  }
  return out;
}

std::string plot_list_help() {
  std::string out;
  for (const auto& d : plot_defs()) out += fmt::format("  {:<9} {}\n", d.name, d.help);
  return out;
}

}  // namespace fb

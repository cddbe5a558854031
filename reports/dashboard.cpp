#include "reports/dashboard.h"

#include "harness/store.h"
#include "reports/plot.h"
#include "reports/query.h"
#include "reports/regression.h"
#include "reports/tables.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <stdexcept>

namespace fb {

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  return out;
}

std::string table_html(const Table& t, const std::string& css_class) {
  std::string out = "<table class=\"sortable " + css_class + "\">";
  if (!t.title.empty()) out += "<caption>" + html_escape(t.title) + "</caption>";
  out += "<thead><tr>";
  for (const auto& h : t.headers) out += "<th>" + html_escape(h) + "</th>";
  out += "</tr></thead><tbody>";
  for (const auto& r : t.rows) {
    out += "<tr>";
    for (size_t c = 0; c < t.headers.size(); ++c) {
      std::string cell = c < r.size() ? r[c] : "";
      // Pre-rendered SVG cells (sparklines) go in as markup; everything else is text.
      out += "<td>" + (cell.rfind("<svg", 0) == 0 ? cell : html_escape(cell)) + "</td>";
    }
    out += "</tr>";
  }
  out += "</tbody></table>";
  if (!t.notes.empty()) {
    out += "<ul class=\"notes\">";
    for (const auto& n : t.notes) out += "<li>" + html_escape(n) + "</li>";
    out += "</ul>";
  }
  return out;
}

std::string sparkline_svg(const std::vector<double>& values, int width, int height) {
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x)) v.push_back(x);
  if (v.size() < 2) return "";
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  double span = *hi - *lo > 0 ? *hi - *lo : 1;
  std::string pts;
  for (size_t i = 0; i < v.size(); ++i) {
    double x = 2 + (width - 4) * double(i) / (v.size() - 1);
    double y = height - 2 - (height - 4) * (v[i] - *lo) / span;
    pts += fmt::format("{}{:.1f},{:.1f}", i ? " " : "", x, y);
  }
  auto last = pts.substr(pts.rfind(' ') + 1);
  auto comma = last.find(',');
  return fmt::format(
      "<svg class=\"spark\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" role=\"img\">"
      "<polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"1.5\" points=\"{2}\"/>"
      "<circle cx=\"{3}\" cy=\"{4}\" r=\"2.5\" fill=\"#d1242f\"/></svg>",
      width, height, pts, last.substr(0, comma), last.substr(comma + 1));
}

namespace {

const char* kStyle = R"CSS(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d1d9;font-size:12px}
nav{padding:8px 24px;background:#eaeef2;position:sticky;top:0;z-index:1}nav a{margin-right:16px;color:#0969da}
main{padding:8px 24px 40px}section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;margin:16px 0}
h2{font-size:17px;margin:4px 0 10px}table{border-collapse:collapse;margin:10px 0;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
th{background:#f0f3f6;cursor:pointer}tr:nth-child(even) td{background:#fafbfc}
ul.notes{margin:0 0 12px;padding-left:18px;color:#57606a;font-size:12px}
.plot svg{max-width:100%;height:auto;border:1px solid #d0d7de;margin:6px 0}
details{border-bottom:1px solid #eaeef2;padding:4px 0}summary{cursor:pointer}
pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}.warn{color:#9a6700}
.regression{color:#d1242f;font-weight:600}.improvement{color:#1a7f37;font-weight:600}
input#filter{padding:4px 8px;width:320px;margin-bottom:8px}
)CSS";

// Click a header to sort its table; type in the box to filter the job drill-down.
const char* kScript = R"JS(
document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){
  var table=th.closest('table'),body=table.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th);
  var asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=a.cells[i].textContent,y=b.cells[i].textContent,nx=parseFloat(x),ny=parseFloat(y);
    var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;});
  rows.forEach(function(r){body.appendChild(r);});});});
var f=document.getElementById('filter');
if(f)f.addEventListener('input',function(){var q=f.value.toLowerCase();
  document.querySelectorAll('#jobs details').forEach(function(d){
    d.style.display=d.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});
)JS";

std::string runs_section(const Store& store) {
  Table t{"runs (newest first)", {"run", "started", "commit", "host", "cpu", "jobs"}, {}, {}};
  std::map<std::string, int> counts;
  std::vector<std::string> order;
  auto jobs = store.done_jobs({.newest_first = true});
  for (const auto& j : jobs)
    if (counts[j.run_uuid]++ == 0) order.push_back(j.run_uuid);
  for (const auto& uuid : order) {
    RunRef r = run_ref(store, uuid);
    t.add_row({uuid.substr(0, 8), r.started_at, r.commit.substr(0, 10) + (r.dirty ? " (dirty)" : ""), r.host, r.cpu,
               std::to_string(counts[uuid])});
  }
  return "<section id=\"runs\"><h2>Runs</h2>" + table_html(t) + "</section>";
}

std::string tables_section(const Store& store) {
  std::string out = "<section id=\"tables\"><h2>Tables</h2>";
  for (const auto& def : table_defs()) {
    out += "<h3 id=\"t-" + def.name + "\">" + html_escape(def.name) + " — " + html_escape(def.help) + "</h3>";
    for (const auto& t : def.build(store)) out += table_html(t, "report");
  }
  return out + "</section>";
}

std::string plots_section(const Store& store, const DashboardOptions& opt) {
  std::string out = "<section id=\"plots\"><h2>Plots</h2>";
  if (!opt.plots) return out + "<p class=\"warn\">plots disabled (--no-plots)</p></section>";
  if (find_gnuplot().empty())
    return out + "<p class=\"warn\">plots omitted: gnuplot is not installed (Debian: gnuplot-nox)</p></section>";
  auto plots = build_plots(store, "all");
  if (plots.empty()) out += "<p>no data to plot yet</p>";
  for (const auto& p : plots) out += "<div class=\"plot\" id=\"p-" + p.name + "\">" + render_svg(p) + "</div>";
  return out + "</section>";
}

// One row per (job key, metric) with history: a sparkline of its values over runs and the last verdict.
std::string trends_section(const Store& store) {
  Table t{"metric history per job (oldest → newest; red dot = latest)",
          {"job", "metric", "runs", "first", "latest", "change", "trend"},
          {},
          {}};
  std::map<std::pair<std::string, std::string>, std::vector<double>> series;
  std::map<std::string, std::string> labels;
  for (const auto& r : all_rows(store)) {
    labels[r.job.key] = r.job.label.empty() ? r.job.key.substr(0, 12) : r.job.label;
    for (const auto& [name, m] : r.metrics) series[{r.job.key, name}].push_back(m.value);
  }
  for (const auto& [k, v] : series) {
    if (v.size() < 2) continue;
    double change = v.front() != 0 ? (v.back() - v.front()) / std::fabs(v.front()) : NAN;
    t.add_row({labels[k.first], k.second, std::to_string(v.size()), fmt_num(v.front()), fmt_num(v.back()),
               std::isfinite(change) ? fmt::format("{:+.2f}%", 100 * change) : "", sparkline_svg(v)});
  }
  if (t.rows.empty()) t.notes.push_back("every job has run once so far: trends appear after the next run (e.g. nightly)");
  return "<section id=\"trends\"><h2>Trends</h2>" + table_html(t, "trends") + "</section>";
}

std::string job_details(const Store& store, const JobRow& j) {
  std::string out = fmt::format("<details><summary><b>{}</b> <code>{}</code> {}{}</summary>", html_escape(j.label),
                                j.key.substr(0, 12), html_escape(j.started_at),
                                j.synthetic ? " <span class=\"warn\">[synthetic]</span>" : "");
  if (std::string why = row_problem(load_row(store, j)); !why.empty())
    out += "<p class=\"warn\">not reportable, left out of the tables, plots and trends: " + html_escape(why) +
           " (a NaN or Inf an older flatbench stored as NULL)</p>";
  Table mt{"metrics", {"name", "value", "unit", "n", "stddev"}, {}, {}};
  for (const auto& m : store.metrics(j.id))
    mt.add_row({m.name, fmt_num(m.value, 6), m.unit, std::to_string(m.n), m.n > 1 ? fmt_num(m.stddev) : ""});
  out += table_html(mt, "metrics");
  auto sites = store.sites(j.id);
  if (!sites.empty()) {
    Table st{"sites", {"layer", "role", "W bits", "A bits", "K in", "K flat", "K pad", "KL", "clip", "mse", "flops"}, {}, {}};
    for (const auto& s : sites)
      st.add_row({std::to_string(s.layer), s.role, std::to_string(s.w_bits), std::to_string(s.a_bits),
                  std::to_string(s.k_in), std::to_string(s.k_flat), std::to_string(s.k_pad), s.kl >= 0 ? fmt_num(s.kl) : "",
                  fmt_num(s.clip), s.mse >= 0 ? fmt_num(s.mse) : "", fmt_num(s.flops)});
    out += table_html(st, "sites");
  }
  auto gemms = store.gemms(j.id);
  if (!gemms.empty()) {
    Table gt{"GEMM", kGemmColumns, {}, {}};
    for (const auto& g : gemms) gt.add_row(gemm_cells(g));
    out += table_html(gt, "gemm");
  }
  out += "<pre>" + html_escape(j.spec.dump(2)) + "</pre>";
  out += "<p>" + html_escape(run_ref(store, j.run_uuid).describe()) + "</p>";
  return out + "</details>";
}

std::string jobs_section(const Store& store, const DashboardOptions& opt) {
  std::string out = "<section id=\"jobs\"><h2>Jobs (newest result per job; click to drill down)</h2>"
                    "<input id=\"filter\" placeholder=\"filter jobs…\">";
  auto jobs = store.latest_done_jobs();
  std::reverse(jobs.begin(), jobs.end());  // newest first
  int shown = 0;
  for (const auto& j : jobs) {
    if (shown++ == opt.max_jobs) break;
    out += job_details(store, j);
  }
  if (jobs.empty()) out += "<p>no finished jobs yet</p>";
  return out + "</section>";
}

}  // namespace

std::string dashboard_html(const Store& store, const DashboardOptions& opt) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
                     "<title>flatbench dashboard</title><style>" +
                     std::string(kStyle) + "</style></head><body>";
  html += fmt::format("<header><h1>flatbench dashboard</h1><p>database {} · generated {} · offline, self-contained</p></header>",
                      html_escape(store.path().string()), now_iso8601());
  html += "<nav><a href=\"#runs\">Runs</a><a href=\"#tables\">Tables</a><a href=\"#plots\">Plots</a>"
          "<a href=\"#trends\">Trends</a><a href=\"#jobs\">Jobs</a></nav><main>";
  html += runs_section(store) + tables_section(store) + plots_section(store, opt) + trends_section(store) +
          jobs_section(store, opt);
  html += "</main><script>" + std::string(kScript) + "</script></body></html>\n";
  return html;
}

void write_dashboard(const Store& store, const std::filesystem::path& out, const DashboardOptions& opt) {
  std::string html = dashboard_html(store, opt);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  std::ofstream f(out);
  if (!f) throw std::runtime_error("cannot write dashboard " + out.string());
  f << html;
}

}  // namespace fb

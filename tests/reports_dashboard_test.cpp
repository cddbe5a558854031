// The dashboard is one offline HTML file; headless Chromium renders it to a screenshot whose pixels
// are checked (not blank), and its DOM holds the tables. Plots and the CLI's plot command with gnuplot.
#include "reports/dashboard.h"

#include "reports/plot.h"
#include "reports/png.h"
#include "reports/tables.h"
#include "reports_test_util.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <unistd.h>

namespace fb {
namespace {

using test::make_spec;
using test::metric;
using test::noisy;

// A DB with FlattenQuant sites, a γ sweep, GEMM rows and a history of two runs.
void fill(test::ReportDb& db) {
  for (int r = 0; r < 2; ++r) {
    std::string run = db.run("hostA", "abc1234", fmt::format("2026-11-2{}T02:00:00.000Z", r));
    for (double gamma : {0.01, 0.1, 1.0}) {
      JobResult res;
      res.synthetic = true;
      for (int layer = 0; layer < 4; ++layer) {
        SiteRecord s;
        s.layer = layer;
        s.role = "fc1";
        s.w_bits = s.a_bits = layer < gamma * 4 ? 4 : 8;
        s.k_in = 64, s.k_flat = 64 + 3 * layer, s.k_pad = 96, s.kl = 0.1 * layer, s.flops = 1;
        res.sites.push_back(s);
      }
      res.metrics = {metric("ppl", 10 + gamma + 0.1 * r), metric("flatten_ratio", 0.1)};
      db.job(run, make_spec("opt-synth", "flattenquant", {{"gamma", gamma}, {"beta", 2}}, "ppl"), res,
             fmt::format("opt-synth flattenquant(gamma={}) ppl", gamma));
    }
    for (double beta : {0.25, 0.5, 1.0}) {  // a β sweep: flatten ratio falls as β rises
      JobResult res;
      res.synthetic = true;
      res.metrics = {metric("ppl", 10 + beta), metric("flatten_ratio", 40 * (1 - beta), "%")};
      db.job(run, make_spec("opt-synth", "flattenquant", {{"beta", beta}}, "ppl"), res,
             fmt::format("opt-synth flattenquant(beta={}) ppl", beta));
    }
    JobResult gemm;
    for (auto [dtype, ms] : {std::pair{"fp32", 2.0}, {"s8s8s32", 1.0}, {"w4a8", 0.6}}) {
      GemmRecord g;
      g.backend = "b", g.dtype = dtype, g.m = 256, g.n = g.k = 768, g.median_ms = ms * (1 + 0.1 * r);
      gemm.gemms.push_back(g);
    }
    gemm.metrics = {metric("ms/b/256x768x768", 2.0 * (1 + 0.1 * r), "ms", noisy(2.0, 0.05, 5, r))};
    db.job(run, make_spec("", "", json::object(), "gemm"), gemm, "gemm");
  }
}

std::string find_program(std::initializer_list<const char*> names) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin";
  for (const char* n : names) {
    size_t start = 0;
    while (start <= dirs.size()) {
      size_t end = dirs.find(':', start);
      std::string exe = dirs.substr(start, end - start) + "/" + n;
      if (access(exe.c_str(), X_OK) == 0) return exe;
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return "";
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  return {(std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()};
}

TEST(ReportDashboard, IsOneOfflineFileWithTablesTrendsAndDrillDown) {
  test::ReportDb db;
  fill(db);
  DashboardOptions opt;
  opt.plots = !find_gnuplot().empty();
  std::string html = dashboard_html(db.store, opt);
  EXPECT_NE(html.find("<table"), std::string::npos);
  for (const auto& def : table_defs()) EXPECT_NE(html.find("id=\"t-" + def.name + "\""), std::string::npos) << def.name;
  EXPECT_NE(html.find("<details>"), std::string::npos);
  EXPECT_NE(html.find("class=\"spark\""), std::string::npos);  // trend sparklines: two runs of each job
  EXPECT_NE(html.find("K flat"), std::string::npos);           // per-site drill-down
  // Offline: nothing is loaded from anywhere (SVG's xmlns is a name, not a fetch).
  EXPECT_FALSE(std::regex_search(html, std::regex(R"((src|href)\s*=\s*"(https?:)?//)"))) << "external reference";
  EXPECT_EQ(html.find("<link"), std::string::npos);
  if (opt.plots) {
    EXPECT_NE(html.find("id=\"p-gamma_opt-synth__synthetic_\""), std::string::npos);
    EXPECT_NE(html.find("id=\"p-latency_cpu\""), std::string::npos);
    EXPECT_EQ(html.find("<?xml"), std::string::npos);
  }
}

// A GEMM row that was never timed (its backend failed verification or cannot run the shape)
// shows its verdict and empty timing cells in the drill-down, not "0" ms and "0" GOP/s.
TEST(ReportDashboard, AnUntimedGemmRowShowsItsVerdictNotZeros) {
  test::ReportDb db;
  JobResult r;
  GemmRecord timed{"cpu", "ours_s8", "s8s8s32", 16, 64, 64};
  timed.median_ms = 0.125, timed.gops = 1.0, timed.disposition = gemm_disposition::kPassed;
  GemmRecord refused{"cpu", "onednn_s8", "s8s8s32", 16, 64, 64};
  refused.disposition = gemm_disposition::kNotSupported;
  r.gemms = {timed, refused};
  db.job(db.run(), make_spec("", "", json::object(), "gemm"), r, "gemm");
  const std::string html = dashboard_html(db.store, {});
  const size_t at = html.find("<td>onednn_s8</td>", html.find("<details>"));  // the job's drill-down
  ASSERT_NE(at, std::string::npos);
  const std::string row = html.substr(at, html.find("</tr>", at) - at);
  EXPECT_NE(row.find("<td>not_supported</td>"), std::string::npos) << row;
  EXPECT_EQ(row.find("<td>0</td>"), std::string::npos) << "an untimed row shows no zero timing: " << row;
  EXPECT_NE(html.find("<td>0.125</td>"), std::string::npos) << "the timed row keeps its time";
}

TEST(ReportDashboard, RendersInHeadlessChromium) {
  std::string chromium = find_program({"chromium", "chromium-browser", "google-chrome"});
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (Debian package `chromium`): render test skipped";
  test::ReportDb db;
  fill(db);
  auto html = db.dir / "dashboard.html";
  DashboardOptions opt;
  opt.plots = !find_gnuplot().empty();
  write_dashboard(db.store, html, opt);
  auto png = db.dir / "shot.png", dom = db.dir / "dom.html";
  std::string flags = fmt::format(
      "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update "
      "--disable-sync --no-first-run --user-data-dir='{}'",
      (db.dir / "profile").string());
  std::string shot = fmt::format("timeout 120 '{}' {} --screenshot='{}' --window-size=1280,2000 'file://{}' >/dev/null 2>&1",
                                 chromium, flags, png.string(), html.string());
  ASSERT_EQ(std::system(shot.c_str()), 0) << shot;
  Image img = read_png(png);
  EXPECT_EQ(img.width, 1280);
  EXPECT_EQ(img.height, 2000);
  PixelStats s = pixel_stats(img);
  EXPECT_GT(s.non_background, 0.05) << "screenshot is nearly blank";
  EXPECT_GT(s.distinct_colours, 16) << "screenshot has almost no colours";

  std::string dump = fmt::format("timeout 120 '{}' {} --dump-dom 'file://{}' > '{}' 2>/dev/null", chromium, flags,
                                 html.string(), dom.string());
  ASSERT_EQ(std::system(dump.c_str()), 0) << dump;
  std::string dom_text = slurp(dom);
  EXPECT_NE(dom_text.find("FlattenQuant Table 10"), std::string::npos);
  size_t tables = 0;
  for (size_t p = 0; (p = dom_text.find("<table", p)) != std::string::npos; ++p) ++tables;
  EXPECT_GE(tables, table_defs().size());
}

TEST(ReportPlots, GnuplotWritesPngAndSvgOfEveryPlotWithData) {
  if (find_gnuplot().empty()) GTEST_SKIP() << "gnuplot is not installed (Debian package gnuplot-nox)";
  test::ReportDb db;
  fill(db);
  auto plots = build_plots(db.store, "all");
  std::vector<std::string> names;
  for (const auto& p : plots) names.push_back(p.name);
  for (const char* want : {"beta_opt-synth__synthetic_", "gamma_opt-synth__synthetic_", "latency_cpu",
                           "sites_opt-synth__synthetic_", "trend_latency", "trend_ppl"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  for (const auto& p : plots)
    if (p.name == "beta_opt-synth__synthetic_") {
      ASSERT_EQ(p.series.size(), 2u);  // the β sweep only: the γ jobs have one β each, which is no sweep
      EXPECT_EQ(p.series[0].title, "PPL flattenquant");
      ASSERT_EQ(p.series[1].points.size(), 3u);
      EXPECT_DOUBLE_EQ(p.series[1].points[0].first, 0.25);
      EXPECT_DOUBLE_EQ(p.series[1].points[0].second, 30);  // flatten_ratio 30 % stays 30 on a % axis
      EXPECT_TRUE(p.series[1].y2);
    }
  for (const auto& p : plots) {
    auto files = render_plot(p, db.dir / "plots");
    ASSERT_EQ(files.size(), 2u);
    Image img = read_png(files[0]);
    EXPECT_EQ(img.width, 960);
    EXPECT_GT(pixel_stats(img).non_background, 0.01) << p.name;
    EXPECT_NE(slurp(files[1]).find("<svg"), std::string::npos);
  }
}

TEST(ReportPlots, ScriptsCarryTheDataAndMissingValues) {
  Plot p{"x", "t", "β", "PPL", "ratio", false, false, {}, {}};
  p.series = {Series{"PPL \"a\"", {{1, 2.5}, {2, NAN}}, false, "linespoints"}, Series{"r", {{1, 3}}, true, "points"}};
  std::string s = gnuplot_script(p, "svg", "/tmp/x.svg");
  EXPECT_NE(s.find("$d0 << EOD\n1 2.5\n2 ?\nEOD"), std::string::npos) << s;
  EXPECT_NE(s.find("title \"PPL \\\"a\\\"\""), std::string::npos) << s;
  EXPECT_NE(s.find("axes x1y2"), std::string::npos);
  EXPECT_THROW(gnuplot_script(p, "pdf", "/tmp/x.pdf"), std::invalid_argument);
  EXPECT_NEAR(iso_to_unix("2026-11-23T19:00:00.500Z") - iso_to_unix("2026-11-23T18:00:00.000Z"), 3600.5, 1e-6);
}

TEST(ReportPlots, ManyShapesBecomeALatencyScatterOverGemmSize) {
  test::ReportDb db;
  JobResult r;
  for (long m = 1; m <= 13; ++m) {  // 13 shapes: more than bars can show
    GemmRecord g;
    g.backend = "ours", g.dtype = "s8s8s32", g.m = m, g.n = g.k = 1000, g.median_ms = 0.01 * m;
    r.gemms.push_back(g);
  }
  db.job(db.run(), make_spec("", "", json::object(), "gemm"), r);
  auto plots = build_plots(db.store, "latency");
  ASSERT_EQ(plots.size(), 1u);
  EXPECT_TRUE(plots[0].categories.empty());
  EXPECT_TRUE(plots[0].logx);
  ASSERT_EQ(plots[0].series.size(), 1u);
  EXPECT_EQ(plots[0].series[0].title, "int8");
  ASSERT_EQ(plots[0].series[0].points.size(), 13u);
  EXPECT_DOUBLE_EQ(plots[0].series[0].points[12].first, 2e-9 * 13 * 1000 * 1000);  // GFLOP of 13×1000×1000
  EXPECT_DOUBLE_EQ(plots[0].series[0].points[12].second, 0.13);
}

TEST(ReportPlots, MissingGnuplotIsAClearError) {
  std::string saved = std::getenv("PATH") ? std::getenv("PATH") : "";
  setenv("PATH", "/nonexistent", 1);
  Plot p{"x", "t", "x", "y", "", false, false, {}, {Series{"s", {{1, 2}}, false, "lines"}}};
  test::TempDir dir;
  try {
    render_plot(p, dir.path);
    ADD_FAILURE() << "expected an error without gnuplot";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("gnuplot-nox"), std::string::npos) << e.what();
  }
  setenv("PATH", saved.c_str(), 1);
}

TEST(ReportPlots, SparklineAndEscaping) {
  EXPECT_EQ(sparkline_svg({1}), "");
  EXPECT_NE(sparkline_svg({1, 2, 3}).find("<polyline"), std::string::npos);
  EXPECT_EQ(html_escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
}

}  // namespace
}  // namespace fb

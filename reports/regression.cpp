#include "reports/regression.h"

#include "reports/stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

namespace fb {

namespace {
bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// With fewer repetitions than this on either side the U test is not run (google benchmark's minimum).
constexpr size_t kMinRepetitions = 2;
// Without a usable U test, a change must exceed this many standard deviations of the history (LNT's 99%).
constexpr double kHistorySigmas = 2.576;

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return NAN;
  double mean = 0, ss = 0;
  for (double x : v) mean += x;
  mean /= v.size();
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / (v.size() - 1));
}
}  // namespace

MetricPolicy metric_policy(const std::string& name, const std::string& unit, const Thresholds& th) {
  // An uncertainty (ppl_stderr, mean_nll_stderr) is context for its metric, never a regression itself.
  if (name.size() > 7 && name.compare(name.size() - 7, 7, "_stderr") == 0) return {Better::Neither, th.other, true};
  if (name == "ppl" || name == "mean_nll" || starts_with(name, "ppl")) return {Better::Lower, th.ppl, true};
  if (starts_with(name, "acc") || name.find("accuracy") != std::string::npos) return {Better::Higher, th.accuracy, true};
  if (unit == "tok/s" || unit == "GOP/s" || name == "tok_per_s" || name.find("gops") != std::string::npos)
    return {Better::Higher, th.throughput, false};
  if (unit == "ms" || unit == "s" || unit == "us" || starts_with(name, "ms/")) return {Better::Lower, th.latency, false};
  if (unit == "bytes" || starts_with(name, "mem_")) return {Better::Lower, th.memory, true};
  return {Better::Neither, th.other, true};  // counts, shares, ratios: report a change, never a regression
}

std::vector<double> samples_of(const Metric& m) { return m.samples.empty() ? std::vector<double>{m.value} : m.samples; }

Finding judge(const Metric& current, const std::vector<Metric>& history, const CheckOptions& opt) {
  Finding f;
  f.metric = current.name;
  f.unit = current.unit;
  MetricPolicy pol = metric_policy(current.name, current.unit, opt.thresholds);
  // A deterministic metric's samples (e.g. per-window NLL) are not repetitions: compare its value.
  std::vector<double> cur = pol.deterministic ? std::vector<double>{current.value} : samples_of(current), base;
  for (const auto& h : history) {
    auto s = pol.deterministic ? std::vector<double>{h.value} : samples_of(h);
    base.insert(base.end(), s.begin(), s.end());
  }
  f.current = median(cur);
  f.n_current = static_cast<int>(cur.size());
  f.n_baseline = static_cast<int>(base.size());
  if (history.empty()) {
    f.verdict = "new";
    f.test = "no history";
    return f;
  }
  f.baseline = median(base);
  f.change = f.baseline != 0 ? (f.current - f.baseline) / std::fabs(f.baseline) : (f.current == 0 ? 0 : INFINITY);

  bool significant = false;
  if (pol.deterministic) {
    f.test = "deterministic";
    significant = f.current != f.baseline;
  } else if (cur.size() >= kMinRepetitions && base.size() >= kMinRepetitions) {
    UTestResult u = mann_whitney_u(base, cur);
    f.p = u.p;
    f.test = u.exact ? "U exact" : "U normal";
    significant = u.p < opt.alpha;
  } else {
    std::vector<double> per_run;
    for (const auto& h : history) per_run.push_back(h.value);
    double sd = stddev(per_run);
    if (per_run.size() >= 3 && std::isfinite(sd)) {
      f.test = "2.576σ of history";
      significant = std::fabs(f.current - f.baseline) > kHistorySigmas * sd;
    } else {
      f.test = "too few samples";
    }
  }
  bool large = std::fabs(f.change) >= pol.min_change;
  if (!(significant && large)) {
    f.verdict = "unchanged";
  } else if (pol.better == Better::Neither) {
    f.verdict = "changed";
  } else {
    bool worse = pol.better == Better::Lower ? f.change > 0 : f.change < 0;
    f.verdict = worse ? "regression" : "improvement";
  }
  return f;
}

std::vector<ReportRow> machine_history(const Store& store, const ReportRow& current, int window) {
  RunRef here = run_ref(store, current.job.run_uuid);
  std::vector<ReportRow> out;
  auto older = store.done_jobs({.key = current.job.key,
                                .before_id = current.job.id,
                                .not_run_uuid = current.job.run_uuid,
                                .newest_first = true});
  for (const auto& j : older) {
    if (static_cast<int>(out.size()) == window) break;
    RunRef there = run_ref(store, j.run_uuid);
    if (there.host != here.host || there.cpu != here.cpu) continue;
    auto row = reportable_rows(store, {j});  // a bad past row is no baseline
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

int CheckReport::count(const std::string& verdict) const {
  return static_cast<int>(std::count_if(findings.begin(), findings.end(), [&](const Finding& f) { return f.verdict == verdict; }));
}

CheckReport check_rows(const Store& store, const std::vector<ReportRow>& rows, const CheckOptions& opt) {
  CheckReport rep;
  std::set<std::string> runs;
  for (const auto& row : rows) {
    if (runs.insert(row.job.run_uuid).second) rep.run_uuids.push_back(row.job.run_uuid);
    auto history = machine_history(store, row, opt.window);
    for (const auto& [name, metric] : row.metrics) {
      std::vector<Metric> past;
      for (const auto& h : history)
        if (h.has(name)) past.push_back(h.metrics.at(name));
      Finding f = judge(metric, past, opt);
      f.key = row.job.key;
      f.label = row.job.label;
      rep.findings.push_back(std::move(f));
    }
  }
  return rep;
}

CheckReport check_run(const Store& store, const std::string& prefix, const CheckOptions& opt) {
  auto jobs = store.done_jobs({.run_uuid_prefix = prefix});
  std::set<std::string> runs;
  for (const auto& j : jobs) runs.insert(j.run_uuid);
  if (runs.size() > 1) throw std::invalid_argument("run prefix '" + prefix + "' matches several runs; give more digits");
  if (jobs.empty()) throw std::invalid_argument("no finished jobs in a run matching '" + prefix + "' in " + store.path().string());
  return check_rows(store, reportable_rows(store, jobs), opt);
}

namespace {
Table findings_table(const std::string& title, const std::vector<const Finding*>& fs) {
  Table t{title, {"job", "metric", "baseline", "current", "change", "p", "n (base/cur)", "test", "verdict"}, {}, {}};
  for (const Finding* f : fs)
    t.add_row({f->label.empty() ? f->key.substr(0, 12) : f->label, f->metric + (f->unit.empty() ? "" : " [" + f->unit + "]"),
               num_cell(f->baseline, 5), num_cell(f->current, 5),
               std::isfinite(f->change) ? fmt::format("{:+.2f}%", 100 * f->change) : "", num_cell(f->p, 3),
               fmt::format("{}/{}", f->n_baseline, f->n_current), f->test, f->verdict});
  return t;
}
}  // namespace

std::string CheckReport::markdown(const Store& store, const CheckOptions& opt) const {
  std::string out = "# flatbench nightly regression report\n\n";
  for (const auto& uuid : run_uuids) out += "- " + run_ref(store, uuid).describe() + "\n";
  out += fmt::format(
      "- database: `{}`\n- rule: flagged when the U test gives p < {} against the last {} runs of the same job on "
      "the same machine AND the median moved by at least the metric's minimum (latency {:.1f}%, throughput {:.1f}%, "
      "PPL {:.1f}%, accuracy {:.1f}%, memory {:.1f}%); deterministic metrics skip the test\n\n",
      store.path().string(), opt.alpha, opt.window, 100 * opt.thresholds.latency, 100 * opt.thresholds.throughput,
      100 * opt.thresholds.ppl, 100 * opt.thresholds.accuracy, 100 * opt.thresholds.memory);
  out += fmt::format("**{} regressions**, {} improvements, {} other changes, {} unchanged, {} without history.\n\n",
                     count("regression"), count("improvement"), count("changed"), count("unchanged"), count("new"));
  for (const char* verdict : {"regression", "improvement", "changed"}) {
    std::vector<const Finding*> fs;
    for (const auto& f : findings)
      if (f.verdict == verdict) fs.push_back(&f);
    if (!fs.empty()) out += findings_table(std::string(verdict) == "changed" ? "other changes" : std::string(verdict) + "s", fs).markdown() + "\n";
  }
  std::vector<const Finding*> all;
  for (const auto& f : findings) all.push_back(&f);
  out += "<details><summary>every metric</summary>\n\n" + findings_table("all metrics", all).markdown() + "\n</details>\n";
  return out;
}

}  // namespace fb

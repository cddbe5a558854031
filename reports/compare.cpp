#include "reports/compare.h"

#include "harness/store.h"
#include "reports/stats.h"

#include <fmt/format.h>

#include <map>
#include <set>
#include <stdexcept>

namespace fb {

namespace {

const char* verdict_of(double ratio, Better better, double min_change) {
  if (!std::isfinite(ratio) || std::fabs(ratio - 1) < min_change || better == Better::Neither) return "";
  bool lower = ratio < 1;
  return (better == Better::Lower) == lower ? "better" : "worse";
}

}  // namespace

CompareSide resolve_side(const Store& store, const std::string& ref) {
  if (ref.empty()) throw std::invalid_argument("empty run / commit reference");
  CompareSide side{ref, "", {}, {}};
  side.run_uuids = store.runs_with_uuid_prefix(ref);
  if (side.run_uuids.size() > 1)
    throw std::invalid_argument(fmt::format("'{}' matches {} runs; give more digits of the run uuid", ref, side.run_uuids.size()));
  if (side.run_uuids.size() == 1) {
    side.what = "run " + side.run_uuids[0].substr(0, 8);
  } else {
    side.run_uuids = store.runs_of_commit(ref);
    if (side.run_uuids.empty())
      throw std::invalid_argument("no run uuid or commit starting with '" + ref + "' in " + store.path().string());
    side.what = fmt::format("commit {} ({} run{})", ref, side.run_uuids.size(), side.run_uuids.size() > 1 ? "s" : "");
  }
  std::map<std::string, JobRow> newest;  // key → newest done row within the side's runs
  for (const auto& uuid : side.run_uuids)
    for (const auto& j : store.done_jobs({.run_uuid = uuid})) newest[j.key] = j;
  std::vector<JobRow> rows;
  for (const auto& [key, j] : newest) rows.push_back(j);
  side.rows = reportable_rows(store, rows);  // a NULL/NaN metric is no side of a ratio
  return side;
}

std::vector<Table> compare_tables(const Store& store, const std::string& a_ref, const std::string& b_ref,
                                  const CheckOptions& opt) {
  CompareSide a = resolve_side(store, a_ref), b = resolve_side(store, b_ref);
  Table t{fmt::format("compare A = {} vs B = {}", a.what, b.what),
          {"job", "metric", "unit", "A", "B", "B/A", "change", "p", "verdict"},
          {},
          {}};
  std::map<std::string, const ReportRow*> b_rows;
  for (const auto& r : b.rows) b_rows[r.job.key] = &r;
  std::vector<double> all, lower_better, higher_better;
  int better = 0, worse = 0;
  for (const auto& ra : a.rows) {
    auto it = b_rows.find(ra.job.key);
    if (it == b_rows.end()) continue;
    for (const auto& [name, ma] : ra.metrics) {
      auto mb = it->second->metrics.find(name);
      if (mb == it->second->metrics.end()) continue;
      double va = median(samples_of(ma)), vb = median(samples_of(mb->second));
      double ratio = va != 0 ? vb / va : NAN;
      MetricPolicy pol = metric_policy(name, ma.unit, opt.thresholds);
      double p = NAN;
      if (!pol.deterministic && ma.samples.size() >= 2 && mb->second.samples.size() >= 2)
        p = mann_whitney_u(ma.samples, mb->second.samples).p;  // per-window samples of a deterministic metric are no repetitions
      std::string verdict = verdict_of(ratio, pol.better, pol.min_change);
      if (!pol.deterministic && std::isfinite(p) && p >= opt.alpha && !verdict.empty()) verdict += " (not significant)";
      better += verdict == "better";
      worse += verdict == "worse";
      if (ratio > 0 && std::isfinite(ratio)) {
        all.push_back(ratio);
        if (pol.better == Better::Lower) lower_better.push_back(ratio);
        if (pol.better == Better::Higher) higher_better.push_back(ratio);
      }
      t.add_row({ra.job.label.empty() ? ra.job.key.substr(0, 12) : ra.job.label, name, ma.unit, fmt_num(va, 5),
                 fmt_num(vb, 5), num_cell(ratio, 4), std::isfinite(ratio) ? fmt::format("{:+.2f}%", 100 * (ratio - 1)) : "",
                 num_cell(p, 3), verdict});
    }
  }
  t.notes.push_back("A: " + a.what);
  for (const auto& u : a.run_uuids) t.notes.push_back("   " + run_ref(store, u).describe());
  t.notes.push_back("B: " + b.what);
  for (const auto& u : b.run_uuids) t.notes.push_back("   " + run_ref(store, u).describe());
  t.notes.push_back("values are medians of the repetitions; p = two-sided Mann-Whitney U where both sides have ≥ 2");

  Table g{"geometric-mean summary (B/A)", {"metrics", "count", "geomean B/A", "reading"}, {}, {}};
  auto row = [&](const char* what, const std::vector<double>& v, const char* reading) {
    g.add_row({what, std::to_string(v.size()), num_cell(geomean(v), 4), v.empty() ? "" : reading});
  };
  row("all compared", all, "1 = same");
  row("lower is better (time, PPL, memory)", lower_better, "< 1: B is better");
  row("higher is better (throughput, accuracy)", higher_better, "> 1: B is better");
  g.notes.push_back(fmt::format("{} metrics better, {} worse beyond their minimum change", better, worse));
  if (t.rows.empty()) g.notes.push_back("the two sides share no job key with common metrics");
  return {t, g};
}

}  // namespace fb

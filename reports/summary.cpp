#include "reports/summary.h"

#include "harness/store.h"
#include "reports/query.h"

#include <fmt/format.h>

#include <ostream>
#include <set>

namespace fb {

namespace {

// Bookkeeping metrics every job has; the summary shows what the evaluator measured.
const std::set<std::string> kBookkeeping = {"method_seconds", "load_seconds"};

std::string headline(const std::vector<Metric>& metrics, size_t max_items = 4) {
  std::string out;
  size_t shown = 0;
  for (const auto& m : metrics) {
    if (kBookkeeping.count(m.name) || shown == max_items) continue;
    std::string unit = m.unit == "%" || m.unit == "x" ? m.unit : m.unit.empty() ? "" : " " + m.unit;
    out += (out.empty() ? "" : "  ") + m.name + "=" + fmt_num(m.value) + unit;
    ++shown;
  }
  return out;
}

void add_job(Table& jobs, Table& gemm, const Store& store, const std::string& key, const std::string& label,
             const std::optional<JobRow>& row) {
  std::string status = row ? row->status : "pending";
  std::string what = row && row->status == "done" ? headline(store.metrics(row->id))
                     : row && row->status == "failed" ? row->error.substr(0, 80)
                                                      : "";
  if (row && row->status == "done") {  // a NaN an older binary stored as NULL: flag it, not a number
    if (std::string why = row_problem(load_row(store, *row)); !why.empty()) {
      warn_bad_row(store, *row, why);
      status = "done (bad)";
      what = "not reportable: " + why;
    }
  }
  std::string mark = row && row->synthetic ? " [synthetic]" : "";
  jobs.add_row({key.substr(0, 12), label + mark, status, what, row ? fmt_num(row->duration_s, 3) : ""});
  if (!row || row->status != "done") return;
  for (const auto& g : store.gemms(row->id)) gemm.add_row(gemm_cells(g));
}

std::vector<Table> make_tables() {
  Table jobs{"jobs", {"job", "label", "status", "metrics", "seconds"}, {}, {}};
  Table gemm{"GEMM latency (median of repetitions; ×fp32 = fastest fp32 backend of the same shape and job / this)",
             kGemmColumns, {}, {}};
  return {jobs, gemm};
}

std::vector<Table> finish(std::vector<Table> t) {
  if (t[1].rows.empty()) t.pop_back();
  return t;
}

}  // namespace

std::vector<Table> summary_tables(const Store& store, const std::vector<Job>& jobs) {
  auto t = make_tables();
  for (const auto& j : jobs) {
    add_job(t[0], t[1], store, j.key, j.label, store.reported_job(j.key));
  }
  return finish(std::move(t));
}

std::vector<Table> summary_tables(const Store& store) {
  auto t = make_tables();
  for (const auto& row : store.latest_done_jobs())
    add_job(t[0], t[1], store, row.key, row.label, row);
  return finish(std::move(t));
}

void print_summary(const Store& store, const std::vector<Job>& jobs, std::ostream& out, bool json) {
  auto tables = summary_tables(store, jobs);
  if (json) {
    nlohmann::json all = nlohmann::json::array();
    for (const auto& t : tables) all.push_back(t.to_json());
    out << all.dump(2) << "\n";
    return;
  }
  for (const auto& t : tables) out << "\n" << t.text();
}

}  // namespace fb

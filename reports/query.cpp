#include "reports/query.h"

#include <fmt/format.h>

#include <iostream>
#include <mutex>
#include <set>

namespace fb {

double ReportRow::value(const std::string& name) const {
  auto it = metrics.find(name);
  return it == metrics.end() ? std::nan("") : it->second.value;
}

std::string RunRef::describe() const {
  return fmt::format("run {}: commit {}{}, host {}{}, {}", uuid.substr(0, 8), commit.substr(0, 10),
                     dirty ? " (dirty)" : "", host.empty() ? "?" : host, cpu.empty() ? "" : " (" + cpu + ")",
                     started_at.substr(0, 16));
}

ReportRow load_row(const Store& store, const JobRow& job) {
  ReportRow r{job, {}};
  for (auto& m : store.metrics(job.id)) r.metrics.emplace(m.name, m);
  return r;
}

namespace {
// The first null among an object's values (one level of arrays too), as "parameter 'alpha'".
std::string null_parameter(const json& params) {
  if (!params.is_object()) return "";
  for (const auto& [name, v] : params.items()) {
    bool null = v.is_null();
    if (v.is_array())
      for (const json& x : v) null = null || x.is_null();
    if (null) return "parameter '" + name + "' is null";
  }
  return "";
}
}  // namespace

std::string row_problem(const ReportRow& r) {
  for (const auto& [name, m] : r.metrics)
    if (auto why = non_finite_problem(m); !why.empty()) return why;
  const json& spec = r.job.spec;
  if (!spec.is_object()) return "the job's spec is not a JSON object";
  for (const char* part : {"method", "eval"})
    if (spec.contains(part) && spec[part].is_object())
      if (auto why = null_parameter(spec[part].value("params", json::object())); !why.empty())
        return std::string(part) + " " + why;
  return "";
}

void warn_bad_row(const Store& store, const JobRow& job, const std::string& problem) {
  static std::mutex mutex;
  static std::set<std::pair<std::string, long>> warned;
  std::lock_guard<std::mutex> lock(mutex);
  if (!warned.insert({store.path().string(), job.id}).second) return;
  std::cerr << fmt::format(
      "warning: {}: job {}{} left out of reports: {} (a NaN or Inf an older flatbench stored as NULL); rerun it "
      "with `flatbench run --force` once its cause is fixed\n",
      store.path().string(), job.key.substr(0, 12), job.label.empty() ? "" : " (" + job.label + ")", problem);
}

std::vector<ReportRow> reportable_rows(const Store& store, const std::vector<JobRow>& jobs) {
  std::vector<ReportRow> out;
  for (const auto& j : jobs) {
    ReportRow r = load_row(store, j);
    if (auto why = row_problem(r); !why.empty()) {
      warn_bad_row(store, j, why);
      continue;
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<ReportRow> latest_rows(const Store& store, const std::string& method, const std::string& eval) {
  return reportable_rows(store, store.latest_done_jobs(method, eval));
}

std::vector<ReportRow> all_rows(const Store& store, const std::string& key) {
  return reportable_rows(store, store.done_jobs({.key = key}));
}

RunRef run_ref(const Store& store, const std::string& run_uuid) {
  RunRef ref;
  ref.uuid = run_uuid;
  auto run = store.run(run_uuid);
  if (!run) return ref;
  const json& p = run->provenance;
  ref.started_at = run->started_at;
  if (p.contains("git") && p["git"].is_object()) {
    ref.commit = p["git"].value("commit", "unknown");
    ref.dirty = p["git"].value("dirty", false);
  }
  ref.host = p.value("host", "");
  if (p.contains("cpu") && p["cpu"].is_object()) ref.cpu = p["cpu"].value("model", "");
  return ref;
}

const json* spec_param(const json& spec, const std::string& part, std::initializer_list<const char*> names) {
  if (!spec.is_object() || !spec.contains(part) || !spec[part].is_object()) return nullptr;
  const json& p = spec[part];
  if (!p.contains("params") || !p["params"].is_object()) return nullptr;
  const json& params = p["params"];
  for (const char* n : names)
    if (params.contains(n) && !params[n].is_null()) return &params[n];
  return nullptr;
}

std::optional<double> num_param(const json& spec, const std::string& part, std::initializer_list<const char*> names) {
  const json* v = spec_param(spec, part, names);
  if (!v) return std::nullopt;
  if (v->is_number()) return v->get<double>();
  if (v->is_boolean()) return v->get<bool>() ? 1.0 : 0.0;
  if (v->is_string()) {
    const std::string& s = v->get_ref<const std::string&>();
    if (s == "inf" || s == "infinity" || s == ".inf") return INFINITY;
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == '\0') return d;
  }
  return std::nullopt;
}

std::string text_param(const json& spec, const std::string& part, std::initializer_list<const char*> names) {
  const json* v = spec_param(spec, part, names);
  if (!v) return "";
  if (v->is_string()) return v->get<std::string>();
  if (v->is_number()) return fmt_num(v->get<double>());
  return v->dump();
}

std::string part_name(const json& spec, const std::string& part) {
  if (!spec.is_object() || !spec.contains(part) || !spec[part].is_object()) return "";
  return spec[part].value("name", "");
}

std::string part_entry(const json& spec, const std::string& part) {
  if (part != "model") return part_name(spec, part);
  if (!spec.is_object() || !spec.contains(part) || !spec[part].is_object()) return "";
  return spec[part].value("format", "");
}

std::vector<MergedRow> merge_by_method(const std::vector<ReportRow>& rows) {
  std::vector<MergedRow> out;
  std::map<std::string, size_t> index;
  for (const auto& r : rows) {
    const json& s = r.job.spec;
    std::string key = s.value("model", json()).dump() + s.value("method", json()).dump() + s.value("seed", json()).dump();
    auto [it, fresh] = index.emplace(key, out.size());
    if (fresh) out.push_back({r, {}});
    MergedRow& m = out[it->second];
    for (const auto& [name, metric] : r.metrics) m.row.metrics.emplace(name, metric);
    m.sources.push_back(&r);
  }
  return out;
}

std::vector<const ReportRow*> all_sources(const std::vector<MergedRow>& rows) {
  std::vector<const ReportRow*> out;
  for (const auto& m : rows) out.insert(out.end(), m.sources.begin(), m.sources.end());
  return out;
}

std::string model_name(const ReportRow& r) {
  std::string n = part_name(r.job.spec, "model");
  return n.empty() ? r.job.model : n;
}

std::string model_cell(const ReportRow& r) {
  std::string name = part_name(r.job.spec, "model");
  if (name.empty()) name = r.job.model.empty() ? "-" : r.job.model;
  return r.job.synthetic ? name + " [synthetic]" : name;
}

std::string num_cell(double v, int digits) { return std::isnan(v) ? "" : fmt_num(v, digits); }

std::vector<std::string> gemm_cells(const GemmRecord& g) {
  const bool timed = gemm_row_timed(g);
  return {g.device, g.backend, g.dtype, std::to_string(g.m), std::to_string(g.n), std::to_string(g.k),
          g.disposition.empty() ? "unknown" : g.disposition, timed ? fmt_num(g.median_ms) : "",
          timed ? fmt_num(g.gops) : "", timed && g.ratio_to_fp32 > 0 ? fmt_num(g.ratio_to_fp32, 3) + "x" : ""};
}

std::string pct_cell(double fraction, int digits) {
  return std::isnan(fraction) ? "" : fmt::format("{:.{}f}%", 100 * fraction, std::max(0, digits - 2));
}

void add_provenance_notes(Table& t, const Store& store, const std::vector<const ReportRow*>& rows) {
  std::set<std::string> seen;
  bool synthetic = false;
  for (const ReportRow* r : rows) {
    synthetic = synthetic || r->job.synthetic;
    if (seen.insert(r->job.run_uuid).second) t.notes.push_back("source: " + run_ref(store, r->job.run_uuid).describe());
  }
  if (rows.empty()) t.notes.push_back("no matching jobs in the database yet");
  if (synthetic)
    t.notes.push_back("[synthetic] = generated weights: the row shows mechanics (latency, memory, flatten counts), "
                      "not accuracy a real model would reach");
}

void add_provenance_notes(Table& t, const Store& store, const std::vector<ReportRow>& rows) {
  std::vector<const ReportRow*> ptrs;
  for (const auto& r : rows) ptrs.push_back(&r);
  add_provenance_notes(t, store, ptrs);
}

}  // namespace fb

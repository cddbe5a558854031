// Read side of the results store for reports: the newest finished row per job key with its
// metrics, the run it came from, and typed access to the job spec's parameters. Every
// report (tables, plots, dashboard, nightly, compare) reads the DB through these helpers.
#pragma once

#include "harness/store.h"
#include "reports/table.h"

#include <cmath>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fb {

// One finished job as a report sees it.
struct ReportRow {
  JobRow job;
  std::map<std::string, Metric> metrics;

  bool has(const std::string& name) const { return metrics.count(name) > 0; }
  // The metric's value, or NaN when the job did not record it.
  double value(const std::string& name) const;
};

// Where a run came from: enough to tell readers which commit and machine made a number.
struct RunRef {
  std::string uuid, commit, host, cpu, started_at;
  bool dirty = false;
  std::string describe() const;  // "run 1a2b3c4d: commit 0123abcd (dirty), host h (cpu), 2026-11-23"
};

// Newest done row per job key (leaving out, with a warning, one that row_problem flags), optionally only those whose method / evaluation has this name
// ("" = any, "-" = none, e.g. a GEMM job with no method). Ordered by job id.
std::vector<ReportRow> latest_rows(const Store& store, const std::string& method = "", const std::string& eval = "");
// Every done row (the history; bad rows left out as above), oldest first, optionally of one job key.
std::vector<ReportRow> all_rows(const Store& store, const std::string& key = "");
ReportRow load_row(const Store& store, const JobRow& job);
// load_row of each job that row_problem does not flag; the flagged ones are named on stderr, once.
std::vector<ReportRow> reportable_rows(const Store& store, const std::vector<JobRow>& jobs);

RunRef run_ref(const Store& store, const std::string& run_uuid);

// Why a done row cannot be reported ("" when it can): a metric that is not a finite number, or a
// parameter stored as null — what older binaries wrote for a NaN/Inf (SQLite and JSON have none).
std::string row_problem(const ReportRow& r);
// Says on stderr, once per job and database in this process, that a bad row is left out.
void warn_bad_row(const Store& store, const JobRow& job, const std::string& problem);

// A parameter of the job spec's part ("model", "method", "eval"): the first of `names` present.
// Model parameters sit directly in spec.model; method and eval ones under "params".
const json* spec_param(const json& spec, const std::string& part, std::initializer_list<const char*> names);
std::optional<double> num_param(const json& spec, const std::string& part, std::initializer_list<const char*> names);
std::string text_param(const json& spec, const std::string& part, std::initializer_list<const char*> names);
std::string part_name(const json& spec, const std::string& part);  // spec[part].name or ""
// The registered entry a part names: a model's format, a method's or evaluation's name ("" if none).
std::string part_entry(const json& spec, const std::string& part);

// Jobs of one (model, method setting, seed) share the method's metrics and sites whatever the
// evaluation; merging them puts PPL (ppl job) beside memory (memory job) in one row.
struct MergedRow {
  ReportRow row;                          // first job of the group; metrics = union over the group
  std::vector<const ReportRow*> sources;  // every job merged in (points into the input vector)
};
std::vector<MergedRow> merge_by_method(const std::vector<ReportRow>& rows);
std::vector<const ReportRow*> all_sources(const std::vector<MergedRow>& rows);

std::string model_name(const ReportRow& r);  // the spec's model name
// "stories260K" or "opt-synth [synthetic]".
std::string model_cell(const ReportRow& r);
// A number cell: "" for NaN so missing values stay visibly empty.
std::string num_cell(double v, int digits = 4);
std::string pct_cell(double fraction, int digits = 4);  // 0.4829 → "48.29%"
// One stored GEMM row as every report shows it, under kGemmColumns: a row that was not timed
// (incorrect, not supported) shows its verdict and no timing instead of zeros.
inline const std::vector<std::string> kGemmColumns = {"device", "backend", "dtype", "M", "N", "K",
                                                      "verify", "ms", "GOP/s", "×fp32"};
std::vector<std::string> gemm_cells(const GemmRecord& g);

// Appends one note per run the rows came from, and the synthetic-model warning where one is synthetic.
void add_provenance_notes(Table& t, const Store& store, const std::vector<const ReportRow*>& rows);
void add_provenance_notes(Table& t, const Store& store, const std::vector<ReportRow>& rows);

}  // namespace fb

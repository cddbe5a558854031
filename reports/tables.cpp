#include "reports/tables.h"

#include "core/registry.h"
#include "harness/store.h"
#include "harness/param_label.h"
#include "kernels/gemm_dtype.h"
#include "methods/method.h"
#include "reports/paper.h"
#include "reports/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <stdexcept>

namespace fb {

namespace {

// FlattenQuant's parameters, by the names its schema registers (reports/param_reads.h).
using report_params::kAlpha;
using report_params::kBeta;
using report_params::kBetaRef;
using report_params::kBitsMode;
using report_params::kGamma;
using report_params::kSmooth;
using report_params::kSplit;
using report_params::kSuppress;

constexpr double kMiB = 1024.0 * 1024.0;

double param_or_nan(const json& spec, const ParamRef& ref) {
  auto v = method_num(spec, ref);
  return v ? *v : NAN;
}


// Sort key: model, the other settings (method_cell without the swept parameters), then the swept parameter.
void sort_by_param(std::vector<MergedRow>& rows, const ParamRef& swept_param) {
  const std::vector<std::string> swept = {swept_param.name};
  std::stable_sort(rows.begin(), rows.end(), [&](const MergedRow& a, const MergedRow& b) {
    auto ka = std::make_tuple(model_name(a.row), method_cell(a.row.job.spec, swept), param_or_nan(a.row.job.spec, swept_param));
    auto kb = std::make_tuple(model_name(b.row), method_cell(b.row.job.spec, swept), param_or_nan(b.row.job.spec, swept_param));
    return ka < kb;
  });
}

const std::vector<std::string> kBetaNames = {kBeta.name}, kGammaNames = {kGamma.name};
const std::vector<std::string> kAblationNames = {kSmooth.name, kSuppress.name, kAlpha.name};

// One reference row per model of `rows`: the newest fp16 PPL job of that model, PPL in the table's "PPL" column.
void add_fp16_references(Table& t, const std::vector<ReportRow>& fp16_jobs, const std::vector<MergedRow>& rows) {
  std::set<std::string> models;
  for (const auto& m : rows) models.insert(model_name(m.row));
  size_t ppl_col = std::find(t.headers.begin(), t.headers.end(), "PPL") - t.headers.begin();
  for (const auto& r : fp16_jobs) {
    if (!models.count(model_name(r)) || !r.has("ppl") || ppl_col == t.headers.size()) continue;
    std::vector<std::string> row(t.headers.size());
    row[0] = model_cell(r);
    row[1] = "fp16 (reference)";
    row[ppl_col] = num_cell(r.value("ppl"));
    t.add_row(row);
  }
}

std::string paper_cell(const std::optional<PaperNumber>& p) { return p ? p->display() : ""; }
std::string paper_source(const std::optional<PaperNumber>& p) { return p ? p->source : ""; }

// ---------------------------------------------------------------- Table 4: INT4 share per model
std::vector<Table> table4(const Store& store) {
  Table t{"FlattenQuant Table 4 — INT4 share of linear layers per model",
          {"model", "setting", "γ", "sites", "INT4 share (layers)", "INT4 share (FLOPs)", "paper", "paper source"},
          {},
          {}};
  auto jobs = latest_rows(store, "flattenquant");
  auto rows = merge_by_method(jobs);
  sort_by_param(rows, kGamma);
  std::set<std::string> matched;
  for (const auto& m : rows) {
    Int4Share s = int4_share(store, m.row);
    auto paper = paper_lookup("flattenquant-t4", model_name(m.row), "FlattenQuant", "", "int4_share");
    if (paper) matched.insert(paper->model);
    t.add_row({model_cell(m.row), method_cell(m.row.job.spec, kGammaNames), gamma_cell(param_or_nan(m.row.job.spec, kGamma)),
               std::to_string(s.sites), pct_cell(s.layers), pct_cell(s.flops), paper_cell(paper), paper_source(paper)});
  }
  for (const auto& p : paper_numbers("flattenquant-t4"))
    if (!matched.count(p.model)) t.add_row({p.model + " (paper only)", p.method, "", "", "", "", p.display(), p.source});
  t.notes.push_back("INT4 share (FLOPs) weights each site by its 2·N·K FLOPs; the paper's 48.29% may be either kind.");
  add_provenance_notes(t, store, all_sources(rows));
  return {t};
}

// ---------------------------------------------------------------- Table 5: GEMM / flatten latency
struct ShapeKey {
  std::string device;
  long m, n, k;
  auto operator<=>(const ShapeKey&) const = default;
};

// The note naming GEMM rows whose dtype has no traits row ("... bf16 (backend_a); u4x (backend_b, backend_c)"):
// a column for them could only be guessed, so they are left out and said to be.
std::string unclassified_note(const std::map<std::string, std::set<std::string>>& dtypes) {
  std::string out;
  for (const auto& [dtype, backends] : dtypes) {
    std::string names;
    for (const auto& b : backends) names += (names.empty() ? "" : ", ") + b;
    out += (out.empty() ? "" : "; ") + (dtype.empty() ? std::string("(empty)") : dtype) + " (" + names + ")";
  }
  return "left out, their dtype has no row in kernels/gemm_dtype.h (its precision is not guessed): " + out;
}

std::vector<Table> table5(const Store& store) {
  Table t{"FlattenQuant Table 5 — GEMM and flatten latency per precision (best backend, median ms)",
          {"device", "M", "N", "K", "fp32 ms", "fp16 ms", "fp8 ms", "int8 ms", "int4 ms", "flatten ms", "transform ms",
           "INT8 speedup", "INT4 speedup", "source"},
          {},
          {}};
  std::map<ShapeKey, std::map<std::string, double>> best;
  std::map<std::string, std::set<std::string>> unclassified;  // dtype without a traits row → its backends
  auto rows = latest_rows(store, "", "gemm");
  for (const auto& r : rows)
    for (const auto& g : store.gemms(r.job.id)) {
      std::string cls = precision_class(g.dtype);
      if (cls.empty()) unclassified[g.dtype].insert(g.backend);
      if (cls.empty() || !gemm_row_timed(g) || g.median_ms <= 0) continue;
      auto& slot = best[{g.device, g.m, g.n, g.k}];
      if (!slot.count(cls) || g.median_ms < slot[cls]) slot[cls] = g.median_ms;
    }
  auto get = [](const std::map<std::string, double>& m, const char* c) { return m.count(c) ? m.at(c) : NAN; };
  auto speedup = [&](const std::map<std::string, double>& m, const char* c) {
    double base = m.count("fp16") ? m.at("fp16") : get(m, "fp32");
    return base / get(m, c);
  };
  for (const auto& [key, m] : best)
    t.add_row({key.device, std::to_string(key.m), std::to_string(key.n), std::to_string(key.k), num_cell(get(m, "fp32")),
               num_cell(get(m, "fp16")), num_cell(get(m, "fp8")), num_cell(get(m, "int8")), num_cell(get(m, "int4")),
               num_cell(get(m, "flatten")), num_cell(get(m, "transform")), num_cell(speedup(m, "int8"), 3),
               num_cell(speedup(m, "int4"), 3), "ours"});
  std::map<std::string, double> paper;
  std::string source, device;
  for (const auto& p : paper_numbers("flattenquant-t5")) {
    paper[p.setting] = p.value;
    source = p.source;
    device = p.model;
  }
  t.add_row({device + " (paper)", "", "", "", "", num_cell(get(paper, "fp16")), "", "", num_cell(get(paper, "int4")),
             num_cell(get(paper, "flatten")), "", "", num_cell(speedup(paper, "int4"), 3), source});
  t.notes.push_back("speedup = fastest fp16 median (fp32 where no fp16 ran) / this precision's median, same shape; "
                    "flatten / transform = FlattenQuant's gather+quantize and FlatQuant's Kronecker transform+quantize "
                    "of the M×K activations");
  if (!unclassified.empty()) t.notes.push_back(unclassified_note(unclassified));
  add_provenance_notes(t, store, rows);
  return {t};
}

// ---------------------------------------------------------------- Table 6: memory
std::vector<Table> table6(const Store& store) {
  Table t{"FlattenQuant Table 6 — memory (MiB) per model and method",
          {"model", "method", "linear weights", "scales", "other weights", "activations", "KV cache", "total",
           "reduction vs fp16", "source"},
          {},
          {}};
  auto rows = latest_rows(store, "", "memory");
  std::map<std::string, double> fp16_total;  // model → total of its fp16 (or unquantized) job
  for (const auto& r : rows) {
    std::string method = part_name(r.job.spec, "method");
    if (method.empty() || method == "fp16") fp16_total[model_name(r)] = r.value("mem_total");
  }
  for (const auto& r : rows) {
    double total = r.value("mem_total");
    double base = fp16_total.count(model_name(r)) ? fp16_total[model_name(r)] : NAN;
    t.add_row({model_cell(r), method_cell(r.job.spec), num_cell(r.value("mem_linear_weights") / kMiB),
               num_cell(r.value("mem_scales") / kMiB), num_cell(r.value("mem_other_weights") / kMiB),
               num_cell(r.value("mem_activations") / kMiB), num_cell(r.value("mem_kv_cache") / kMiB),
               num_cell(total / kMiB), std::isnan(base) ? "" : fmt_num(base / total, 3) + "x", "ours"});
  }
  for (const auto& p : paper_numbers("flattenquant-t6")) {
    bool reduction = p.metric == "memory_reduction";
    t.add_row({p.model + " (paper)", p.method, "", "", "", "", "", reduction ? "" : p.display(),
               reduction ? p.display() : "", p.source});
  }
  add_provenance_notes(t, store, rows);
  return {t};
}

// ---------------------------------------------------------------- Tables 7/9: smoothing and suppression ablation
std::string switch_cell(const json& spec, const ParamRef& ref) {
  auto v = method_num(spec, ref);
  if (!v) return method_text(spec, ref);
  return *v != 0 ? "on" : "off";
}

std::vector<Table> table7(const Store& store) {
  Table t{"FlattenQuant Tables 7/9 — channel smoothing and outlier suppression ablation (PPL)",
          {"model", "dataset", "smoothing", "α", "suppression", "other settings", "PPL", "paper PPL", "paper source"},
          {},
          {}};
  auto jobs = latest_rows(store, "flattenquant", "ppl");
  auto rows = merge_by_method(jobs);
  sort_by_param(rows, kAlpha);
  for (const auto& m : rows) {
    const json& s = m.row.job.spec;
    std::string smooth = switch_cell(s, kSmooth);
    double alpha = param_or_nan(s, kAlpha);
    if (smooth.empty() && !std::isnan(alpha)) smooth = alpha > 0 ? "on" : "off";
    auto paper = paper_lookup("flattenquant-t7", model_name(m.row), "FlattenQuant",
                              smooth == "on" ? "smoothing" : "no smoothing", "ppl");
    t.add_row({model_cell(m.row), text_param(s, "eval", {"dataset"}), smooth, num_cell(alpha),
               switch_cell(s, kSuppress), method_cell(s, kAblationNames), num_cell(m.row.value("ppl")), paper_cell(paper),
               paper_source(paper)});
  }
  for (const auto& p : paper_numbers("flattenquant-t7"))
    t.add_row({p.model + " (paper)", "wikitext2", p.method == "FP16" ? "FP16 model" : p.setting == "smoothing" ? "on" : "off",
               "", "", "", "", p.display(), p.source});
  add_provenance_notes(t, store, all_sources(rows));
  return {t};
}

// ---------------------------------------------------------------- Table 8: β sweep
std::vector<Table> table8(const Store& store) {
  Table t{"FlattenQuant Table 8 — β sweep: flatten ratio, memory, PPL",
          {"model", "setting", "β", "flatten ratio", "flatten ratio (padded)", "linear weights MiB", "total memory MiB", "PPL"},
          {},
          {}};
  auto jobs = latest_rows(store, "flattenquant");
  auto rows = merge_by_method(jobs);
  sort_by_param(rows, kBeta);
  for (const auto& m : rows) {
    double weights = m.row.has("mem_linear_weights") ? m.row.value("mem_linear_weights")
                                                     : m.row.value("linear_weight_bytes");
    t.add_row({model_cell(m.row), method_cell(m.row.job.spec, kBetaNames), num_cell(param_or_nan(m.row.job.spec, kBeta)),
               pct_cell(fraction_metric(m.row, "flatten_ratio")), pct_cell(fraction_metric(m.row, "flatten_ratio_padded")),
               num_cell(weights / kMiB), num_cell(m.row.value("mem_total") / kMiB), num_cell(m.row.value("ppl"))});
  }
  auto fp16 = latest_rows(store, "fp16", "ppl");
  add_fp16_references(t, fp16, rows);
  for (const auto& p : paper_numbers("flattenquant-t8")) t.notes.push_back("paper: " + p.text + " — " + p.source);
  add_provenance_notes(t, store, all_sources(rows));
  return {t};
}

// ---------------------------------------------------------------- flatten regime study
// One row per FlattenQuant job that recorded the per-input-group metrics (norm outputs vs inner
// inputs), sorted by model, outlier scale, bits, β reference and β (least flattening first).
std::vector<Table> flatten_regime(const Store& store) {
  Table t{"FlattenQuant regime — where flattening pays (norm inputs carry the outliers; inner inputs do not)",
          {"model", "outliers ×", "bits", "β", "flatten ratio norm", "flatten ratio inner", "scale cut norm",
           "dominance norm", "dominance inner", "crest norm", "crest inner", "A err norm", "A err inner", "site err",
           "logit err", "top-1"},
          {},
          {}};
  const auto jobs = latest_rows(store, "flattenquant");  // the merged rows point into it
  auto rows = merge_by_method(jobs);
  std::erase_if(rows, [](const MergedRow& m) { return !m.row.has("act_rel_err_norm_inputs"); });
  auto key = [](const MergedRow& m) {
    const json& s = m.row.job.spec;
    const auto scale = model_num(s, report_params::kOutlierScale);
    const auto outliers = model_num(s, report_params::kOutlierChannels);
    return std::make_tuple(model_name(m.row), outliers && *outliers > 0 && scale ? *scale : 1.0,
                           method_text(s, kBitsMode), method_text(s, kSplit), method_text(s, kBetaRef),
                           -param_or_nan(s, kBeta));
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const MergedRow& a, const MergedRow& b) { return key(a) < key(b); });
  auto times = [](double v) { return std::isnan(v) ? std::string() : num_cell(v, 3) + "×"; };
  for (const auto& m : rows) {
    const ReportRow& r = m.row;
    const std::string ref = method_text(r.job.spec, kBetaRef);
    const bool staggered = method_text(r.job.spec, kSplit) == "staggered";
    t.add_row({model_cell(r), num_cell(std::get<1>(key(m))), method_text(r.job.spec, kBitsMode),
               num_cell(param_or_nan(r.job.spec, kBeta)) + (ref == "median" ? " × median" : " × max") +
                   (staggered ? ", staggered" : ""),
               pct_cell(fraction_metric(r, "flatten_ratio_norm_inputs"), 3),
               pct_cell(fraction_metric(r, "flatten_ratio_inner_inputs"), 3), times(r.value("scale_reduction_norm_inputs")),
               times(r.value("dominance_norm_inputs")), times(r.value("dominance_inner_inputs")),
               times(r.value("crest_norm_inputs")), times(r.value("crest_inner_inputs")),
               num_cell(r.value("act_rel_err_norm_inputs"), 3), num_cell(r.value("act_rel_err_inner_inputs"), 3),
               num_cell(r.value("mean_site_rel_err"), 3), num_cell(r.value("logit_rel_err"), 3),
               pct_cell(fraction_metric(r, "top1_agreement"), 3)});
  }
  t.notes = {
      "A err: activation-only output error ‖(Q(A′) − A′)·W′ᵀ‖² / ‖A·Wᵀ‖² on calibration rows (float weights); site err "
      "adds the weight rounding; logit err and top-1 compare with the fp model on held-out windows.",
      "dominance: largest channel magnitude / median channel magnitude of the tensor; crest: the per-tensor range / "
      "the RMS value (it sets how many steps the bulk spans); both geometric means over sites.",
      "Copies of a split channel hold identical values and round identically, so a channel split n ways keeps the "
      "rounding error it had: only the channels that stay whole gain from the smaller scale. Flattening pays where a "
      "few channels dominate (high dominance) and the threshold falls to the bulk without splitting it.",
      "staggered (a flatbench extension, not the paper): copy i of n also carries (i − (n−1)/2)/n quantization steps, "
      "so the copies' codes sum to the channel's code at the finer step and split channels gain too."};
  add_provenance_notes(t, store, all_sources(rows));
  return {t};
}

// ---------------------------------------------------------------- Table 10: γ sweep
std::vector<Table> table10(const Store& store) {
  Table t{"FlattenQuant Table 10 — γ sweep: INT4 share and PPL",
          {"model", "setting", "γ", "INT4 share (layers)", "INT4 share (FLOPs)", "PPL"},
          {},
          {}};
  auto jobs = latest_rows(store, "flattenquant");
  auto rows = merge_by_method(jobs);
  sort_by_param(rows, kGamma);
  for (const auto& m : rows) {
    Int4Share s = int4_share(store, m.row);
    t.add_row({model_cell(m.row), method_cell(m.row.job.spec, kGammaNames), gamma_cell(param_or_nan(m.row.job.spec, kGamma)),
               pct_cell(s.layers),
               pct_cell(s.flops), num_cell(m.row.value("ppl"))});
  }
  auto fp16 = latest_rows(store, "fp16", "ppl");
  add_fp16_references(t, fp16, rows);
  for (const auto& p : paper_numbers("flattenquant-t10")) t.notes.push_back("paper: " + p.text + " — " + p.source);
  add_provenance_notes(t, store, all_sources(rows));
  return {t};
}

// ---------------------------------------------------------------- FlatQuant comparison
// The method's parameters as the job ran them: the spec's, completed with the registered
// schema's defaults (a spec written by hand or by an older harness may leave defaults out).
json method_params(const json& spec) {
  const std::string name = part_name(spec, "method");
  const json given = spec.contains("method") && spec["method"].is_object() && spec["method"].contains("params")
                         ? spec["method"]["params"]
                         : json::object();
  if (const MethodInfo* info = Registry<MethodInfo>::instance().find(name)) return fill_defaults(info->params, given);
  return given;
}

// "KV4", "K4V8" when the two caches differ, "" when both stay in floating point.
std::string kv_label(int k_bits, int v_bits) {
  if (k_bits >= 16 && v_bits >= 16) return "";
  auto b = [](int bits) { return bits >= 16 ? std::string("16") : std::to_string(bits); };
  return k_bits == v_bits ? "KV" + b(k_bits) : "K" + b(k_bits) + "V" + b(v_bits);
}

// FlattenQuant's W/A bits come from bits_mode: one width for every layer (int4 / int8), INT4 or
// INT8 per layer by the KL criterion (kl, with γ), or no quantization (none).
std::string flattenquant_bits(const json& p) {
  const std::string mode = text_param_or(p, kBitsMode, "kl");
  if (mode == "int4") return "W4A4";
  if (mode == "int8") return "W8A8";
  if (mode == "none") return "W16A16";
  return "W4/8A4/8 (KL, γ=" + gamma_cell(num_param_or(p, kGamma, NAN)) + ")";
}

std::string bits_setting(const json& spec) {
  const std::string method = part_name(spec, "method");
  if (method.empty() || method == "fp16") return "FP16";
  const json p = method_params(spec);
  using namespace report_params;
  std::string out = method == "flattenquant" ? flattenquant_bits(p)
                                             : fmt::format("W{}A{}", int_param_or(p, kWBits, 16), int_param_or(p, kABits, 16));
  // FlatQuant sets the two caches separately (k_bits / v_bits), the others together (kv_bits).
  const int kv = int_param_or(p, kKvBits, 16);
  return out + kv_label(int_param_or(p, kKBits, kv), int_param_or(p, kVBits, kv));
}

// Which weight quantizer a job ran (every quantizing method says so in w_quantizer; RTN when an
// older job's spec predates it).
std::string weight_quantizer(const json& spec) {
  const std::string method = part_name(spec, "method");
  if (method.empty() || method == "fp16") return "-";
  const json p = method_params(spec);
  return text_param_or(p, report_params::kWQuantizer, "rtn") == "gptq" ? "GPTQ" : "RTN";
}

// Calibration seconds: a "calib…total" metric in seconds; else the sum of per-block ones ("calib…block<i>" or
// "calib…/…"); else the method's wall time. Means over blocks ("calib_seconds_per_block") are not totals.
double calibration_seconds(const ReportRow& r) {
  auto calib_seconds = [](const std::string& name, const Metric& m) {
    return name.find("calib") != std::string::npos && m.unit == "s";
  };
  for (const auto& [name, m] : r.metrics)
    if (calib_seconds(name, m) && name.find("total") != std::string::npos) return m.value;
  double sum = 0;
  bool any = false;
  for (const auto& [name, m] : r.metrics) {
    bool per_block = name.find('/') != std::string::npos ||
                     (name.find("block") != std::string::npos && name.find("per_block") == std::string::npos);
    if (calib_seconds(name, m) && per_block) {
      sum += m.value;
      any = true;
    }
  }
  return any ? sum : r.value("method_seconds");
}

const std::map<std::string, std::string> kPaperMethodNames = {
    {"fp16", "FP16"}, {"flatquant", "FlatQuant"}, {"quarot", "QuaRot"}, {"smoothquant", "SmoothQuant"},
    {"spinquant", "SpinQuant"}, {"flattenquant", "FlattenQuant"}};

// False when the paper's method is one registered here that cannot run weight quantizer `wq`
// (RTN, GPTQ): its w_quantizer choices, or RTN alone when it has none.
bool paper_row_reproducible(const std::string& paper_method, const std::string& wq) {
  for (const auto& [name, paper_name] : kPaperMethodNames) {
    if (paper_name != paper_method) continue;
    const MethodInfo* info = Registry<MethodInfo>::instance().find(name);
    if (!info) return true;  // not implemented here: the row is only the paper's reference
    const ParamSpec* q = find_param(info->params, report_params::kWQuantizer.name);
    if (!q) return wq == "RTN";
    std::string lower = wq;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    return std::find(q->choices.begin(), q->choices.end(), lower) != q->choices.end();
  }
  return true;
}

std::vector<Table> flatquant_tables(const Store& store) {
  Table t{"FlatQuant comparison — PPL per method and bit setting, calibration time",
          {"model", "dataset", "method", "W quant", "bits", "PPL", "calibration s", "÷ fp16 PPL pass", "paper PPL",
           "paper source"},
          {},
          {}};
  auto rows = latest_rows(store, "", "ppl");
  // The fp16 PPL pass of each (run, model, dataset): the yardstick of the calibration time, on
  // the same machine in the same run (issue 18: at most 8× at the official budget).
  std::map<std::tuple<std::string, std::string, std::string>, double> fp16_pass;
  for (const auto& r : rows)
    if (const std::string m = part_name(r.job.spec, "method"); m.empty() || m == "fp16")
      fp16_pass[{r.job.run_uuid, model_name(r), text_param(r.job.spec, "eval", {"dataset"})}] = r.job.duration_s;
  std::stable_sort(rows.begin(), rows.end(), [](const ReportRow& a, const ReportRow& b) {
    return std::make_tuple(model_name(a), text_param(a.job.spec, "eval", {"dataset"}), a.value("ppl")) <
           std::make_tuple(model_name(b), text_param(b.job.spec, "eval", {"dataset"}), b.value("ppl"));
  });
  std::set<std::pair<std::string, std::string>> produced;  // (paper's method name, W quant) some job ran
  for (const auto& r : rows) {
    const json& s = r.job.spec;
    std::string method = part_name(s, "method"), dataset = text_param(s, "eval", {"dataset"});
    std::string bits = bits_setting(s), wq = weight_quantizer(s);
    auto pm = kPaperMethodNames.find(method.empty() ? "fp16" : method);
    std::optional<PaperNumber> paper;
    if (pm != kPaperMethodNames.end()) produced.insert({pm->second, wq});
    if (pm != kPaperMethodNames.end())
      paper = paper_lookup("flatquant-ppl", model_name(r), pm->second, bits == "FP16" ? "FP16" : bits + " " + wq,
                           "ppl:" + dataset);
    const bool calibrated = !method.empty() && method != "fp16";
    const auto pass = fp16_pass.find({r.job.run_uuid, model_name(r), dataset});
    const bool has_pass = calibrated && pass != fp16_pass.end() && pass->second > 0;
    t.add_row({model_cell(r), dataset, method_cell(s), wq, bits, num_cell(r.value("ppl")),
               calibrated ? num_cell(calibration_seconds(r), 3) : "",
               has_pass ? fmt::format("{:.1f}×", calibration_seconds(r) / pass->second) : "", paper_cell(paper),
               paper_source(paper)});
  }
  for (const auto& p : paper_numbers("flatquant-calib")) t.notes.push_back("paper calibration time: " + p.text + " — " + p.source);
  t.notes.push_back("calibration s = the method's calibration metrics in seconds (summed over blocks), else its wall time");
  t.notes.push_back("÷ fp16 PPL pass = calibration s over the wall time of the same run's fp16 PPL job on the same model "
                    "and dataset (one machine, one run)");
  add_provenance_notes(t, store, rows);

  // The paper's own table, for models we cannot run here. A row of a method this harness
  // implements appears only when our method can run that weight quantizer or a job did (a row
  // our method cannot run would pose as reproducible).
  Table ref{"FlatQuant paper's numbers (not measured here) — PPL, W4A4KV4, seqlen 2048",
            {"dataset", "method", "W quant"}, {}, {}};
  std::vector<std::string> models;
  std::map<std::tuple<std::string, std::string, std::string>, std::map<std::string, std::string>> cells;
  for (const auto& p : paper_numbers("flatquant-ppl")) {
    std::string wq = p.setting == "FP16" ? "-" : p.setting.substr(p.setting.find(' ') + 1);
    if (wq != "-" && !produced.count({p.method, wq}) && !paper_row_reproducible(p.method, wq)) continue;
    if (std::find(models.begin(), models.end(), p.model) == models.end()) models.push_back(p.model);
    cells[{p.metric.substr(4), p.method, wq}][p.model] = p.display();
  }
  for (const auto& m : models) ref.headers.push_back(m);
  for (const auto& [k, byModel] : cells) {
    std::vector<std::string> row = {std::get<0>(k), std::get<1>(k), std::get<2>(k)};
    for (const auto& m : models) row.push_back(byModel.count(m) ? byModel.at(m) : "");
    ref.add_row(row);
  }
  ref.notes.push_back(std::string("the paper's numbers, copied from ") + kFlatQuantSource +
                      ", Tables 1 and 2; rows of methods implemented here only for weight quantizers they can run");
  return {t, ref};
}

// ---------------------------------------------------------------- GEMM table per device
std::vector<Table> gemm_tables(const Store& store) {
  std::map<std::string, Table> by_device;
  std::map<std::string, std::vector<const ReportRow*>> sources;
  auto rows = latest_rows(store, "", "gemm");
  for (const auto& r : rows)
    for (const auto& g : store.gemms(r.job.id)) {
      auto [it, fresh] = by_device.try_emplace(g.device);
      Table& t = it->second;
      if (fresh) {
        t.title = "GEMM latency on " + g.device;
        t.headers = {"backend", "dtype", "M", "N", "K", "verify", "reps", "min ms", "median ms", "max ms", "GOP/s",
                     "×fp32"};
      }
      // An incorrect or not_supported row has no timing: its latency cells stay empty, not 0.
      const bool timed = gemm_row_timed(g);
      auto ms = [&](double v) { return timed ? fmt_num(v) : std::string(); };
      t.add_row({g.backend, g.dtype, std::to_string(g.m), std::to_string(g.n), std::to_string(g.k),
                 g.disposition.empty() ? "unknown" : g.disposition, timed ? std::to_string(g.reps) : "",
                 ms(g.min_ms), ms(g.median_ms), ms(g.max_ms), ms(g.gops),
                 g.ratio_to_fp32 > 0 ? fmt_num(g.ratio_to_fp32, 3) + "x" : ""});
      auto& src = sources[g.device];
      if (src.empty() || src.back() != &r) src.push_back(&r);
    }
  std::vector<Table> out;
  for (auto& [device, t] : by_device) {
    add_provenance_notes(t, store, sources[device]);
    out.push_back(std::move(t));
  }
  if (out.empty()) {
    Table empty{"GEMM latency", {"backend", "dtype", "M", "N", "K", "median ms"}, {}, {}};
    add_provenance_notes(empty, store, std::vector<const ReportRow*>{});
    out.push_back(empty);
  }
  return out;
}

}  // namespace

std::string precision_class(const std::string& dtype) {
  // The dtype's row decides (kernels/gemm_dtype.h); an unknown dtype stays unclassified rather than guessed.
  const GemmDtypeTraits* traits = find_gemm_dtype(dtype);
  return traits ? std::string(traits->report_class) : std::string();
}

std::string gamma_cell(double gamma) {
  if (std::isnan(gamma)) return "";
  if (gamma >= 1e29) return "∞ (all INT4)";
  if (gamma < 0) return fmt_num(gamma) + " (all INT8)";
  return fmt_num(gamma);
}

std::string method_cell(const json& spec, const std::vector<std::string>& leave_out) {
  std::string name = part_name(spec, "method");
  if (name.empty()) return "-";
  static const json kNone = json::object();
  static const ParamSchema kUnregistered;  // a method not built into this binary: every parameter is shown
  const json& p = spec["method"].contains("params") ? spec["method"]["params"] : kNone;
  const MethodInfo* info = Registry<MethodInfo>::instance().find(name);
  auto show = [](const json& v) {
    std::string vs = v.is_string() ? v.get<std::string>() : v.is_number() ? fmt_num(v.get<double>()) : v.dump();
    return vs.size() > 24 ? vs.substr(0, 21) + "..." : vs;
  };
  std::string out = param_label(info ? info->params : kUnregistered, p, show, leave_out);
  return out.empty() ? name : name + "(" + out + ")";
}

double fraction_metric(const ReportRow& row, const std::string& name) {
  auto it = row.metrics.find(name);
  if (it == row.metrics.end()) return NAN;
  return it->second.unit == "%" ? it->second.value / 100 : it->second.value;
}

Int4Share int4_share(const Store& store, const ReportRow& row) {
  Int4Share s;
  auto sites = store.sites(row.job.id);
  s.sites = static_cast<int>(sites.size());
  double n4 = 0, f4 = 0, ftotal = 0;
  for (const auto& x : sites) {
    bool int4 = x.w_bits == 4 || x.a_bits == 4;
    n4 += int4;
    ftotal += x.flops;
    f4 += int4 ? x.flops : 0;
  }
  s.layers = row.has("int4_share_layers") ? fraction_metric(row, "int4_share_layers") : sites.empty() ? NAN : n4 / sites.size();
  s.flops = row.has("int4_share_flops") ? fraction_metric(row, "int4_share_flops") : ftotal > 0 ? f4 / ftotal : NAN;
  return s;
}

// The same job spec on each execution backend (issue 19: a GPU's PPL within 0.5% of the CPU's):
// one row per backend, its PPL beside the CPU's of the spec that differs only in `backend`.
std::vector<Table> backends_table(const Store& store) {
  Table t{"Execution backends — the same job spec on each backend (PPL, relative to the CPU's)",
          {"model", "method", "dataset", "seqlen", "backend", "PPL", "Δ vs cpu", "tok/s"}, {}, {}};
  const auto rows = latest_rows(store, "", "ppl");
  auto without_backend = [](const json& spec) {
    json s = spec;
    s.erase("backend");
    return s.dump();
  };
  std::map<std::string, double> cpu_ppl;
  for (const auto& r : rows)
    if (r.job.spec.value("backend", "cpu") == "cpu") cpu_ppl[without_backend(r.job.spec)] = r.value("ppl");
  for (const auto& r : rows) {
    const json& s = r.job.spec;
    const auto cpu = cpu_ppl.find(without_backend(s));
    const std::string backend = s.value("backend", "cpu");
    const bool compared = backend != "cpu" && cpu != cpu_ppl.end();
    t.add_row({model_cell(r), method_cell(s), text_param(s, "eval", {"dataset"}), num_cell(r.value("seqlen"), 0), backend,
               num_cell(r.value("ppl")),
               compared ? fmt::format("{:+.2e}", r.value("ppl") / cpu->second - 1) : "", num_cell(r.value("tok_per_s"), 0)});
  }
  t.notes.push_back("Δ vs cpu = PPL ÷ the CPU job's PPL − 1, for the job spec that differs only in its backend");
  add_provenance_notes(t, store, rows);
  return {t};
}

const std::vector<TableDef>& table_defs() {
  static const std::vector<TableDef> defs = {
      {"summary", "one row per job with its headline metrics, then the GEMM rows (the default report)",
       [](const Store& s) { return summary_tables(s); }},
      {"t4_int4_share", "FlattenQuant Table 4: INT4 share of linear layers per model (by count and by FLOPs)", table4,
       {kGamma}},
      {"t5_latency", "FlattenQuant Table 5: GEMM latency per precision and shape, flatten op, INT4/INT8 speedup", table5},
      {"t6_memory", "FlattenQuant Table 6: memory terms per model and method, reduction vs fp16", table6},
      {"t7_ablation", "FlattenQuant Tables 7/9: channel smoothing and outlier suppression ablation (PPL)", table7,
       {kSmooth, kAlpha, kSuppress}},
      {"t8_beta", "FlattenQuant Table 8: β sweep — flatten ratio, memory, PPL", table8, {kBeta}},
      {"t10_gamma", "FlattenQuant Table 10: γ sweep — INT4 share, PPL", table10, {kGamma}},
      {"flatten_regime", "FlattenQuant regime study: flatten ratio, scale cut and error per input group vs β", flatten_regime,
       {kBitsMode, kSplit, kBetaRef, kBeta, report_params::kOutlierScale, report_params::kOutlierChannels}},
      {"flatquant", "FlatQuant comparison: PPL per method and bit setting, calibration time, paper reference",
       flatquant_tables,
       {report_params::kWBits, report_params::kABits, report_params::kKvBits, report_params::kKBits, report_params::kVBits,
        report_params::kWQuantizer, kBitsMode, kGamma}},
      {"gemm", "GEMM latency table per device (every backend, dtype and shape)", gemm_tables},
      {"backends", "the same job spec on the CPU and each GPU backend: PPL and its difference from the CPU's",
       backends_table},
  };
  return defs;
}

const TableDef* find_table(const std::string& name) {
  for (const auto& d : table_defs())
    if (d.name == name) return &d;
  return nullptr;
}

std::vector<Table> build_tables(const Store& store, const std::string& name) {
  if (name == "all") {
    std::vector<Table> out;
    for (const auto& d : table_defs()) {
      auto t = d.build(store);
      out.insert(out.end(), t.begin(), t.end());
    }
    return out;
  }
  if (const TableDef* d = find_table(name)) return d->build(store);
  std::string known;
  for (const auto& d : table_defs()) known += (known.empty() ? "" : ", ") + d.name;
  throw std::invalid_argument("unknown table '" + name + "' (known: " + known + ", all)");
}

std::string table_list_help() {
  std::string out;
  for (const auto& d : table_defs()) out += fmt::format("  {:<15} {}\n", d.name, d.help);
  return out;
}

}  // namespace fb

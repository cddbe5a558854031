#include "methods/common/recipe.h"

#include "methods/common/kv_quant.h"
#include "methods/common/memory.h"
#include "methods/common/quant_linear.h"
#include "methods/method.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <utility>

namespace fb {

ParamSchema gptq_param_schema() {
  using T = ParamType;
  return {
      {"w_quantizer", T::String, "rtn", "weight quantizer: round-to-nearest or GPTQ", {"rtn", "gptq"}},
      {"gptq_block", T::Int, 128, "GPTQ lazy-update block size (columns)", {}, {}, at_least(1)},
      {"gptq_damp", T::Float, 0.01, "GPTQ dampening λ (fraction of mean diag H)", {}, {}, between(0, 1)},
      {"gptq_act_order", T::Bool, false, "GPTQ: quantize columns in decreasing Hessian-diagonal order"},
  };
}

ParamSchema quant_param_schema() {
  using T = ParamType;
  ParamSchema schema = {
      {"w_bits", T::Int, 4, "weight bits (2..8; 16 = weights left in floating point)", {}, {}, bit_width()},
      {"a_bits", T::Int, 16, "activation (linear input) bits (2..8; 16 = off)", {}, {}, bit_width()},
      {"w_granularity", T::String, "per_channel", "weight scales: one per output row, per tensor, or per group of w_group inputs",
       {"per_channel", "per_tensor", "per_group"}},
      {"w_group", T::Int, 128, "input channels per weight group (w_granularity = per_group)", {}, {}, at_least(1)},
      {"a_granularity", T::String, "per_token", "activation scales: one per token (dynamic) or one per tensor",
       {"per_token", "per_tensor"}},
      {"a_static", T::Bool, false, "per-tensor static activation scale from the calibration range (else dynamic)"},
      {"w_sym", T::Bool, true, "symmetric weight grid (else asymmetric with zero points)"},
      {"a_sym", T::Bool, true, "symmetric activation grid"},
      {"w_clip", T::Float, 1.0, "weight range ratio (scale from w_clip · range)", {}, {}, between(0.01, 1)},
      {"a_clip", T::Float, 1.0, "activation range ratio (QuaRot uses 0.9)", {}, {}, between(0.01, 1)},
      {"w_mse", T::Bool, false, "search each weight row's clip ratio minimising |Ŵ − W|^2.4 (GPTQ repo's mse option)"},
      {"kv_bits", T::Int, 16, "KV-cache bits, asymmetric per token per head (16 = off)", {}, {}, bit_width()},
      {"real_quant", T::Bool, false, "integer-GEMM operators (packed int8/int4 weights) instead of fake-quant"},
      {"calib_dataset", T::String, "wikitext2-valid", "calibration corpus (name or path under the data dir)", {}, ParamRole::corpus, {}},
      {"calib_samples", T::Int, 32, "calibration windows", {}, {}, at_least(1)},
      {"calib_seqlen", T::Int, 256, "tokens per calibration window (capped at the model context)", {}, {}, at_least(2)},
      {"calib_rows", T::Int, 1024, "input rows kept per site for the reconstruction-error record", {}, {}, at_least(1)},
  };
  const ParamSchema gptq = gptq_param_schema();
  schema.insert(schema.begin() + 11, gptq.begin(), gptq.end());  // after w_mse, as catalog lists them
  return schema;
}

GptqOptions gptq_options_from(const json& p) {
  // w_mse belongs to the recipe's schema; a method with only gptq_param_schema() keeps min/max scales.
  return GptqOptions{param_int(p, "gptq_block"), param_float(p, "gptq_damp"), param_bool(p, "gptq_act_order"),
                     p.contains("w_mse") && param_bool(p, "w_mse")};
}

QuantRecipe recipe_from_params(const json& p, uint64_t seed) {
  QuantRecipe r;
  r.w.bits = param_int(p, "w_bits");
  r.w.granularity = parse_granularity(param_string(p, "w_granularity"));
  r.w.group = param_int(p, "w_group");
  r.w.sym = param_bool(p, "w_sym");
  r.w.clip = float(param_float(p, "w_clip"));
  r.w.weight = true;
  r.a.bits = param_int(p, "a_bits");
  r.a.granularity = parse_granularity(param_string(p, "a_granularity"));
  r.a.sym = param_bool(p, "a_sym");
  r.a.clip = float(param_float(p, "a_clip"));
  r.a_static = param_bool(p, "a_static");
  r.w_mse = param_bool(p, "w_mse");
  r.use_gptq = param_string(p, "w_quantizer") == "gptq";
  r.gptq = gptq_options_from(p);
  r.kv_bits = param_int(p, "kv_bits");
  r.real_quant = param_bool(p, "real_quant");
  r.calib = calib_config_from(p, seed);
  r.w.validate();
  r.a.validate();
  if (r.kv_bits < 16) kv_quant_spec(r.kv_bits, 1);  // validates the bit width
  if (r.a_static && r.a.granularity != Granularity::per_tensor)
    throw std::invalid_argument("a_static needs a_granularity: per_tensor (a static scale per token is undefined)");
  if (r.use_gptq && !r.w.enabled()) throw std::invalid_argument("w_quantizer: gptq needs w_bits < 16");
  if (r.real_quant && !r.w.enabled())
    throw std::invalid_argument("real_quant needs quantized weights (w_bits ≤ 8); use fake-quant for W16 activations");
  return r;
}

std::string QuantRecipe::describe() const {
  std::string w_part = w.enabled() ? fmt::format("W{} {}{}", w.bits, w.describe(), use_gptq ? " gptq" : "") : "W16";
  std::string a_part = a.enabled() ? fmt::format("A{} {}{}", a.bits, a_static ? "static " : "", a.describe()) : "A16";
  return fmt::format("{} / {} / KV{} {}", w_part, a_part, kv_bits, real_quant ? "real" : "fake");
}

namespace {

std::vector<std::vector<Role>> gptq_stages(Arch arch) {
  if (arch == Arch::llama) return {{Role::k, Role::v, Role::q}, {Role::o}, {Role::up, Role::gate}, {Role::down}};
  return {{Role::k, Role::v, Role::q}, {Role::o}, {Role::fc1}, {Role::fc2}};
}

ActQuantizer no_act() {
  ActQuantizer a;
  a.spec.bits = 16;
  return a;
}

ActQuantizer act_quantizer_for(const QuantRecipe& r, const SiteStats* st) {
  ActQuantizer a;
  a.spec = r.a;
  if (r.a.enabled() && r.a_static) {
    if (!st) throw std::logic_error("static activation scales need calibration statistics");
    a.is_static = true;
    a.static_lo = st->lo;
    a.static_hi = st->hi;
  }
  return a;
}

std::shared_ptr<const LinearOp> make_op(const LinearSite& s, const QuantizedWeight* w, const ActQuantizer& act,
                                        bool real) {
  if (!w) return std::make_shared<FakeQuantLinear>(s.W, s.b, act);
  if (real) return std::make_shared<RealQuantLinear>(*w, s.b, act);
  return std::make_shared<FakeQuantLinear>(*w, s.b, act);
}

double reconstruction_mse(const LinearSite& s, const LinearOp& op, const Mat& rows) {
  if (rows.rows() == 0) return -1;
  Mat ref = rows * s.W.transpose(), got;
  if (s.b.size()) ref.rowwise() += s.b.transpose();
  op.forward(rows, got);
  return double((ref - got).squaredNorm()) / double(ref.size());
}

double mean_clip(const QuantizedWeight& w) {
  if (w.clips.empty()) return w.spec.clip;
  double sum = 0;
  for (float c : w.clips) sum += c;
  return sum / double(w.clips.size());
}

SiteRecord make_record(const LinearSite& s, const QuantRecipe& r, const QuantizedWeight* w, const ActQuantizer& act) {
  SiteRecord rec;
  rec.layer = s.id.layer;
  rec.role = role_name(s.id.role);
  rec.w_bits = w ? w->spec.bits : 16;
  rec.a_bits = act.enabled() ? act.spec.bits : 16;
  rec.k_in = rec.k_flat = rec.k_pad = s.in_features();
  rec.flops = 2.0 * double(s.out_features()) * double(s.in_features());
  if (w && w->params.per_tensor) rec.w_scale = w->params.scale[0];
  if (act.is_static) rec.a_scale = scale_from_range(act.static_lo, act.static_hi, act.spec).scale;
  rec.clip = w ? mean_clip(*w) : 1.0;
  rec.extra["w_granularity"] = granularity_name(r.w.granularity);
  rec.extra["a_granularity"] = act.enabled() ? (act.is_static ? "per_tensor_static" : granularity_name(act.spec.granularity)) : "none";
  rec.extra["w_quantizer"] = r.use_gptq ? "gptq" : "rtn";
  return rec;
}

}  // namespace

QuantizedWeights gptq_in_sequence(Model& m, const std::vector<std::vector<int>>& windows, const GptqTargetOf& target,
                                  const GptqOptions& gptq, const GptqInstall& install, JobResult* result) {
  QuantizedWeights out;
  int dead_total = 0;
  for (int l = 0; l < m.cfg.n_layers; ++l)
    for (const std::vector<Role>& stage : gptq_stages(m.cfg.arch)) {
      CollectOptions opt;
      opt.max_rows = 0;
      opt.hessian = true;
      opt.want = [&](const SiteId& id) {
        return id.layer == l && std::find(stage.begin(), stage.end(), id.role) != stage.end();
      };
      opt.rows_of = [&](const SiteId& id, const Mat& x) {
        const LinearSite& s = m.site(id);
        return s.op ? s.op->hessian_rows(x) : x;
      };
      SiteStatsMap stats = collect_site_stats(m, windows, opt);
      for (Role role : stage) {
        LinearSite& s = m.site({l, role});
        const std::optional<GptqTarget> t = target(s);
        if (!t) continue;
        const SiteStats& st = stats.at(site_key(s.id));
        GptqInfo info;
        QuantizedWeight w = gptq_quantize(t->W, st.xtx, st.tokens, t->spec, gptq, &info);
        dead_total += info.dead_columns;
        s.op = install(s, w);  // later stages see the quantized weight
        out.emplace(site_key(s.id), std::move(w));
      }
    }
  if (result) result->info["gptq_dead_columns"] = dead_total;
  return out;
}

QuantizedWeights gptq_quantize_model(Model& m, const std::vector<std::vector<int>>& windows, const QuantRecipe& r,
                                     JobResult* result) {
  return gptq_in_sequence(
      m, windows, [&](const LinearSite& s) { return std::optional<GptqTarget>(GptqTarget{s.W, r.w}); }, r.gptq,
      [](const LinearSite& s, const QuantizedWeight& w) { return std::make_shared<FakeQuantLinear>(w, s.b, no_act()); },
      result);
}

void quantize_sites(Model& m, const QuantRecipe& r, const SiteStatsMap& stats, const QuantizedWeights& pre,
                    JobResult& result) {
  for (LinearSite* s : m.sites()) {
    const int key = site_key(s->id);
    auto st_it = stats.find(key);
    const SiteStats* st = st_it == stats.end() ? nullptr : &st_it->second;

    std::optional<QuantizedWeight> w;
    if (auto it = pre.find(key); it != pre.end())
      w = it->second;
    else if (r.w.enabled())
      w = quantize_weight_rtn(s->W, r.w, r.w_mse);
    ActQuantizer act = act_quantizer_for(r, st);

    s->op = make_op(*s, w ? &*w : nullptr, act, r.real_quant);
    SiteRecord rec = make_record(*s, r, w ? &*w : nullptr, act);
    rec.mse = st ? reconstruction_mse(*s, *s->op, st->rows) : -1;
    rec.extra["op"] = s->op->describe();
    result.sites.push_back(std::move(rec));
  }
}

void record_unquantized_sites(const Model& m, JobResult& result) {
  for (const LinearSite* s : m.sites()) {
    SiteRecord rec;
    rec.layer = s->id.layer;
    rec.role = role_name(s->id.role);
    rec.k_in = rec.k_flat = rec.k_pad = s->in_features();
    rec.flops = 2.0 * double(s->out_features()) * double(s->in_features());
    result.sites.push_back(std::move(rec));
  }
}

namespace {

void add_summary(const Model& m, const QuantRecipe& r, const std::vector<std::vector<int>>& windows, size_t first_site,
                 JobResult& result) {
  double mse_sum = 0;
  int mse_n = 0;
  for (size_t i = first_site; i < result.sites.size(); ++i)
    if (result.sites[i].mse >= 0) mse_sum += result.sites[i].mse, ++mse_n;
  double weight_bytes = 0;
  for (const LinearSite* s : m.sites()) weight_bytes += footprint_weight_bytes(site_footprint(*s), 2.0);
  result.add("n_sites", double(m.sites().size()));
  result.add("linear_weight_bytes", weight_bytes, "bytes");
  if (mse_n) result.add("mean_site_mse", mse_sum / mse_n);
  long tokens = 0;
  for (const auto& w : windows) tokens += long(w.size());
  result.add("calib_tokens", double(tokens));
  result.info["recipe"] = r.describe();
  result.info["calib_dataset"] = windows.empty() ? "none" : r.calib.dataset;
  result.info["kv_bits"] = r.kv_bits;
}

}  // namespace

void apply_recipe(Model& m, MethodContext& ctx, const QuantRecipe& r, JobResult& result, SiteStatsMap stats,
                  std::vector<std::vector<int>> windows) {
  const size_t first_site = result.sites.size();
  if (r.quantizes_linears()) {
    if (windows.empty()) windows = calibration_windows(m, ctx.tokenizer, ctx.data_dir, r.calib);
    if (stats.empty()) {
      CollectOptions opt;
      opt.max_rows = r.calib.max_rows;
      stats = collect_site_stats(m, windows, opt, &ctx.progress);
    }
    QuantizedWeights pre;
    if (r.use_gptq) {
      ctx.progress.message("gptq: " + std::to_string(m.cfg.n_layers) + " layers");
      pre = gptq_quantize_model(m, windows, r, &result);
    }
    quantize_sites(m, r, stats, pre, result);
  } else {
    record_unquantized_sites(m, result);
  }
  install_kv_quant(m, r.kv_bits);
  add_summary(m, r, windows, first_site, result);
}

}  // namespace fb

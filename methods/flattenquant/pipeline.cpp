#include "methods/flattenquant/pipeline.h"

#include "core/params.h"
#include "methods/common/kv_quant.h"
#include "methods/common/memory.h"
#include "methods/common/recipe.h"
#include "methods/common/smoothing.h"
#include "methods/flattenquant/flatten_linear.h"
#include "methods/flattenquant/kl_choice.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

namespace fb {

FlattenQuantConfig flattenquant_config_from(const nlohmann::json& p, uint64_t seed) {
  FlattenQuantConfig c;
  c.beta = float(param_float(p, "beta"));
  c.beta_ref = parse_beta_reference(param_string(p, "beta_ref"));
  c.pad_to = param_int(p, "pad_to");
  c.split = parse_split_mode(param_string(p, "split"));
  const std::string bits = param_string(p, "bits_mode");
  c.bits_mode = bits == "kl" ? BitsMode::kl : bits == "int8" ? BitsMode::int8 : bits == "int4" ? BitsMode::int4 : BitsMode::none;
  c.gamma = param_float(p, "gamma");
  const std::string kl = param_string(p, "kl_mode");
  c.kl_mode = kl == "abs" ? KlMode::abs : kl == "signed" ? KlMode::signed_values : kl == "input_weight" ? KlMode::input_weight : KlMode::output;
  c.kl_bins = param_int(p, "kl_bins");
  c.smooth = param_bool(p, "smooth");
  c.alpha = float(param_float(p, "alpha"));
  c.smooth_all = param_string(p, "smooth_sites") == "all";
  c.suppress = param_bool(p, "suppress");
  c.stat = parse_channel_stat(param_string(p, "stat"));
  c.percentile = param_float(p, "percentile");
  c.a_dynamic = param_bool(p, "a_dynamic");
  c.w_per_channel = param_string(p, "w_granularity") == "per_channel";
  c.gptq = param_string(p, "w_quantizer") == "gptq";
  c.w_mse = param_bool(p, "w_mse");
  c.gptq_opt = gptq_options_from(p);
  c.kv_bits = param_int(p, "kv_bits");
  c.real_quant = param_bool(p, "real_quant");
  c.check_windows = param_int(p, "check_windows");
  c.calib = calib_config_from(p, seed);

  auto bad = [](const std::string& what) { throw std::invalid_argument("flattenquant: " + what); };
  if (!(c.beta > 0)) bad(fmt::format("beta must be > 0, got {}", c.beta));
  if (c.pad_to < 1) bad(fmt::format("pad_to must be ≥ 1, got {}", c.pad_to));
  if (c.kl_bins < 16) bad(fmt::format("kl_bins must be ≥ 16, got {}", c.kl_bins));
  if (!(c.alpha >= 0 && c.alpha <= 1)) bad(fmt::format("alpha must be in [0, 1], got {}", c.alpha));
  if (!(c.percentile > 0 && c.percentile <= 100)) bad(fmt::format("percentile must be in (0, 100], got {}", c.percentile));
  if (c.check_windows < 0) bad("check_windows must be ≥ 0");
  if (c.real_quant && c.bits_mode == BitsMode::none) bad("real_quant needs quantization (bits_mode kl, int8 or int4)");
  if (c.kv_bits < 16) kv_quant_spec(c.kv_bits, 1);  // validates the bit width
  return c;
}

namespace {

// ---- smoothing (docs/methods.md §1.4) -------------------------------------------------------

using ScaleRecord = std::map<int, float>;  // site_key → max smoothing scale applied to its input

// q/k/v (and fc1, or LLaMA gate/up): fold 1/s into the norm, s into the weight columns.
void smooth_norm_inputs(Model& m, ChannelStatsMap& stats, const FlattenQuantConfig& cfg, ScaleRecord& rec) {
  for (const SmoothGroup& g : smoothable_groups(m)) {
    const std::vector<LinearSite*> sites = group_sites(m, g);
    ChannelStats& st = stats.at(site_key(input_leader(sites.front()->id)));
    const Vec s = smoothing_scales(st.magnitude(cfg.effective_stat()), weights_of(sites), cfg.alpha);
    fold_smoothing(*m.norm_before(sites.front()->id), sites, s);
    st.rescale(s);
    for (LinearSite* site : sites) rec[site_key(site->id)] = s.maxCoeff();
  }
}

// Scales for a consumer whose input channels come in groups that must share one scale.
// group_of[k] maps input channel k to its group; s_g = max_k m_k^α / max_k w_k^(1−α) over the group.
Vec grouped_scales(const Vec& act, const Mat& W, const std::vector<int>& group_of, int groups, float alpha) {
  Vec m = Vec::Zero(groups), w = Vec::Zero(groups);
  const Vec wcol = W.cwiseAbs().colwise().maxCoeff().transpose();
  for (long k = 0; k < act.size(); ++k) {
    m[group_of[size_t(k)]] = std::max(m[group_of[size_t(k)]], act[k]);
    w[group_of[size_t(k)]] = std::max(w[group_of[size_t(k)]], wcol[k]);
  }
  Vec s(groups);
  for (int g = 0; g < groups; ++g)
    s[g] = std::max(std::pow(m[g], alpha) / std::pow(std::max(w[g], 1e-5f), 1.f - alpha), 1e-5f);
  return s;
}

// Divides producer output rows (and bias) by s_g and multiplies consumer input columns by s_{g(k)}.
void fold_rows_into_columns(LinearSite& producer, LinearSite& consumer, const Vec& s, const std::vector<int>& group_of) {
  for (long r = 0; r < s.size(); ++r) {
    producer.W.row(r) /= s[r];
    if (producer.b.size()) producer.b[r] /= s[r];
  }
  for (long k = 0; k < consumer.W.cols(); ++k) consumer.W.col(k) *= s[group_of[size_t(k)]];
}

// The optional A2 / A4 folds (docs/methods.md §1.4): attention is linear in V per head, so o_proj's input
// channel (head h, dim d) can be divided through v_proj's row (kv head of h, dim d) — shared by
// every query head of a grouped-query group; ReLU(c·z) = c·ReLU(z) and silu(g)·(c·u) = c·(silu(g)·u)
// for c > 0, so fc2 / down inputs can be divided through fc1 / up rows.
void smooth_output_folds(Model& m, ChannelStatsMap& stats, const FlattenQuantConfig& cfg, ScaleRecord& rec) {
  const int hd = m.cfg.head_dim(), group = m.cfg.n_heads / m.cfg.n_kv_heads;
  const bool llama = m.cfg.arch == Arch::llama;
  for (int l = 0; l < m.cfg.n_layers; ++l) {
    LinearSite& o = m.site({l, Role::o});
    LinearSite& v = m.site({l, Role::v});
    std::vector<int> kv_of(size_t(o.in_features()));
    for (int c = 0; c < o.in_features(); ++c) kv_of[size_t(c)] = (c / hd) / group * hd + c % hd;
    ChannelStats& so = stats.at(site_key(o.id));
    const Vec s_kv = grouped_scales(so.magnitude(cfg.effective_stat()), o.W, kv_of, v.out_features(), cfg.alpha);
    fold_rows_into_columns(v, o, s_kv, kv_of);
    Vec s_o(o.in_features());
    for (int c = 0; c < o.in_features(); ++c) s_o[c] = s_kv[kv_of[size_t(c)]];
    so.rescale(s_o);
    rec[site_key(o.id)] = s_o.maxCoeff();

    LinearSite& prod = m.site({l, llama ? Role::up : Role::fc1});
    LinearSite& cons = m.site({l, llama ? Role::down : Role::fc2});
    std::vector<int> identity(size_t(cons.in_features()));
    for (int k = 0; k < cons.in_features(); ++k) identity[size_t(k)] = k;
    ChannelStats& sc = stats.at(site_key(cons.id));
    const Vec s = grouped_scales(sc.magnitude(cfg.effective_stat()), cons.W, identity, cons.in_features(), cfg.alpha);
    fold_rows_into_columns(prod, cons, s, identity);
    sc.rescale(s);
    rec[site_key(cons.id)] = s.maxCoeff();
  }
}

// ---- flatten plans (docs/methods.md §1.5) ---------------------------------------------------

struct InputPlan {
  FlattenActivation act;   // plan, range, clip limits (bits set per site later)
  float threshold = 0;     // T
  float max_range = 0;     // max_k absmax_k / n_k: the range the plain max statistic would give
  float unflat_range = 0;  // max_k m_k: the per-tensor range without flattening (β = 1)
  float dominance = 1;     // max_k m_k / median_k m_k: how far the largest channel stands above the bulk
  int n_split = 0;         // channels with n_k > 1
};

float median_of(Vec v) {
  if (v.size() == 0) return 0;
  std::nth_element(v.data(), v.data() + v.size() / 2, v.data() + v.size());
  return v[v.size() / 2];
}

InputPlan plan_input(const ChannelStats& st, const FlattenQuantConfig& cfg) {
  InputPlan ip;
  const Vec& mag = st.magnitude(cfg.effective_stat());
  ip.threshold = flatten_threshold(mag, cfg.beta, cfg.beta_ref);
  ip.act.plan = make_flatten_plan(flatten_copies(mag, ip.threshold), cfg.pad_to, cfg.split);
  ip.act.range = flattened_range(mag, ip.act.plan);
  ip.act.dynamic = cfg.a_dynamic;
  ip.max_range = flattened_range(st.absmax, ip.act.plan);
  ip.unflat_range = mag.size() ? mag.maxCoeff() : 0.f;
  const float median = median_of(mag);
  ip.dominance = median > 0 ? ip.unflat_range / median : 1.f;
  const std::vector<int> n = plan_copies(ip.act.plan);
  for (int c : n) ip.n_split += c > 1;
  if (cfg.suppress) {
    // Runtime clipping to the plan's range: channel k's copies hold x_k / n_k ≤ R.
    ip.act.clip_limit.resize(n.size());
    for (size_t k = 0; k < n.size(); ++k) ip.act.clip_limit[k] = float(n[k]) * ip.act.range;
  }
  return ip;
}

// ---- KL criterion (docs/methods.md §1.7) ----------------------------------------------------

// Histograms of the flattened (clipped) calibration inputs of every input tensor: a second pass.
std::map<int, Histogram> input_histograms(Model& m, const std::vector<std::vector<int>>& windows,
                                          const std::map<int, InputPlan>& plans, const FlattenQuantConfig& cfg) {
  std::map<int, Histogram> out;
  for (const auto& [key, ip] : plans)
    out.emplace(key, Histogram(ip.act.range > 0 ? ip.act.range : 1.f, cfg.kl_bins, cfg.kl_mode == KlMode::signed_values));
  forward_with_site_hook(m, windows, [&](const SiteId& id, const Mat& x) {
    if (input_leader(id).role != id.role) return;
    const InputPlan& ip = plans.at(site_key(id));
    const Mat xf = flatten_activations(ip.act.clipped(x), ip.act.plan);
    const long kf = flat_width(ip.act.plan);  // padding columns are exact zeros: not part of the distribution
    Histogram& h = out.at(site_key(id));
    for (long t = 0; t < xf.rows(); ++t) h.add(xf.row(t).data(), kf);
  });
  return out;
}

Mat site_reference(const LinearSite& s, const Mat& rows) {
  Mat ref = rows * s.W.transpose();
  if (s.b.size()) ref.rowwise() += s.b.transpose();
  return ref;
}

// Output variant: KL between |Y_fp| and |Y_int4| histograms on the sampled calibration rows.
double output_kl(const LinearSite& s, const LinearOp& op4, const Mat& rows, int bins) {
  if (rows.rows() == 0) return 0;
  const Mat ref = site_reference(s, rows);
  Mat got;
  op4.forward(rows, got);
  const float r = std::max(ref.cwiseAbs().maxCoeff(), 1e-12f);
  Histogram p(r, bins, false), q(r, bins, false);
  p.add(ref.data(), ref.size());
  q.add(got.data(), got.size());
  for (double& c : q.counts) c += 1e-6;  // keeps KL finite where INT4 leaves a bin empty
  return kl_divergence(p.counts, q.counts);
}

// ---- weights ----------------------------------------------------------------

QuantSpec weight_spec(int bits, const FlattenQuantConfig& cfg) {
  QuantSpec s;
  s.bits = bits;
  s.sym = true;
  s.granularity = cfg.w_per_channel ? Granularity::per_channel : Granularity::per_tensor;
  s.weight = true;
  return s;
}

std::shared_ptr<const LinearOp> make_site_op(const LinearSite& s, const InputPlan& ip, int bits,
                                             const FlattenQuantConfig& cfg, QuantizedWeight* w_out = nullptr) {
  FlattenActivation act = ip.act;
  const Mat W_exp = expand_weight(s.W, act.plan);
  if (bits >= 16) {
    act.bits = 16;
    return std::make_shared<FlattenQuantLinear>(act, W_exp, s.b);
  }
  act.bits = bits;
  QuantizedWeight w = quantize_weight_rtn(W_exp, weight_spec(bits, cfg), cfg.w_mse);
  auto op = std::make_shared<FlattenQuantLinear>(act, w, s.b, cfg.real_quant);
  if (w_out) *w_out = std::move(w);
  return op;
}

// GPTQ over the expanded weights in GPTQ's sequence (docs/methods.md §3.4): each stage's Hessian
// from the flattened, clipped, quantized inputs the site's operator really multiplies, in the
// model whose earlier stages are already quantized; sites left in float are skipped.
QuantizedWeights gptq_expanded_weights(Model& m, const std::vector<std::vector<int>>& windows,
                                       const std::map<int, int>& bits_of, const FlattenQuantConfig& cfg,
                                       JobResult& result) {
  auto flatten_op = [](const LinearSite& s) -> const FlattenQuantLinear& {
    return dynamic_cast<const FlattenQuantLinear&>(*s.op);
  };
  return gptq_in_sequence(
      m, windows,
      [&](const LinearSite& s) -> std::optional<GptqTarget> {
        const int bits = bits_of.at(site_key(s.id));
        if (bits >= 16) return std::nullopt;
        return GptqTarget{expand_weight(s.W, flatten_op(s).activation().plan), weight_spec(bits, cfg)};
      },
      cfg.gptq_opt,
      // Fake-quant operators while GPTQ runs, whatever real_quant says: the Hessians, and so the
      // weights, must not depend on the GEMM kernel the operator deploys with.
      [&](const LinearSite& s, const QuantizedWeight& w) -> std::shared_ptr<const LinearOp> {
        return std::make_shared<FlattenQuantLinear>(flatten_op(s).activation(), w, s.b, false);
      },
      &result);
}

// ---- records and metrics ----------------------------------------------------

struct SiteErrors {
  double mse = -1, rel = -1;
};

SiteErrors reconstruction_errors(const LinearSite& s, const LinearOp& op, const Mat& rows) {
  if (rows.rows() == 0) return {};
  const Mat ref = site_reference(s, rows);
  Mat got;
  op.forward(rows, got);
  const double err = double((ref - got).squaredNorm()), power = double(ref.squaredNorm());
  return {err / double(ref.size()), power > 0 ? err / power : 0.0};
}

// The activation side alone: flattened, quantized activations times the float expanded weight, so
// the weight's rounding does not hide what flattening does to the activation's per-tensor scale.
double activation_rel_error(const LinearSite& s, const InputPlan& ip, int bits, const Mat& rows) {
  if (rows.rows() == 0) return -1;
  if (bits >= 16) return 0;
  FlattenActivation act = ip.act;
  act.bits = bits;
  const FlattenQuantLinear op(act, expand_weight(s.W, act.plan), s.b);
  return reconstruction_errors(s, op, rows).rel;
}

// Per input group — "norm" inputs (q/k/v, fc1 or gate/up: the norm outputs, where OPT's outlier
// channels live) and "inner" inputs (o, fc2 or down) — the flatten ratio, the geometric-mean cut of
// the per-tensor scale, dominance and crest factor, and the activation-only error. The regime study
// reads these.
void add_group_metrics(JobResult& result) {
  struct Acc {
    double k_in = 0, k_flat = 0, act = 0, log_cut = 0, log_dominance = 0, log_crest = 0;
    int n = 0, n_act = 0, n_crest = 0;
  };
  std::map<std::string, Acc> groups;
  for (const SiteRecord& r : result.sites) {
    Acc& a = groups[r.extra.value("input", std::string("inner"))];
    a.k_in += r.k_in, a.k_flat += r.k_flat, ++a.n;
    a.log_cut += std::log(std::max(r.extra.value("scale_reduction", 1.0), 1e-30));
    a.log_dominance += std::log(std::max(r.extra.value("dominance", 1.0), 1e-30));
    if (const double e = r.extra.value("act_rel_err", -1.0); e >= 0) a.act += e, ++a.n_act;
    if (const double c = r.extra.value("crest", -1.0); c > 0) a.log_crest += std::log(c), ++a.n_crest;
  }
  for (const auto& [group, a] : groups) {
    const std::string suffix = "_" + group + "_inputs";
    result.add("flatten_ratio" + suffix, a.k_in ? 100.0 * (a.k_flat - a.k_in) / a.k_in : 0, "%");
    result.add("scale_reduction" + suffix, std::exp(a.log_cut / a.n), "x");
    result.add("dominance" + suffix, std::exp(a.log_dominance / a.n), "x");
    if (a.n_act) result.add("act_rel_err" + suffix, a.act / a.n_act);
    if (a.n_crest) result.add("crest" + suffix, std::exp(a.log_crest / a.n_crest), "x");
  }
}

void add_job_metrics(const Model& m, const FlattenQuantConfig& cfg, const std::vector<double>& rel_errors,
                     long calib_tokens, JobResult& result) {
  double flops = 0, flops4 = 0, k_in = 0, k_flat = 0, k_pad = 0, w_in = 0, w_flat = 0, mse = 0, rel = 0;
  int n4 = 0, n8 = 0, n_mse = 0;
  for (const SiteRecord& r : result.sites) {
    flops += r.flops;
    if (r.w_bits == 4) flops4 += r.flops, ++n4;
    if (r.w_bits == 8) ++n8;
    k_in += r.k_in, k_flat += r.k_flat, k_pad += r.k_pad;
    const double n_out = r.flops / (2.0 * r.k_in);
    w_in += n_out * r.k_in, w_flat += n_out * r.k_pad;
    if (r.mse >= 0) mse += r.mse, ++n_mse;
  }
  for (double e : rel_errors) rel += e;
  const double n_sites = double(result.sites.size());
  result.add("n_sites", n_sites);
  result.add("n_int4", n4);
  result.add("n_int8", n8);
  result.add("int4_share_layers", n_sites ? 100.0 * n4 / n_sites : 0, "%");
  result.add("int4_share_flops", flops ? 100.0 * flops4 / flops : 0, "%");
  result.add("flatten_ratio", k_in ? 100.0 * (k_flat - k_in) / k_in : 0, "%");
  result.add("flatten_ratio_padded", k_in ? 100.0 * (k_pad - k_in) / k_in : 0, "%");
  result.add("weight_growth", w_in ? 100.0 * (w_flat - w_in) / w_in : 0, "%");
  if (n_mse) result.add("mean_site_mse", mse / n_mse);
  if (!rel_errors.empty()) result.add("mean_site_rel_err", rel / double(rel_errors.size()));
  double weight_bytes = 0, fp16_bytes = 0;
  for (const LinearSite* s : m.sites()) {
    weight_bytes += footprint_weight_bytes(site_footprint(*s), 2.0);
    fp16_bytes += 2.0 * double(s->W.size());
  }
  result.add("linear_weight_bytes", weight_bytes, "bytes");
  result.add("linear_weight_compression", weight_bytes > 0 ? fp16_bytes / weight_bytes : 0, "x");
  result.add("calib_tokens", double(calib_tokens));
}

std::string describe_config(const FlattenQuantConfig& c) {
  const char* modes[] = {"kl", "int8", "int4", "none"};
  return fmt::format("beta {} ({}), {} split, pad {}, bits {} γ {}, smooth {} α {}{}, suppress {}, W {} {}{}, A {}",
                     c.beta, c.beta_ref == BetaReference::max ? "max" : "median",
                     c.split == SplitMode::staggered ? "staggered" : "equal", c.pad_to,
                     modes[int(c.bits_mode)], c.gamma, c.smooth, c.alpha, c.smooth_all ? " (all)" : "", c.suppress,
                     c.w_per_channel ? "per_channel" : "per_tensor", c.gptq ? "gptq" : "rtn",
                     c.real_quant ? " real" : " fake", c.a_dynamic ? "dynamic" : "static");
}

// Logits of held-out windows, to compare the quantized model against the fp one.
std::vector<Mat> run_logits(const Model& m, const std::vector<std::vector<int>>& windows) {
  std::vector<Mat> out;
  for (const auto& w : windows) out.push_back(m.forward(w));
  return out;
}

void add_logit_metrics(const std::vector<Mat>& fp, const std::vector<Mat>& q, JobResult& result) {
  double err = 0, power = 0, agree = 0, tokens = 0;
  for (size_t i = 0; i < fp.size(); ++i) {
    err += double((q[i] - fp[i]).squaredNorm());
    power += double(fp[i].squaredNorm());
    for (long t = 0; t < fp[i].rows(); ++t) {
      Eigen::Index a, b;
      fp[i].row(t).maxCoeff(&a);
      q[i].row(t).maxCoeff(&b);
      agree += a == b;
      tokens += 1;
    }
  }
  result.add("logit_rel_err", power > 0 ? err / power : 0);
  result.add("top1_agreement", tokens ? 100.0 * agree / tokens : 0, "%");
}

int bits_for(const FlattenQuantConfig& cfg, double kl4) {
  switch (cfg.bits_mode) {
    case BitsMode::int8: return 8;
    case BitsMode::int4: return 4;
    case BitsMode::none: return 16;
    case BitsMode::kl: return cfg.gamma >= 1e30 ? 4 : choose_bits(kl4, cfg.gamma);
  }
  return 8;
}

// ---- the pipeline's steps ---------------------------------------------------

// Held-out windows and the fp model's logits on them, taken before anything is quantized.
struct LogitCheck {
  std::vector<std::vector<int>> windows;
  std::vector<Mat> fp_logits;
};

LogitCheck fp_logit_check(const Model& m, const FlattenQuantConfig& cfg, const Tokenizer* tok,
                          const std::filesystem::path& data_dir) {
  LogitCheck check;
  if (cfg.check_windows <= 0) return check;
  CalibConfig held_out = cfg.calib;
  held_out.samples = cfg.check_windows;
  held_out.seed = cfg.calib.seed + 7919;  // other offsets than the calibration windows
  check.windows = calibration_windows(m, tok, data_dir, held_out);
  check.fp_logits = run_logits(m, check.windows);
  return check;
}

// Steps 1–2: statistics of every linear input, then smoothing, with the statistics rescaled
// analytically; `smooth_scales` records each site's largest smoothing scale.
ChannelStatsMap smoothed_channel_stats(Model& m, const std::vector<std::vector<int>>& windows,
                                       const FlattenQuantConfig& cfg, ScaleRecord& smooth_scales) {
  ChannelStatsOptions so;
  so.percentile = cfg.effective_stat() == ChannelStat::percentile ? cfg.percentile : -1;
  so.max_rows = cfg.calib.max_rows;
  ChannelStatsMap stats = collect_channel_stats(m, windows, so);
  if (cfg.smooth) {
    smooth_norm_inputs(m, stats, cfg, smooth_scales);
    if (cfg.smooth_all) smooth_output_folds(m, stats, cfg, smooth_scales);
  }
  return stats;
}

// Step 3: one flatten plan per input tensor.
std::map<int, InputPlan> flatten_plans(const ChannelStatsMap& stats, const FlattenQuantConfig& cfg) {
  std::map<int, InputPlan> plans;
  for (const auto& [key, st] : stats) plans.emplace(key, plan_input(st, cfg));
  return plans;
}

struct KlScores {
  double kl4 = -1, kl8 = -1;  // -1: not computed (bits_mode none, or kl8 of the output variant)
};

bool uses_input_kl(const FlattenQuantConfig& cfg) {
  return cfg.bits_mode != BitsMode::none && cfg.kl_mode != KlMode::output;
}

// Step 4: the KL scores behind a site's bit width, by the configured construction (§1.7).
KlScores site_kl(const LinearSite& s, const InputPlan& ip, const ChannelStats& st, const Histogram* input_hist,
                 const FlattenQuantConfig& cfg) {
  KlScores kl;
  if (input_hist) {
    kl.kl4 = kl_quantization(*input_hist, 4);
    kl.kl8 = kl_quantization(*input_hist, 8);
    if (cfg.kl_mode == KlMode::input_weight) {
      const Mat W_exp = expand_weight(s.W, ip.act.plan).leftCols(flat_width(ip.act.plan));
      std::vector<float> w(W_exp.data(), W_exp.data() + W_exp.size());
      const float r = std::max(W_exp.cwiseAbs().maxCoeff(), 1e-12f);
      kl.kl4 += kl_of_values(w, r, 4, cfg.kl_bins);
      kl.kl8 += kl_of_values(w, r, 8, cfg.kl_bins);
    }
  } else if (cfg.bits_mode != BitsMode::none) {
    FlattenQuantConfig rtn = cfg;
    rtn.gptq = false;  // the decision uses a quick RTN INT4 operator
    kl.kl4 = output_kl(s, *make_site_op(s, ip, 4, rtn), st.rows, cfg.kl_bins);
  }
  return kl;
}

// What one site's operator does, beside the operator itself: the decisions and errors a SiteRecord keeps.
struct SiteOutcome {
  int bits = 16;
  QuantizedWeight w;
  KlScores kl;
  SiteErrors errors;
  double act_err = -1;
};

// The SiteRecord of a site quantized by `out` (bits, scales, KL, errors, the plan's facts).
SiteRecord site_record(const LinearSite& s, bool norm_input, const InputPlan& ip, const ChannelStats& st,
                       const SiteOutcome& out, const ScaleRecord& smooth_scales, const FlattenQuantConfig& cfg) {
  SiteRecord rec;
  rec.layer = s.id.layer;
  rec.role = role_name(s.id.role);
  rec.w_bits = rec.a_bits = out.bits;
  rec.k_in = s.in_features();
  rec.k_flat = int(flat_width(ip.act.plan));
  rec.k_pad = int(ip.act.plan.k_out);
  if (out.bits < 16) {
    if (!cfg.w_per_channel) rec.w_scale = out.w.params.scale[0];
    if (!cfg.a_dynamic) rec.a_scale = (ip.act.range > 0 ? ip.act.range : 1.f) / float((1 << (out.bits - 1)) - 1);
  }
  rec.kl = out.kl.kl4;
  rec.clip = ip.max_range > 0 ? ip.act.range / ip.max_range : 1.0;
  rec.mse = out.errors.mse;
  rec.flops = 2.0 * double(s.out_features()) * double(s.in_features());
  rec.extra["kl8"] = out.kl.kl8;
  rec.extra["rel_err"] = out.errors.rel;
  if (out.act_err >= 0) rec.extra["act_rel_err"] = out.act_err;
  rec.extra["input"] = norm_input ? "norm" : "inner";
  rec.extra["dominance"] = ip.dominance;
  if (st.rows.size()) {  // crest factor: the per-tensor range over the RMS value (what sets the INT-b step)
    const double rms = std::sqrt(double(st.rows.squaredNorm()) / double(st.rows.size()));
    if (rms > 0) rec.extra["crest"] = double(ip.unflat_range) / rms;
  }
  rec.extra["scale_reduction"] = ip.act.range > 0 ? double(ip.unflat_range) / ip.act.range : 1.0;
  rec.extra["threshold"] = ip.threshold;
  rec.extra["range"] = ip.act.range;
  rec.extra["n_split"] = ip.n_split;
  rec.extra["op"] = s.op->describe();
  if (auto it = smooth_scales.find(site_key(s.id)); it != smooth_scales.end()) rec.extra["smooth_max_scale"] = it->second;
  return rec;
}

// Steps 4–5 on every site: bits from the KL scores, the expanded weight quantized, the operator
// installed, its SiteRecord appended. Returns each site's relative reconstruction error.
std::vector<double> quantize_flattened_sites(Model& m, const std::vector<std::vector<int>>& windows,
                                             const ChannelStatsMap& stats, const std::map<int, InputPlan>& plans,
                                             const ScaleRecord& smooth_scales, const FlattenQuantConfig& cfg,
                                             JobResult& result) {
  std::map<int, Histogram> hists;
  if (uses_input_kl(cfg)) hists = input_histograms(m, windows, plans, cfg);

  // Bits per site from the KL scores, with an RTN operator each; then GPTQ in sequence replaces
  // the quantized weights; then every site is measured and recorded as it ends up.
  std::map<int, SiteOutcome> outcomes;
  std::map<int, int> bits_of;
  FlattenQuantConfig first = cfg;
  first.real_quant = cfg.real_quant && !cfg.gptq;  // GPTQ runs on fake-quant operators
  for (LinearSite* s : m.sites()) {
    const int lead = site_key(input_leader(s->id));
    SiteOutcome& out = outcomes[site_key(s->id)];
    out.kl = site_kl(*s, plans.at(lead), stats.at(lead), uses_input_kl(cfg) ? &hists.at(lead) : nullptr, cfg);
    out.bits = bits_for(cfg, out.kl.kl4);
    bits_of[site_key(s->id)] = out.bits;
    s->op = make_site_op(*s, plans.at(lead), out.bits, first, &out.w);
  }
  if (cfg.gptq) {
    for (auto& [key, w] : gptq_expanded_weights(m, windows, bits_of, cfg, result)) outcomes.at(key).w = std::move(w);
    if (cfg.real_quant)
      for (LinearSite* s : m.sites())
        if (bits_of.at(site_key(s->id)) < 16)
          s->op = std::make_shared<FlattenQuantLinear>(dynamic_cast<const FlattenQuantLinear&>(*s->op).activation(),
                                                       outcomes.at(site_key(s->id)).w, s->b, true);
  }

  std::vector<double> rel_errors;
  for (LinearSite* s : m.sites()) {
    const int lead = site_key(input_leader(s->id));
    const InputPlan& ip = plans.at(lead);
    const ChannelStats& st = stats.at(lead);
    SiteOutcome& out = outcomes.at(site_key(s->id));
    out.errors = reconstruction_errors(*s, *s->op, st.rows);
    if (out.errors.rel >= 0) rel_errors.push_back(out.errors.rel);
    out.act_err = activation_rel_error(*s, ip, out.bits, st.rows);
    result.sites.push_back(site_record(*s, m.norm_before(s->id) != nullptr, ip, st, out, smooth_scales, cfg));
  }
  return rel_errors;
}

// The job's metrics once every site is quantized: shares of INT4, flatten ratios, errors, bytes, split channels.
void add_flattenquant_summary(const Model& m, const FlattenQuantConfig& cfg, const std::vector<std::vector<int>>& windows,
                              const std::map<int, InputPlan>& plans, const std::vector<double>& rel_errors,
                              JobResult& result) {
  long calib_tokens = 0;
  for (const auto& w : windows) calib_tokens += long(w.size());
  add_job_metrics(m, cfg, rel_errors, calib_tokens, result);
  add_group_metrics(result);
  double split = 0, channels = 0;
  for (const auto& [key, ip] : plans) split += ip.n_split, channels += double(ip.act.plan.k_in);
  result.add("split_channels", channels ? 100.0 * split / channels : 0, "%");
}

void add_flattenquant_info(const FlattenQuantConfig& cfg, const Tokenizer* tok, JobResult& result) {
  result.info["recipe"] = describe_config(cfg);
  result.info["calib_dataset"] = tok ? cfg.calib.dataset : "random tokens";
  result.info["kv_bits"] = cfg.kv_bits;
  result.info["stat"] = cfg.suppress ? (cfg.stat == ChannelStat::max ? "max" : cfg.stat == ChannelStat::percentile ? "percentile" : "seq_mean_max") : "max";
}

}  // namespace

void run_flattenquant(Model& m, const FlattenQuantConfig& cfg, const Tokenizer* tok,
                      const std::filesystem::path& data_dir, JobResult& result) {
  if (m.cfg.n_heads % m.cfg.n_kv_heads != 0)
    throw std::invalid_argument("flattenquant: n_heads must be a multiple of n_kv_heads");
  const auto windows = calibration_windows(m, tok, data_dir, cfg.calib);
  const LogitCheck check = fp_logit_check(m, cfg, tok, data_dir);

  ScaleRecord smooth_scales;
  const ChannelStatsMap stats = smoothed_channel_stats(m, windows, cfg, smooth_scales);
  const std::map<int, InputPlan> plans = flatten_plans(stats, cfg);
  const std::vector<double> rel_errors = quantize_flattened_sites(m, windows, stats, plans, smooth_scales, cfg, result);
  install_kv_quant(m, cfg.kv_bits);

  add_flattenquant_summary(m, cfg, windows, plans, rel_errors, result);
  if (!check.windows.empty()) add_logit_metrics(check.fp_logits, run_logits(m, check.windows), result);
  add_flattenquant_info(cfg, tok, result);
}

}  // namespace fb

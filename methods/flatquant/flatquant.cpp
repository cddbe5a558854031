// flatquant: FlatQuant (Sun et al., ICML 2025; docs/methods.md §2) on LLaMA-style models —
// learnable Kronecker affine transforms with per-channel scaling, learnable weight and
// activation clipping, per-head K/V/O transforms, calibrated block by block in C++
// (block.h / calibrate.h), then merged and deployed as fused transform+quantize operators
// (deploy.h). Defaults are the official W4A4KV4 scripts' settings; the calibration set is
// WikiText-2 validation (the raw train split the official code uses is not available here).
#include "core/blas_threads.h"
#include "methods/common/calibration.h"
#include "methods/common/recipe.h"
#include "methods/flatquant/calibrate.h"
#include "methods/flatquant/deploy.h"
#include "methods/method.h"

#include <fmt/format.h>

#include <chrono>
#include <utility>
#include <memory>
#include <optional>
#include <random>

namespace fb {
namespace {

using namespace flatquant;

ParamSchema flatquant_schema() {
  using T = ParamType;
  ParamSchema schema = {
      {"w_bits", T::Int, 4, "weight bits (per output channel, after calibration by w_quantizer; 16 = float)", {}, {}, bit_width()},
      {"a_bits", T::Int, 4, "linear-input bits (per token, dynamic; 16 = float)", {}, {}, bit_width()},
      {"k_bits", T::Int, 4, "K-cache bits (per token per head, after RoPE and P_k)", {}, {}, bit_width()},
      {"v_bits", T::Int, 4, "V-cache bits (per token per head, after P_v)", {}, {}, bit_width()},
      {"q_bits", T::Int, 16, "query bits (official default 16: queries stay in float)", {}, {}, bit_width()},
      {"w_asym", T::Bool, false, "asymmetric weight grid"},
      {"a_asym", T::Bool, false, "asymmetric activation grid"},
      {"k_asym", T::Bool, true, "asymmetric K-cache grid (official scripts: on)"},
      {"v_asym", T::Bool, true, "asymmetric V-cache grid (official scripts: on)"},
      {"epochs", T::Int, 15, "calibration epochs per block (official 15)", {}, {}, at_least(0)},
      {"nsamples", T::Int, 128, "calibration windows (official 128)", {}, {}, at_least(1)},
      {"seqlen", T::Int, 2048, "tokens per calibration window (official 2048; must fit the model context)", {}, {}, at_least(2)},
      {"cali_bsz", T::Int, 4, "windows per optimisation step (official 4)", {}, {}, at_least(1)},
      {"cali_dataset", T::String, "wikitext2-valid", "calibration corpus: wikitext2-valid (the official uses WikiText-2 "
       "train, not in the data here), tinystories (in-domain for TinyStories models), or a path under the data dir", {},
       ParamRole::corpus, {}},
      {"flat_lr", T::Float, 5e-3, "learning rate of transforms, σ and d (clipping logits: 10×)", {}, {}, between(0, 10)},
      {"weight_decay", T::Float, 0.01, "AdamW weight decay on every parameter (torch default, as the official code)", {}, {}, between(0, 10)},
      {"loss_normalise", T::Bool, true, "back-propagate loss / loss.detach() as the official code"},
      {"warmup", T::Bool, false, "linear warm-up 0.01 → 1 over the first 16 steps"},
      {"cali_trans", T::Bool, true, "learn the transforms (false: random orthogonal, fixed)"},
      {"cali_dtype", T::String, "fp32", "calibration arithmetic: fp32 activations and gradients (parameters, weight path and "
       "AdamW in float64), or fp64 throughout (the reference; several times slower)", {"fp32", "fp64"}},
      {"add_diag", T::Bool, true, "per-channel scaling d before each Kronecker transform"},
      {"lwc", T::Bool, true, "learnable weight clipping (per output row)"},
      {"lac", T::Bool, true, "learnable activation clipping (one pair per quantizer)"},
      {"diag_init", T::String, "sq_style", "initial d: SmoothQuant-shaped or ones", {"sq_style", "one_style"}},
      {"diag_alpha", T::Float, 0.3, "α of the sq_style initialisation", {}, {}, between(0, 1)},
      {"direct_inv", T::Bool, false, "learn factors directly, inverse in double (instead of SVD form)"},
      {"real_quant", T::Bool, false, "integer-GEMM operators (packed int4/int8) instead of fake-quant"},
  };
  // w_quantizer: gptq runs the official order (main.py → gptq_utils.gptq_fwrd): transforms merged
  // first, then GPTQ on the merged weights over the calibration windows, each stage's Hessian
  // from the transformed, quantized inputs of the model quantized so far.
  for (ParamSpec spec : gptq_param_schema()) schema.push_back(std::move(spec));
  return schema;
}

QuantSettings settings_from(const json& p) {
  QuantSettings s;
  s.w = {param_int(p, "w_bits"), !param_bool(p, "w_asym")};
  s.a = {param_int(p, "a_bits"), !param_bool(p, "a_asym")};
  s.q = {param_int(p, "q_bits"), true};
  s.k = {param_int(p, "k_bits"), !param_bool(p, "k_asym")};
  s.v = {param_int(p, "v_bits"), !param_bool(p, "v_asym")};
  for (const flatquant::QuantSpec* q : {&s.w, &s.a, &s.q, &s.k, &s.v})
    if (q->bits < 2 || (q->bits > 8 && q->bits != 16))
      throw std::invalid_argument(fmt::format("flatquant: bits must be 2..8 or 16, got {}", q->bits));
  s.lwc = param_bool(p, "lwc");
  s.lac = param_bool(p, "lac");
  s.add_diag = param_bool(p, "add_diag");
  s.direct_inv = param_bool(p, "direct_inv");
  return s;
}

CalibOptions options_from(const json& p) {
  CalibOptions o;
  o.epochs = param_int(p, "epochs");
  o.batch = param_int(p, "cali_bsz");
  o.lr = param_float(p, "flat_lr");
  o.weight_decay = param_float(p, "weight_decay");
  o.loss_normalise = param_bool(p, "loss_normalise");
  o.warmup = param_bool(p, "warmup");
  o.train_transforms = param_bool(p, "cali_trans");
  o.fp32 = param_string(p, "cali_dtype") == "fp32";
  return o;
}

MatD embed(const Model& m, const std::vector<std::vector<int>>& windows) {
  const long T = static_cast<long>(windows.front().size());
  MatD x(static_cast<long>(windows.size()) * T, m.cfg.dim);
  for (size_t w = 0; w < windows.size(); ++w)
    for (long t = 0; t < T; ++t) x.row(w * T + t) = m.tok_embedding.row(windows[w][t]).cast<double>();
  return x;
}

double sigmoid_mean(const Param& p) {
  if (!p.v.size()) return 1.0;
  return p.v.unaryExpr([](double a) { return sigmoid(a); }).mean();
}

void record_sites(const Model& m, int l, const BlockParams& p, const QuantSettings& s, JobResult& r) {
  const Block& b = m.blocks[l];
  const std::pair<const LinearSite*, const LinearClip*> sites[] = {{&b.q, &p.q},       {&b.k, &p.k},   {&b.v, &p.v},
                                                                   {&b.o, &p.o},       {&b.gate, &p.gate},
                                                                   {&b.up, &p.up},     {&b.down, &p.dn}};
  for (auto [site, clip] : sites) {
    auto* op = dynamic_cast<const FlatQuantLinear*>(site->op.get());
    SiteRecord rec;
    rec.layer = l;
    rec.role = role_name(site->id.role);
    rec.w_bits = s.w.bits, rec.a_bits = s.a.bits;
    rec.k_in = rec.k_flat = rec.k_pad = site->in_features();
    rec.flops = 2.0 * site->out_features() * site->in_features();
    rec.clip = sigmoid_mean(clip->wmax);
    if (op) rec.mse = (op->weight() - site->W).squaredNorm() / site->W.size();
    const bool heads = site->id.role == Role::o;
    const int K = site->in_features();
    auto [n1, n2] = heads ? std::pair{m.cfg.n_heads, m.cfg.head_dim()} : decompose_dim(K);
    rec.extra = {{"transform", heads ? "heads (P_o ⊗ I)" : "kron"},
                 {"n1", n1},
                 {"n2", n2},
                 {"lwc_hi_mean", sigmoid_mean(clip->wmax)},
                 {"lwc_lo_mean", sigmoid_mean(clip->wmin)},
                 {"lac_hi", clip->amax.v.size() ? sigmoid(clip->amax.v(0, 0)) : 1.0},
                 {"lac_lo", clip->amin.v.size() ? sigmoid(clip->amin.v(0, 0)) : 1.0}};
    if (op) rec.extra["op"] = op->describe();
    rec.extra["w_quantizer"] = "rtn";  // gptq_merged_weights says so when GPTQ replaces it
    r.sites.push_back(std::move(rec));
  }
}

// GPTQ on the deployed sites' merged weights (site.W), in GPTQ's sequence over the calibration
// windows; each quantized weight replaces the RTN one in its FlatQuantLinear. The site records
// say which quantizer made the weights.
void gptq_merged_weights(Model& m, const std::vector<std::vector<int>>& windows, const QuantSettings& s,
                         const GptqOptions& opt, bool real_quant, MethodContext& ctx, JobResult& r) {
  if (!s.w.enabled()) throw std::invalid_argument("flatquant: w_quantizer: gptq needs w_bits < 16");
  ctx.progress.message(fmt::format("flatquant gptq: {} layers on {} windows", m.cfg.n_layers, windows.size()));
  const auto t0 = std::chrono::steady_clock::now();
  const fb::QuantSpec spec = to_common_spec(s.w, true);
  const QuantizedWeights weights = gptq_in_sequence(
      m, windows, [&](const LinearSite& site) { return std::optional<GptqTarget>(GptqTarget{site.W, spec}); }, opt,
      // Fake-quant operators while GPTQ runs, whatever real_quant says: the Hessians, and so the
      // weights, must not depend on the GEMM kernel the operator deploys with.
      [](const LinearSite& site, const QuantizedWeight& w) -> std::shared_ptr<const LinearOp> {
        auto* op = dynamic_cast<const FlatQuantLinear*>(site.op.get());
        if (!op) throw std::logic_error("flatquant gptq: a site without its FlatQuantLinear");
        return op->with_weight(w, false);
      },
      &r);
  if (real_quant)
    for (LinearSite* site : m.sites())
      site->op = dynamic_cast<const FlatQuantLinear&>(*site->op).with_weight(weights.at(site_key(site->id)), true);
  r.add("gptq_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), "s");
  for (const LinearSite* site : std::as_const(m).sites())
    for (SiteRecord& rec : r.sites)
      if (rec.layer == site->id.layer && rec.role == role_name(site->id.role)) {
        auto* op = dynamic_cast<const FlatQuantLinear*>(site->op.get());
        if (op) rec.mse = (op->weight() - site->W).squaredNorm() / double(site->W.size());
        if (op) rec.extra["op"] = op->describe();
        rec.extra["w_quantizer"] = "gptq";
      }
}

void apply_flatquant(Model& m, MethodContext& ctx, JobResult& r) {
  if (m.cfg.arch != Arch::llama)
    throw std::invalid_argument("flatquant: only LLaMA-style models are supported (the official code has no OPT path)");
  // Its calibration block (block.cpp) has no linear biases and derives RoPE from rope_theta:
  // refuse checkpoints it would calibrate against a different function.
  for (const LinearSite* site : std::as_const(m).sites())
    if (site->b.size())
      throw std::invalid_argument(fmt::format("flatquant: layer {} {} has a bias (attention_bias / mlp_bias / Qwen2), "
                                              "which its calibration block does not model",
                                              site->id.layer, role_name(site->id.role)));
  if (!m.cfg.rope_inv_freq.empty())
    throw std::invalid_argument("flatquant: the checkpoint's rope_scaling rescales RoPE, which its calibration block does not model");
  const json& p = ctx.params;
  const QuantSettings s = settings_from(p);
  const CalibOptions opt = options_from(p);
  DeployOptions dep;
  dep.real_quant = param_bool(p, "real_quant");
  const BlockShape shape = block_shape_of(m.cfg);
  const int seqlen = param_int(p, "seqlen");
  if (seqlen > m.cfg.max_seq_len)
    throw std::invalid_argument(fmt::format("flatquant: seqlen {} exceeds the model context {} (set params.seqlen)",
                                            seqlen, m.cfg.max_seq_len));
  if (m.cfg.max_exact_window > 0 && seqlen > m.cfg.max_exact_window)
    throw std::invalid_argument(fmt::format("flatquant: seqlen {} exceeds {}, the longest window computed exactly: {}",
                                            seqlen, m.cfg.max_exact_window, m.cfg.max_exact_window_reason));
  CalibConfig cc;
  cc.dataset = param_string(p, "cali_dataset");
  cc.samples = param_int(p, "nsamples");
  cc.seqlen = seqlen;
  cc.seed = ctx.seed;
  const auto windows = calibration_windows(m, ctx.tokenizer, ctx.data_dir, cc);
  const int T = static_cast<int>(windows.front().size());
  MatD x = embed(m, windows);
  r.info["flatquant_calibration"] = fmt::format("{} windows × {} tokens of {}, seed {}", windows.size(), T,
                                                ctx.tokenizer ? cc.dataset : "random tokens", ctx.seed);
  // Which text calibrated, beside the official choice: its WikiText-2 train split is not in the data here.
  r.info["calibration_split"] =
      !ctx.tokenizer                    ? "random tokens (the model has no tokenizer)"
      : cc.dataset == "wikitext2-valid" ? "WikiText-2 validation (the official code calibrates on WikiText-2 train)"
      : cc.dataset == "tinystories"     ? "TinyStories validation excerpt (in-domain text for TinyStories models)"
      : cc.dataset == "wikitext2"       ? "WikiText-2 test: the PPL evaluation's own text (calibrating on it flatters PPL)"
                                        : cc.dataset;
  r.info["calibration_dtype"] = opt.fp32 ? "fp32 activations and gradients, float64 parameters" : "float64";

  std::mt19937_64 rng(ctx.seed);
  FlatQuantAttentionHook hook;
  Metric seconds, losses;
  seconds.name = "calib_seconds_per_block", seconds.unit = "s";
  losses.name = "calib_loss", losses.unit = "mse";
  long trainable = 0;
  double total_seconds = 0;
  // The block loop threads itself (OpenMP over windows and heads): OpenBLAS threads on top
  // oversubscribe the cores (the full-precision block forward spent 8.8 s instead of 6.1 s on
  // 2 cores at 1 epoch), and one BLAS thread makes its targets independent of the core count.
  // GPTQ below runs whole-model forwards that do not, so it keeps the BLAS threads.
  std::optional<BlasThreadsFor> single_blas(std::in_place, 1);
  ctx.progress.begin("flatquant calibration", m.cfg.n_layers);
  for (int l = 0; l < m.cfg.n_layers; ++l) {
    const FpBlock fp = fp_block_of(m.blocks[l]);
    InputStats stats;
    MatD y = fp_block_forward(shape, fp, x, T, &stats);  // the next block's input (pitfall 11)
    BlockParams params = init_block_params(shape, fp, stats, s, param_string(p, "diag_init") == "sq_style",
                                           param_float(p, "diag_alpha"), rng);
    BlockCalibReport rep;
    if (opt.epochs > 0) {
      rep = calibrate_block(shape, fp, x, y, T, params, s, opt);
    } else {
      rep.init_mse = rep.final_mse = evaluate_block(shape, fp, x, y, T, opt.batch, params, s, opt.fp32);
      rep.n_params = params.count();
    }
    deploy_block(m, l, shape, merge_block(shape, fp, params, s), params, s, dep, hook);
    record_sites(m, l, params, s, r);
    r.add(fmt::format("calib_loss_block{}", l), rep.final_mse, "mse");
    r.add(fmt::format("calib_init_loss_block{}", l), rep.init_mse, "mse");
    r.add(fmt::format("calib_seconds_block{}", l), rep.seconds, "s");
    seconds.samples.push_back(rep.seconds);
    losses.samples.push_back(rep.final_mse);
    total_seconds += rep.seconds;
    trainable += rep.n_params;
    ctx.progress.message(fmt::format("flatquant layer {}: mse {:.4g} → {:.4g} in {:.1f} s ({} params)", l,
                                     rep.init_mse, rep.final_mse, rep.seconds, rep.n_params));
    x = std::move(y);
    ctx.progress.step(l + 1);
  }
  ctx.progress.end();
  single_blas.reset();
  if (param_string(p, "w_quantizer") == "gptq") gptq_merged_weights(m, windows, s, gptq_options_from(p), dep.real_quant, ctx, r);
  if (s.k_transform() || s.q.enabled() || s.k.enabled() || s.v.enabled()) {
    // Per-head transforms and fake quantization of the matrices it is given: a pure function.
    AttentionOpHook deployed{std::make_shared<FlatQuantAttentionHook>(std::move(hook))};
    m.attention_hook = chain_attention_hooks(std::move(m.attention_hook), std::move(deployed), true);
  }
  for (Metric* mt : {&seconds, &losses}) {
    Summary sm = summarise(mt->samples);
    mt->value = sm.mean, mt->stddev = sm.stddev, mt->n = static_cast<int>(mt->samples.size());
    r.metrics.push_back(*mt);
  }
  r.add("calib_seconds_total", total_seconds, "s");
  const long online = online_transform_scalars(shape, s) * m.cfg.n_layers;
  r.add("transform_params", static_cast<double>(online));
  r.add("transform_bytes", static_cast<double>(online) * sizeof(float), "bytes");
  r.add("trainable_params", static_cast<double>(trainable));
}

}  // namespace

FB_REGISTER_METHOD(MethodInfo{"flatquant",
                              "FlatQuant: learned Kronecker affine transforms + per-channel scaling + learnable "
                              "weight/activation clipping, block-wise calibration in C++ (default W4A4KV4)",
                              flatquant_schema(), apply_flatquant});

}  // namespace fb

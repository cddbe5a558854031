// flattenquant: FlattenQuant (Zhang et al., LREC-COLING 2024, arXiv 2402.17985; docs/methods.md §1).
// Pipeline (docs/methods.md §1.8): channel statistics at every linear input → channel smoothing (α) folded into
// the norms (and optionally into v_proj / fc1 / up rows) → per input tensor a flatten plan with
// threshold β → per linear INT4 or INT8 by the KL criterion with threshold γ → per-tensor
// quantization of the flattened activation (static scale) and of the expanded weight (RTN or
// GPTQ) → a FlattenQuantLinear on the site. Every reconstructed choice is a parameter.
#include "methods/flattenquant/pipeline.h"

#include "methods/common/recipe.h"
#include "methods/method.h"

#include <optional>
#include <set>
#include <string>

namespace fb {
namespace {

// FlattenQuant's form of a shared recipe parameter (methods/common/recipe.cpp), or nullopt for
// those it does not take: bits come from the KL choice, activations are per-tensor and symmetric,
// weights symmetric at full range.
std::optional<ParamSpec> flattenquant_variant(ParamSpec spec) {
  static const std::set<std::string> kept = {
      "w_granularity", "w_quantizer",   "w_mse",         "gptq_block",   "gptq_damp",  "gptq_act_order",
      "kv_bits",       "real_quant",    "calib_dataset", "calib_samples", "calib_seqlen", "calib_rows"};
  if (!kept.count(spec.name)) return std::nullopt;
  if (spec.name == "w_granularity") {
    spec.default_value = "per_tensor";
    spec.choices = {"per_tensor", "per_channel"};
    spec.help = "weight scales: one per tensor (paper title) or per output row";
  } else if (spec.name == "w_quantizer") {
    spec.default_value = "gptq";
    spec.help = "weights of the expanded matrices: GPTQ (Hessian of the flattened inputs; the paper reportedly uses GPTQ) or RTN";
  } else if (spec.name == "w_mse") {
    spec.help = "MSE clip search for the weight scale (RTN and GPTQ)";
  } else if (spec.name == "kv_bits") {
    spec.help = "KV-cache bits (16: FlattenQuant leaves the KV cache in fp16)";
  } else if (spec.name == "real_quant") {
    spec.help = "integer GEMMs (INT8×INT8 / INT8×INT4 packed) instead of fake-quant";
  }
  return spec;
}

ParamSchema flattenquant_schema() {
  using T = ParamType;
  ParamSchema schema = {
      {"beta", T::Float, 0.5,
       "flatten threshold T = beta·max_k m_k (beta ≥ 1: no flattening; with beta_ref median, T = beta·median). "
       "The paper's value is unknown; 0.5 is the first non-trivial point of the methods.md §7 sweep", {}, {}, at_least(0)},
      {"beta_ref", T::String, "max", "what beta scales: the tensor's largest channel magnitude or the median one",
       {"max", "median"}},
      {"split", T::String, "equal",
       "how a split channel's n copies divide it: equal (paper: n identical copies x/n, which round alike, so the "
       "channel keeps its old rounding error) or staggered (copy i also carries (i − (n−1)/2)/n quantization steps; "
       "the codes then sum to x's code at the finer step). Not in the paper: a flatbench extension",
       {"equal", "staggered"}},
      {"pad_to", T::Int, 32, "flattened channel count padded to a multiple of this (32: INT4 tensor-core tile, paper)", {}, {}, at_least(1)},
      {"bits_mode", T::String, "kl",
       "per-layer bits: kl (INT4 iff KL4 ≤ gamma, paper), int8 / int4 (all layers), none (flatten in float, no quantization)",
       {"kl", "int8", "int4", "none"}},
      {"gamma", T::Float, 0.05,
       "KL threshold γ (INT4 iff KL4 ≤ γ; < 0: all INT8; ≥ 1e30: all INT4). Paper value unknown; 0.05 sits inside the "
       "§7 log grid 1e-3…1"},
      {"kl_mode", T::String, "abs",
       "KL construction (§1.7): abs = |x| histogram, 8 INT4 levels (default); signed = x on [−R, R], 16 levels; "
       "input_weight = abs KL of the input plus that of the expanded weight; output = layer output FP vs INT4",
       {"abs", "signed", "input_weight", "output"}},
      {"kl_bins", T::Int, 2048, "histogram bins on [0, R] (TensorRT entropy calibration uses 2048)", {}, {}, at_least(16)},
      {"smooth", T::Bool, true, "channel smoothing before flatten (Table 7/9 ablation; the paper reports it helps)"},
      {"alpha", T::Float, 0.5, "smoothing migration strength α (0.5: SmoothQuant's OPT value, methods.md §7)", {}, {}, between(0, 1)},
      {"smooth_sites", T::String, "norms",
       "norms: q/k/v and fc1 (LLaMA gate/up), folded into the norms (§7 default); all: also fold into v_proj rows "
       "(o_proj input) and fc1 / up rows (fc2 / down input)",
       {"norms", "all"}},
      {"suppress", T::Bool, true,
       "outlier suppression (Table 7/9 ablation): robust channel statistic `stat` and runtime clipping of each channel "
       "to the plan's range; off = plain max statistic, no clipping"},
      {"stat", T::String, "percentile", "channel statistic when suppress is on (§1.3)", {"max", "percentile", "seq_mean_max"}},
      {"percentile", T::Float, 99.99, "p for stat = percentile (§1.3 default 99.99): per channel, the p-th percentile of |x| over the n "
       "calibration tokens interpolated as numpy/torch.quantile do (ascending position (n − 1)·p/100), so it stays "
       "below the maximum even when n·(1 − p/100) < 1 (the default 32 × 256 = 8,192 tokens)", {}, {}, between(50, 100)},
      {"a_dynamic", T::Bool, false, "per-call abs-max activation scale (O2) instead of the static calibrated one (O3, paper)"},
      {"check_windows", T::Int, 2, "held-out windows on which the logits are compared against the fp model (0: skip)", {}, {}, at_least(0)},
  };
  for (const ParamSpec& shared : quant_param_schema())
    if (std::optional<ParamSpec> spec = flattenquant_variant(shared)) schema.push_back(std::move(*spec));
  return schema;
}

void apply_flattenquant(Model& m, MethodContext& ctx, JobResult& result) {
  const FlattenQuantConfig cfg = flattenquant_config_from(ctx.params, ctx.seed);
  run_flattenquant(m, cfg, ctx.tokenizer, ctx.data_dir, result);
}

}  // namespace

FB_REGISTER_METHOD(MethodInfo{"flattenquant",
                              "FlattenQuant: smoothing + channel flatten (β) + per-tensor INT4/INT8 by KL (γ), "
                              "static activation scales, RTN/GPTQ on the expanded weights",
                              flattenquant_schema(), apply_flattenquant});

}  // namespace fb

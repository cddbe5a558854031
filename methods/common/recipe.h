// The quantization recipe shared by rtn and smoothquant (and reusable by other methods): which
// quantizers each linear gets, which weight quantizer (RTN or GPTQ), KV bits, fake or real
// operators, and the calibration set. quantize_sites() turns it into installed operators plus
// one SiteRecord per site.
#pragma once

#include "core/params.h"
#include "core/results.h"
#include "kernels/quant.h"
#include "methods/common/calibration.h"
#include "methods/common/gptq.h"
#include "models/model.h"

#include <functional>
#include <map>
#include <optional>
#include <string>

namespace fb {

struct MethodContext;

struct QuantRecipe {
  QuantSpec w;             // w.bits 16: weights stay in floating point
  QuantSpec a;             // a.bits 16: activations stay in floating point
  bool a_static = false;   // per-tensor static activation scale from calibration
  bool w_mse = false;      // MSE clip search for weight scales
  bool use_gptq = false;   // w_quantizer = gptq
  GptqOptions gptq;
  int kv_bits = 16;
  bool real_quant = false; // integer-GEMM operators instead of fake-quant
  CalibConfig calib;

  bool quantizes_anything() const { return w.enabled() || a.enabled() || kv_bits < 16; }
  bool quantizes_linears() const { return w.enabled() || a.enabled(); }
  std::string describe() const;  // e.g. "W4 per_channel gptq / A8 per_token / KV16 fake"
};

// GPTQ's parameters (w_quantizer, gptq_block, gptq_damp, gptq_act_order), for every method offering it.
ParamSchema gptq_param_schema();
// The rtn parameter schema (w_bits, a_bits, granularities, clips, GPTQ, KV, real_quant, calibration).
ParamSchema quant_param_schema();
// Reads a filled parameter object of that schema; throws std::invalid_argument on bad combinations.
QuantRecipe recipe_from_params(const json& params, uint64_t seed);
// The GPTQ options of a filled parameter object of gptq_param_schema() (and w_mse when it has one).
GptqOptions gptq_options_from(const json& params);

// Weights already quantized by a calibration-driven quantizer (GPTQ), keyed by site_key.
using QuantizedWeights = std::map<int, QuantizedWeight>;

// What GPTQ quantizes at a site: the weight its GEMM multiplies (site.W, or FlattenQuant's
// expanded one) at the spec it is stored at; none leaves the site as it is (kept in float).
struct GptqTarget {
  Mat W;
  QuantSpec spec;
};
using GptqTargetOf = std::function<std::optional<GptqTarget>(const LinearSite&)>;
// The operator a site gets once GPTQ has quantized its weight (`site.op` is the one before).
using GptqInstall = std::function<std::shared_ptr<const LinearOp>(const LinearSite&, const QuantizedWeight&)>;

// GPTQ in GPTQ's sequential order (per layer: k/v/q → o → up/gate (fc1) → down (fc2)): each
// stage's Hessians come from the model whose earlier stages are already quantized, over the rows
// each operator's GEMM multiplies (LinearOp::hessian_rows), and each quantized weight is
// installed by `install` before the next stage runs. Returns the weights by site_key.
QuantizedWeights gptq_in_sequence(Model& m, const std::vector<std::vector<int>>& windows, const GptqTargetOf& target,
                                  const GptqOptions& opt, const GptqInstall& install, JobResult* result = nullptr);

// The recipe's GPTQ: gptq_in_sequence with weight-only operators (float inputs, as the GPTQ repo),
// which quantize_sites() then replaces.
QuantizedWeights gptq_quantize_model(Model& m, const std::vector<std::vector<int>>& windows, const QuantRecipe& r,
                                     JobResult* result = nullptr);

// Installs an operator on every linear site and appends its SiteRecord (reconstruction MSE on
// the sampled calibration rows of `stats`, static ranges from them). Weights in `pre` are used
// as given; the others are quantized by RTN.
void quantize_sites(Model& m, const QuantRecipe& r, const SiteStatsMap& stats, const QuantizedWeights& pre,
                    JobResult& result);

// The whole recipe: calibration (when anything needs it), GPTQ, operators, KV quantization,
// summary metrics. `stats` may hold statistics already collected (smoothquant passes the
// smoothed ones); when empty and needed they are collected here.
void apply_recipe(Model& m, MethodContext& ctx, const QuantRecipe& r, JobResult& result, SiteStatsMap stats = {},
                  std::vector<std::vector<int>> windows = {});

// One record per site with no quantization (fp16 method): bits 16 and FLOPs.
void record_unquantized_sites(const Model& m, JobResult& result);

}  // namespace fb

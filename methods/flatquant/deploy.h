// FlatQuant after calibration (official reparameterize_model + rtn_fwrd, docs/methods.md §2.8):
// the factors are materialised, the inverse transforms, per-channel scales and learned
// weight clipping are merged into the weights offline in double, d is folded into the
// RMSNorm gains (q/k/v, up/gate) and into W_up's rows (down), and every linear site gets a
// FlatQuantLinear: online Kronecker transform + per-token quantization with the learned
// LAC ratios, then the GEMM with the quantized transformed weight. The K/V transform and
// cache quantizers run in the model's attention hook.
#pragma once

#include "kernels/gemm_s8.h"
#include "kernels/lac.h"
#include "kernels/quant.h"
#include "methods/common/quant_linear.h"
#include "methods/flatquant/block.h"
#include "models/model.h"

#include <memory>
#include <string>
#include <vector>

namespace fb::flatquant {

using MatF = MatX<float>;

// LAC at inference: one (hi, lo) ratio pair, σ of the learned logits (1, 1 without LAC).
using fb::ClipRatios;

// Per-token (per-group) dynamic quantization with LAC ratios, as the deployed kernel does it:
// codes (int8 storage, grid convention of kernels/quant.h) and one scale/zero per group.
struct TokenCodes {
  std::vector<int8_t> codes;
  std::vector<float> scale, zero;
};
TokenCodes quantize_groups(const Mat& x, int group, const fb::QuantSpec& spec, ClipRatios clip);
// Fake-quant in place (x̂ = s·(q − z)).
void fake_quantize_groups(Mat& x, int group, const fb::QuantSpec& spec, ClipRatios clip);

// The fused deployed operator of one site: y = Q_a(x·(L⊗R)) · Ŵᵀ + b.
class FlatQuantLinear : public LinearOp {
 public:
  // w is the merged (transformed, clipped) float weight; it is quantized per output row by
  // RTN when w_spec is enabled, else kept in float. right may be empty (identity of size
  // K / left.rows()). `a` with bits ≥ 16 leaves the transformed input in float. real_quant:
  // integer GEMM on packed codes (needs symmetric ≤8-bit weights and activations).
  // holds_transform: the factors are this operator's to store (false when a sibling site with
  // the same input, e.g. k and v after q, shares them and counts them in its footprint).
  FlatQuantLinear(MatF left, MatF right, fb::QuantSpec a, ClipRatios clip, const Mat& w, fb::QuantSpec w_spec,
                  Vec bias, bool real_quant, bool holds_transform = true);
  void forward(const Mat& x, Mat& y) const override;
  std::string describe() const override;
  std::optional<LinearPlan> plan() const override;  // none with real_quant (its GEMM is integer)
  // Weight codes at w_bits (packed int4 / int8 bytes when real_quant), per-row scales, and the
  // transform factors, LAC ratios and bias as floating-point parameters.
  OpFootprint footprint() const override;

  Mat transform(const Mat& x) const;  // x·(L⊗R)
  // Q_a(x·(L⊗R)): what the GEMM multiplies, the rows of GPTQ's Hessian (official gptq_fwrd).
  Mat hessian_rows(const Mat& x) const override;
  // The same transform and quantizers with `w` (quantized at w_bits, e.g. by GPTQ, from this
  // site's merged weight), as an integer-GEMM operator or a fake-quant one.
  std::shared_ptr<const FlatQuantLinear> with_weight(QuantizedWeight w, bool real_quant) const;
  const Mat& weight() const { return w_hat_; }  // the weight the GEMM uses (dequantized)
  bool real_quant() const { return real_; }

 private:
  void check_shapes(long K);           // completes an omitted right factor; refuses what cannot run
  void set_weight(QuantizedWeight w);  // codes, the dequantized weight and (real_quant) the packed GEMM operand
  MatF left_, right_;
  fb::QuantSpec a_, w_spec_;
  ClipRatios clip_;
  QuantizedWeight w_;  // codes and scales (empty when the weight stays in float)
  Mat w_hat_;
  Vec bias_;
  bool real_ = false;
  bool holds_transform_ = true;
  long transform_values_ = 0;  // scalars of the factors as given (an implied identity right factor holds none)
  PackedWeights packed_;
};

// Per-layer state of the attention hook: q ← q·P_k⁻ᵀ, k ← Q_k(k·P_k), v ← Q_v(v) per head.
struct KvLayer {
  MatF pk, pk_inv_t;  // empty: no K transform
  fb::QuantSpec q, k, v;
  ClipRatios q_clip, k_clip, v_clip;
};
struct FlatQuantAttentionHook final : public AttentionOp {
  std::vector<KvLayer> layers;
  int head_dim = 0;
  void apply(int layer, Mat& q, Mat& k, Mat& v) const override;
  std::optional<AttentionPlan> plan(int layer) const override;
  // K and V codes at their own bits (k_bits and v_bits may differ) with a scale (+ zero point when
  // asymmetric) per token per kv head each, and P_k, P_k⁻ᵀ as floating-point parameters.
  KvFootprint kv_footprint(const ModelConfig& cfg, const KvFootprint& before) const override;
};

struct DeployOptions {
  bool real_quant = false;
};

// Transformed, clipped weights of one block before weight quantization (float64 math, then
// cast), with the norm gains after folding d. Also used by tests (T-5).
struct MergedBlock {
  Mat wq, wk, wv, wo, wgate, wup, wdown;
  Vec attn_gamma, mlp_gamma;
};
MergedBlock merge_block(const BlockShape& shape, const FpBlock& fp, BlockParams& params, const QuantSettings& s);

// Installs the merged weights, operators (weights quantized by RTN) and the K/V hook state
// of layer `l`. With s.quantize false every quantizer is off but the transforms stay (T-5).
void deploy_block(Model& m, int l, const BlockShape& shape, const MergedBlock& merged, BlockParams& params,
                  const QuantSettings& s, const DeployOptions& opt, FlatQuantAttentionHook& hook);

// Sizes of the online transforms of one deployed block (for results): scalars held.
long online_transform_scalars(const BlockShape& shape, const QuantSettings& s);

fb::QuantSpec to_common_spec(const QuantSpec& s, bool weight);

}  // namespace fb::flatquant

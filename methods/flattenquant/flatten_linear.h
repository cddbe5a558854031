// The deployed FlattenQuant linear (docs/methods.md §1.8 step 6): per call,
//   [clip each channel to the plan's range] → gather + scale (flatten) → per-tensor quantize
//   → GEMM with the expanded weight W' (N × K'') → dequantize (s_x · s_w) + bias.
// The gather + scale + quantize step is kernels/fused_quant.h's flatten_quantize, so the
// fake-quant and real-quant forms consume the very same activation codes:
//   fake: y = (s_x·Q) · Ŵ'ᵀ + b                  (float GEMM on dequantized values)
//   real: y = s_x · s_w · (Q · C_wᵀ)_int32 + b   (INT8×INT8 or INT8×INT4 integer GEMM)
// and agree up to float rounding. With activations left in float (bits 16) the operator is the
// exact float identity X'·W'ᵀ = X·Wᵀ (the flatten-exactness check).
#pragma once

#include "kernels/fused_quant.h"
#include "kernels/gemm_s8.h"
#include "methods/common/memory.h"
#include "methods/common/quant_linear.h"
#include "models/model.h"

#include <memory>
#include <string>
#include <vector>

namespace fb {

// The activation side: flatten plan, quantizer and optional clipping ("outlier suppression").
struct FlattenActivation {
  FlattenPlan plan;
  int bits = 8;                  // 4 or 8; 16 = flatten in float, no quantization
  bool dynamic = false;          // per-call abs-max scale instead of the static one
  float range = 0;               // R: static per-tensor range after flatten (scale = R / qmax)
  std::vector<float> clip_limit; // per input channel |x_k| ≤ limit_k before flatten (empty: no clip)

  bool quantized() const { return bits < 16; }
  float qmax() const { return float((1 << (bits - 1)) - 1); }
  // The per-tensor scale for this input (static, or from its flattened abs-max).
  float scale_for(const Mat& x_clipped) const;
  // x with every channel clipped to its limit (a copy; x itself when there are no limits).
  Mat clipped(const Mat& x) const;
  // T × K'' codes (int8 storage, values in the INT-bits grid) and the scale used.
  std::vector<int8_t> codes(const Mat& x_clipped, float& scale) const;
  std::string describe() const;
};

class FlattenQuantLinear : public LinearOp {
 public:
  // Quantized expanded weight (N × K''); real = integer GEMM (needs a quantized activation).
  FlattenQuantLinear(FlattenActivation act, const QuantizedWeight& w, Vec bias, bool real);
  // Float expanded weight (N × K''): flatten only (accuracy of the flatten identity, weight-only studies).
  FlattenQuantLinear(FlattenActivation act, Mat w_expanded, Vec bias);

  void forward(const Mat& x, Mat& y) const override;
  std::string describe() const override;
  OpFootprint footprint() const override;
  std::optional<LinearPlan> plan() const override;  // none in real mode (its GEMM is integer)
  // The clipped, flattened (and, when quantized, per-tensor quantized) input the GEMM multiplies:
  // GPTQ's Hessian rows, K'' wide like the expanded weight.
  Mat hessian_rows(const Mat& x) const override;

  const FlattenActivation& activation() const { return act_; }
  const Mat& weight() const { return W_hat_; }  // dequantized (or float) W', empty in real mode

 private:
  void real_forward(const std::vector<int8_t>& q, long T, float a_scale, Mat& y) const;

  FlattenActivation act_;
  Mat W_hat_;
  Vec bias_;
  QuantSpec w_spec_;              // bits 16 when the weight is float
  std::vector<float> w_scale_;    // 1 (per tensor) or N
  bool real_ = false;
  long n_out_ = 0;
  std::shared_ptr<const PackedWeights> packed_;
  long packed_bytes_ = -1;
};

}  // namespace fb

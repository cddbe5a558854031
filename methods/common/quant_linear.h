// Quantized linear operators: the two forms every quantized site can take.
//  * FakeQuantLinear: quantize–dequantize the input in float, multiply with the dequantized
//    weight (accuracy studies);
//  * RealQuantLinear: packed INT8 / INT4 weight codes, integer GEMM with int32 accumulation,
//    dequantized fp32 output (speed and memory).
// Given the same weight codes and activation quantizer they agree up to float rounding of the
// epilogue (tests/quant_linear_test.cpp holds them to that).
#pragma once

#include "kernels/quant.h"
#include "methods/common/memory.h"
#include "models/model.h"

#include <memory>
#include <string>
#include <vector>

namespace fb {

struct PackedWeights;

// Input quantizer of a site: dynamic (per token / per tensor, from each input) or static per
// tensor (a range calibrated beforehand).
struct ActQuantizer {
  QuantSpec spec;            // spec.bits ≥ 16: inputs stay in floating point
  bool is_static = false;
  float static_lo = 0, static_hi = 0;  // calibrated input range (static only)

  bool enabled() const { return spec.enabled(); }
  QuantParams params_for(const Mat& X) const;
  void apply(Mat& X) const;  // fake-quant in place
  std::string describe() const;
  PlanQuant plan() const;    // the same quantizer as a backend-neutral step (models/op_plan.h)
};

// A dynamic activation spec as a backend-neutral step: per_tensor → one range per call,
// per_token / per_channel → one per row, per_group → one per `group` values of a row.
PlanQuant plan_quant_of(const QuantSpec& spec);

// A weight quantized once: grid, parameters and storage codes (N×K, row-major).
struct QuantizedWeight {
  QuantSpec spec;
  QuantParams params;
  std::vector<int8_t> codes;
  std::vector<float> clips;  // per-unit clip ratio used (empty: spec.clip everywhere)

  int rows() const { return params.rows; }
  int cols() const { return params.cols; }
  Mat dequantized() const { return dequantize_codes(codes, params, spec); }
};

// Round-to-nearest weight quantization; mse_search picks each unit's clip ratio (docs/methods.md §3.1).
QuantizedWeight quantize_weight_rtn(const Mat& W, QuantSpec spec, bool mse_search);

class FakeQuantLinear : public LinearOp {
 public:
  FakeQuantLinear(const QuantizedWeight& w, Vec bias, ActQuantizer act);
  // Floating-point weight (no weight quantization), activations quantized only.
  FakeQuantLinear(Mat W, Vec bias, ActQuantizer act);
  void forward(const Mat& x, Mat& y) const override;
  std::string describe() const override;
  OpFootprint footprint() const override;
  std::optional<LinearPlan> plan() const override;
  const Mat& weight() const { return W_hat_; }
  const ActQuantizer& act() const { return act_; }

 private:
  Mat W_hat_;
  Vec bias_;
  ActQuantizer act_;
  QuantSpec w_spec_;   // bits 16 when the weight is left in float
  long n_weight_params_ = 0;
};

class RealQuantLinear : public LinearOp {
 public:
  // Needs per-row or per-tensor weight scales and a per-token or per-tensor activation quantizer;
  // throws std::invalid_argument otherwise. Without an activation quantizer the weight is
  // dequantized from its packed codes on each call (weight-only storage).
  // The integer product runs on the fast packed kernels of kernels/gemm_s8.h when the CPU has
  // them, else (or with use_reference) on the scalar references of kernels/gemm_ref.h.
  RealQuantLinear(const QuantizedWeight& w, Vec bias, ActQuantizer act, bool use_reference = false);
  ~RealQuantLinear() override;
  void forward(const Mat& x, Mat& y) const override;
  std::string describe() const override;
  OpFootprint footprint() const override;

 private:
  void integer_forward(const Mat& x, Mat& y) const;
  int N_ = 0, K_ = 0;
  QuantSpec w_spec_;
  bool int4_ = false;
  std::vector<int8_t> codes8_;       // N×K when the weight has more than 4 bits
  std::vector<uint8_t> codes4_;      // N×(K+1)/2 packed when it has ≤ 4 bits
  std::vector<float> w_scale_;       // 1 (per tensor) or N
  std::vector<int32_t> w_zero_;      // storage-domain zero points (asymmetric), 1 or N; empty when symmetric
  std::vector<int32_t> w_code_sums_; // Σ_k code[n,k], for the activation zero-point correction
  std::unique_ptr<PackedWeights> fast_;  // the same codes packed for the fast kernel (null: reference)
  Vec bias_;
  ActQuantizer act_;
};

}  // namespace fb

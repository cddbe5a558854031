// What a deployed operator computes, as data an execution backend runs (backends/): the methods
// describe their operators once, every backend executes the description, and the CPU operators
// (LinearOp::forward, AttentionOp::apply) stay the reference the descriptions are checked
// against (tests/op_plan_test.cpp runs run_linear_plan / run_attention_plan beside them). This is
// llama.cpp's split: a model is a graph of a few op kinds, each implemented per backend.
//
// A linear operator is, in order: clip each input channel, the Kronecker transform x·(L⊗R),
// the flatten gather (FlattenQuant: channel copies scaled by 1/n, zero padded), fake-quantization
// of the result, and a GEMM with a dequantized weight plus bias. Any step may be absent. An
// operator without such a form (integer GEMMs: real_quant; test doubles) has no plan, and a
// backend that is not the CPU refuses it by name.
#pragma once

#include "core/tensor.h"
#include "kernels/fused_quant.h"
#include "kernels/lac.h"

#include <optional>
#include <string>
#include <vector>

namespace fb {

// Fake-quantization x̂ = s·(q − z) with q = clamp(round(v + offset) + z, qmin, qmax), v = x/s (or
// x·(1/s) where `reciprocal`, as the FlattenQuant kernels compute it), round half to even. A
// group's range [mn, mx] brackets 0; symmetric: s = max(mx·hi, −mn·lo)/qmax (1 for an all-zero
// group), z = 0; asymmetric: s = (mx·hi − mn·lo)/qmax (range ±1 when both are 0), z = round(−mn·lo/s).
// This is kernels/quant.cpp's scale_from_range for activations (hi = lo = spec.clip) and
// FlatQuant's learned clipping (kernels/lac.h) in one rule.
struct PlanQuant {
  enum class Scope {
    none,        // values stay in floating point
    row_groups,  // a range per `group` consecutive values of a row (group 0: the whole row)
    tensor,      // one range over everything the operator sees in one call (one window)
    fixed,       // the given scale and zero point (static, calibrated beforehand)
  };
  Scope scope = Scope::none;
  int bits = 16;
  bool sym = true;
  int group = 0;
  ClipRatios clip;
  float scale = 1, zero = 0;       // fixed only
  bool reciprocal = false;
  std::vector<float> step_offset;  // per column, in steps (FlattenQuant's staggered split), or empty

  bool enabled() const { return scope != Scope::none; }
  int qmin() const { return sym ? -(1 << (bits - 1)) : 0; }
  int qmax() const { return sym ? (1 << (bits - 1)) - 1 : (1 << bits) - 1; }
};

struct LinearPlan {
  std::vector<float> clip_limit;           // |x_k| ≤ limit_k for every input channel (empty: none)
  const Mat* kron_left = nullptr;          // x ← x·(L⊗R), L n1×n1 and R n2×n2 (null: none)
  const Mat* kron_right = nullptr;
  const FlattenPlan* flatten = nullptr;    // x'_j = x_{src_j}·inv_div_j, zero padded to k_out (null: none)
  PlanQuant quant;                         // then the GEMM input's fake-quantization
  const Mat* weight = nullptr;             // N × K' dequantized weight (K' = k_out after a flatten)
  const Vec* bias = nullptr;               // N, or null
};

// One edit of the attention tensors (after RoPE, before the scores): the tensor's every head
// multiplied by `head_transform` (head_dim × head_dim, x_h ← x_h·M; null: none), then quantized.
struct AttentionStep {
  enum class Tensor { q, k, v };
  Tensor tensor = Tensor::k;
  const Mat* head_transform = nullptr;
  PlanQuant quant;
};
using AttentionPlan = std::vector<AttentionStep>;

// The CPU execution of a description (the reference every other backend's kernels follow).
void fake_quantize_plan(Mat& x, const PlanQuant& q);
Mat run_linear_plan(const LinearPlan& plan, const Mat& x);
void run_attention_plan(const AttentionPlan& plan, int head_dim, Mat& q, Mat& k, Mat& v);

}  // namespace fb

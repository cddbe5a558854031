#include "methods/flattenquant/flatten_linear.h"

#include "methods/flattenquant/flatten_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb {

// ---- activation side --------------------------------------------------------

Mat FlattenActivation::clipped(const Mat& x) const { return clip_limit.empty() ? x : clip_columns(x, clip_limit); }

float FlattenActivation::scale_for(const Mat& x) const {
  if (!dynamic) return range > 0 ? range / qmax() : 1.0f;
  // abs-max of the flattened tensor: each channel's abs-max divided by its copy count.
  const Vec ch = x.rows() ? Vec(x.cwiseAbs().colwise().maxCoeff().transpose()) : Vec::Zero(x.cols());
  float a = 0;
  for (size_t j = 0; j < plan.src.size(); ++j) a = std::max(a, ch[plan.src[j]] * plan.inv_div[j]);
  return a > 0 ? a / qmax() : 1.0f;
}

std::vector<int8_t> FlattenActivation::codes(const Mat& x, float& scale) const {
  scale = scale_for(x);
  std::vector<int8_t> q(size_t(x.rows()) * size_t(plan.k_out));
  flatten_quantize(x.data(), x.rows(), plan, scale, bits, q.data());
  return q;
}

std::string FlattenActivation::describe() const {
  const std::string width = fmt::format("K {}→{}→{}", plan.k_in, plan.src.size(), plan.k_out);
  if (!quantized()) return "flatten " + width + " / A16";
  return fmt::format("flatten {} / A{} per-tensor {}{}", width, bits, dynamic ? "dynamic" : "static",
                     clip_limit.empty() ? "" : " clipped");
}

// ---- operator ---------------------------------------------------------------

FlattenQuantLinear::FlattenQuantLinear(FlattenActivation act, const QuantizedWeight& w, Vec bias, bool real)
    : act_(std::move(act)), bias_(std::move(bias)), w_spec_(w.spec), w_scale_(w.params.scale), real_(real),
      n_out_(w.rows()) {
  validate_flatten_plan(act_.plan);
  if (w.cols() != act_.plan.k_out)
    throw std::invalid_argument(fmt::format("FlattenQuantLinear: expanded weight has {} columns, plan pads to {}",
                                            w.cols(), act_.plan.k_out));
  if (!w.spec.sym || w.spec.granularity == Granularity::per_group || w.spec.bits > 8)
    throw std::invalid_argument("FlattenQuantLinear: weights must be symmetric per_tensor or per_channel with ≤ 8 bits, got " +
                                w.spec.describe());
  if (!real_) {
    W_hat_ = w.dequantized();
    return;
  }
  if (!act_.quantized()) throw std::invalid_argument("FlattenQuantLinear: real_quant needs quantized activations");
  if (w.spec.bits <= 4) {
    std::vector<uint8_t> packed4 = pack_int4(w.codes.data(), w.rows(), w.cols());
    packed_bytes_ = long(packed4.size());
    packed_ = std::make_shared<PackedWeights>(pack_weights_s4(packed4.data(), w.rows(), w.cols()));
  } else {
    packed_bytes_ = long(w.codes.size());
    packed_ = std::make_shared<PackedWeights>(pack_weights_s8(w.codes.data(), w.rows(), w.cols()));
  }
}

FlattenQuantLinear::FlattenQuantLinear(FlattenActivation act, Mat w_expanded, Vec bias)
    : act_(std::move(act)), W_hat_(std::move(w_expanded)), bias_(std::move(bias)), n_out_(W_hat_.rows()) {
  validate_flatten_plan(act_.plan);
  if (W_hat_.cols() != act_.plan.k_out)
    throw std::invalid_argument(fmt::format("FlattenQuantLinear: expanded weight has {} columns, plan pads to {}",
                                            W_hat_.cols(), act_.plan.k_out));
  w_spec_.bits = 16;
}

void FlattenQuantLinear::forward(const Mat& x, Mat& y) const {
  if (x.cols() != act_.plan.k_in)
    throw std::invalid_argument(fmt::format("FlattenQuantLinear: input has {} channels, plan expects {}", x.cols(),
                                            act_.plan.k_in));
  if (real_ && act_.quantized()) {
    float a_scale = 1;
    const std::vector<int8_t> q = act_.codes(act_.clipped(x), a_scale);
    return real_forward(q, x.rows(), a_scale, y);
  }
  y.noalias() = hessian_rows(x) * W_hat_.transpose();  // the rows the fake-quant GEMM multiplies
  if (bias_.size()) y.rowwise() += bias_.transpose();
}

Mat FlattenQuantLinear::hessian_rows(const Mat& x) const {
  const Mat xc = act_.clipped(x);
  if (!act_.quantized()) return flatten_activations(xc, act_.plan);
  float a_scale = 1;
  const std::vector<int8_t> q = act_.codes(xc, a_scale);
  return Eigen::Map<const Eigen::Matrix<int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(q.data(), x.rows(),
                                                                                                   act_.plan.k_out)
             .cast<float>() *
         a_scale;
}

std::optional<LinearPlan> FlattenQuantLinear::plan() const {
  if (real_) return std::nullopt;
  LinearPlan p;
  p.clip_limit = act_.clip_limit;
  p.flatten = &act_.plan;
  if (act_.quantized()) {
    PlanQuant& q = p.quant;
    q.bits = act_.bits, q.sym = true, q.reciprocal = true;  // flatten_quantize's x·(1/s)
    if (act_.dynamic) q.scope = PlanQuant::Scope::tensor;
    else q.scope = PlanQuant::Scope::fixed, q.scale = act_.range > 0 ? act_.range / act_.qmax() : 1.0f;
    if (!act_.plan.step_offset.empty()) {
      q.step_offset = act_.plan.step_offset;
      q.step_offset.resize(size_t(act_.plan.k_out), 0.f);  // the padding stays code 0
    }
  }
  p.weight = &W_hat_;
  p.bias = bias_.size() ? &bias_ : nullptr;
  return p;
}

void FlattenQuantLinear::real_forward(const std::vector<int8_t>& q, long T, float a_scale, Mat& y) const {
  y.resize(T, n_out_);
  DequantEpilogue ep;
  ep.sa = &a_scale;
  ep.n_sa = 1;
  ep.sb = w_scale_.data();
  ep.n_sb = long(w_scale_.size());
  ep.bias = bias_.size() ? bias_.data() : nullptr;
  gemm_s8_packed(q.data(), T, *packed_, ep, y.data());
}

std::string FlattenQuantLinear::describe() const {
  const std::string w = w_spec_.enabled() ? fmt::format("W{} {}", w_spec_.bits, w_spec_.describe()) : "W16";
  return fmt::format("{} {} / {}", real_ ? "real-quant" : "fake-quant", w, act_.describe());
}

OpFootprint FlattenQuantLinear::footprint() const {
  OpFootprint f;
  f.weight_values = n_out_ * act_.plan.k_out;
  f.w_bits = w_spec_.enabled() ? w_spec_.bits : 16;
  f.packed_bytes = packed_bytes_;
  f.scale_values = long(w_scale_.size()) + (act_.quantized() && !act_.dynamic ? 1 : 0);
  // bias, plus the plan the runtime gather reads (source index and 1/n per flattened channel)
  f.extra_float_values = bias_.size() + 2 * long(act_.plan.src.size()) + long(act_.clip_limit.size());
  f.a_bits = act_.quantized() ? act_.bits : 16;
  f.a_width = int(act_.plan.k_out);
  return f;
}

}  // namespace fb

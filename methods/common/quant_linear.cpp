#include "methods/common/quant_linear.h"

#include "kernels/gemm_ref.h"
#include "kernels/gemm_s8.h"

#include <fmt/format.h>

#include <stdexcept>

namespace fb {

// ---- activation quantizer --------------------------------------------------

QuantParams ActQuantizer::params_for(const Mat& X) const {
  if (is_static) return static_params(static_lo, static_hi, int(X.rows()), int(X.cols()), spec);
  return compute_params(X, spec);
}

void ActQuantizer::apply(Mat& X) const {
  if (!enabled()) return;
  fake_quantize(X, params_for(X), spec);
}

PlanQuant plan_quant_of(const QuantSpec& spec) {
  PlanQuant q;
  if (!spec.enabled()) return q;
  q.bits = spec.bits, q.sym = spec.sym, q.clip = {spec.clip, spec.clip};
  switch (spec.granularity) {
    case Granularity::per_tensor: q.scope = PlanQuant::Scope::tensor; break;
    case Granularity::per_group: q.scope = PlanQuant::Scope::row_groups, q.group = spec.group; break;
    default: q.scope = PlanQuant::Scope::row_groups, q.group = 0; break;
  }
  return q;
}

PlanQuant ActQuantizer::plan() const {
  PlanQuant q = plan_quant_of(spec);
  if (enabled() && is_static) {
    const QuantParams p = static_params(static_lo, static_hi, 1, 1, spec);
    q.scope = PlanQuant::Scope::fixed, q.scale = p.scale[0], q.zero = p.zero[0];
  }
  return q;
}

std::string ActQuantizer::describe() const {
  if (!enabled()) return "A16";
  return fmt::format("A{} {}{}", spec.bits, is_static ? "static " : "", spec.describe());
}

// ---- weights ---------------------------------------------------------------

QuantizedWeight quantize_weight_rtn(const Mat& W, QuantSpec spec, bool mse_search) {
  spec.weight = true;
  QuantizedWeight q;
  q.spec = spec;
  if (mse_search) q.clips = search_clip_mse(W, spec);
  q.params = compute_params(W, spec, mse_search ? &q.clips : nullptr);
  q.codes = quantize_codes(W, q.params, spec);
  return q;
}

namespace {

void add_bias(Mat& y, const Vec& b) {
  if (b.size()) y.rowwise() += b.transpose();
}

long scale_count(const QuantParams& p, const QuantSpec& s) {
  return long(p.scale.size()) * (s.sym ? 1 : 2);  // scales, plus zero points on asymmetric grids
}

}  // namespace

// ---- fake quant ------------------------------------------------------------

FakeQuantLinear::FakeQuantLinear(const QuantizedWeight& w, Vec bias, ActQuantizer act)
    : W_hat_(w.dequantized()), bias_(std::move(bias)), act_(std::move(act)), w_spec_(w.spec) {
  n_weight_params_ = scale_count(w.params, w.spec);
}

FakeQuantLinear::FakeQuantLinear(Mat W, Vec bias, ActQuantizer act)
    : W_hat_(std::move(W)), bias_(std::move(bias)), act_(std::move(act)) {
  w_spec_.bits = 16;
}

void FakeQuantLinear::forward(const Mat& x, Mat& y) const {
  if (act_.enabled()) {
    Mat xq = x;
    act_.apply(xq);
    y.noalias() = xq * W_hat_.transpose();
  } else {
    y.noalias() = x * W_hat_.transpose();
  }
  add_bias(y, bias_);
}

std::optional<LinearPlan> FakeQuantLinear::plan() const {
  LinearPlan p;
  p.quant = act_.plan();
  p.weight = &W_hat_;
  p.bias = bias_.size() ? &bias_ : nullptr;
  return p;
}

std::string FakeQuantLinear::describe() const {
  std::string w = w_spec_.enabled() ? "W" + std::to_string(w_spec_.bits) + " " + w_spec_.describe() : "W16";
  return "fake-quant " + w + " / " + act_.describe();
}

OpFootprint FakeQuantLinear::footprint() const {
  OpFootprint f;
  f.weight_values = W_hat_.size();
  f.w_bits = w_spec_.enabled() ? w_spec_.bits : 16;
  f.scale_values = n_weight_params_ + (act_.is_static ? 2 : 0);
  f.extra_float_values = bias_.size();
  f.a_bits = act_.enabled() ? act_.spec.bits : 16;
  f.a_width = int(W_hat_.cols());
  return f;
}

// ---- real quant ------------------------------------------------------------

RealQuantLinear::~RealQuantLinear() = default;

RealQuantLinear::RealQuantLinear(const QuantizedWeight& w, Vec bias, ActQuantizer act, bool use_reference)
    : N_(w.rows()), K_(w.cols()), w_spec_(w.spec), bias_(std::move(bias)), act_(std::move(act)) {
  if (!w.spec.enabled() || w.spec.bits > 8)
    throw std::invalid_argument(fmt::format("RealQuantLinear: weight bits must be 2..8, got {}", w.spec.bits));
  if (w.spec.granularity == Granularity::per_group)
    throw std::invalid_argument("RealQuantLinear: per_group weight scales vary along K and break the integer GEMM "
                                "factorisation; use per_channel or per_tensor (or fake-quant)");
  if (act_.enabled() && (act_.spec.bits > 8 || act_.spec.granularity == Granularity::per_group ||
                         act_.spec.granularity == Granularity::per_channel))
    throw std::invalid_argument("RealQuantLinear: activations must be per_token or per_tensor with ≤ 8 bits, got " +
                                act_.describe());
  int4_ = w.spec.bits <= 4;
  if (int4_)
    codes4_ = pack_int4(w.codes.data(), N_, K_);
  else
    codes8_ = w.codes;
  w_scale_ = w.params.scale;
  if (!w.spec.sym)
    for (float z : w.params.zero) w_zero_.push_back(int32_t(z) + w.spec.storage_offset());
  if (!use_reference && act_.enabled() && isa_supported(GemmIsa::kAvx2))
    fast_ = std::make_unique<PackedWeights>(int4_ ? pack_weights_s4(codes4_.data(), N_, K_)
                                                  : pack_weights_s8(codes8_.data(), N_, K_));
  w_code_sums_.assign(N_, 0);
  for (int n = 0; n < N_; ++n)
    for (int k = 0; k < K_; ++k) w_code_sums_[n] += w.codes[size_t(n) * K_ + k];
}

void RealQuantLinear::forward(const Mat& x, Mat& y) const {
  if (x.cols() != K_)
    throw std::invalid_argument(fmt::format("RealQuantLinear: input has {} channels, weight expects {}", x.cols(), K_));
  if (act_.enabled()) return integer_forward(x, y);
  // Weight-only storage: unpack and dequantize, then a float product.
  std::vector<int8_t> codes = codes8_;
  if (int4_) {
    codes.resize(size_t(N_) * K_);
    unpack_int4(codes4_.data(), N_, K_, codes.data());
  }
  Mat W(N_, K_);
  for (int n = 0; n < N_; ++n) {
    float s = w_scale_[w_scale_.size() == 1 ? 0 : n];
    float z = w_zero_.empty() ? 0.f : float(w_zero_[w_zero_.size() == 1 ? 0 : n]);
    for (int k = 0; k < K_; ++k) W(n, k) = s * (float(codes[size_t(n) * K_ + k]) - z);
  }
  y.noalias() = x * W.transpose();
  add_bias(y, bias_);
}

void RealQuantLinear::integer_forward(const Mat& x, Mat& y) const {
  const long T = x.rows();
  QuantParams ap = act_.params_for(x);
  std::vector<int8_t> xc = quantize_codes(x, ap, act_.spec);
  std::vector<int32_t> acc(size_t(T) * N_);
  if (fast_)
    gemm_s8_packed(xc.data(), T, *fast_, acc.data());
  else if (int4_)
    gemm_s8s4s32_ref(xc.data(), codes4_.data(), acc.data(), T, N_, K_);
  else
    gemm_s8s8s32_ref(xc.data(), codes8_.data(), acc.data(), T, N_, K_);

  // Zero points: Σ(cx − zx)(cw − zw) = Σcx·cw − zx·Σcw − zw·Σcx + K·zx·zw, all in int32.
  const bool a_asym = !act_.spec.sym, w_asym = !w_zero_.empty();
  if (a_asym || w_asym) {
    for (long t = 0; t < T; ++t) {
      int32_t zx = a_asym ? int32_t(ap.zero[ap.per_tensor ? 0 : t]) + act_.spec.storage_offset() : 0;
      int32_t sx = 0;
      for (int k = 0; k < K_; ++k) sx += xc[size_t(t) * K_ + k];
      for (int n = 0; n < N_; ++n) {
        int32_t zw = w_asym ? w_zero_[w_zero_.size() == 1 ? 0 : n] : 0;
        acc[size_t(t) * N_ + n] += -zx * w_code_sums_[n] - zw * sx + K_ * zx * zw;
      }
    }
  }
  y.resize(T, N_);
  dequantize_s32_ref(acc.data(), T, N_, ap.scale.data(), long(ap.scale.size()), w_scale_.data(),
                     long(w_scale_.size()), bias_.size() ? bias_.data() : nullptr, y.data());
}

std::string RealQuantLinear::describe() const {
  return fmt::format("real-quant W{} {} ({}, {}) / {}", w_spec_.bits, w_spec_.describe(),
                     int4_ ? "int4 packed" : "int8", fast_ ? isa_name(fast_->isa) : "reference kernel", act_.describe());
}

OpFootprint RealQuantLinear::footprint() const {
  OpFootprint f;
  f.weight_values = long(N_) * K_;
  f.w_bits = w_spec_.bits;
  f.packed_bytes = long(int4_ ? codes4_.size() : codes8_.size());
  f.scale_values = long(w_scale_.size() + w_zero_.size()) + (act_.is_static ? 2 : 0);
  f.extra_float_values = bias_.size();
  f.a_bits = act_.enabled() ? act_.spec.bits : 16;
  f.a_width = K_;
  return f;
}

}  // namespace fb

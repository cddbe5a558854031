#include "models/op_plan.h"

#include "kernels/kron_apply.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb {
namespace {

struct ScaleZeroF {
  float s = 1, z = 0;
};

// The rule of PlanQuant's comment, from a range that brackets 0.
ScaleZeroF plan_scale(float mx, float mn, const PlanQuant& q) {
  if (q.sym) {
    const float a = std::max(mx * q.clip.hi, -mn * q.clip.lo);
    return {a == 0 ? 1.f : a / float(q.qmax()), 0.f};
  }
  float hi = mx * q.clip.hi, lo = mn * q.clip.lo;
  if (hi == 0 && lo == 0) hi = 1, lo = -1;
  const float s = (hi - lo) / float(q.qmax());
  return {s, std::nearbyint(-lo / s)};
}

void quantize_span(float* x, long n, long col0, ScaleZeroF sz, const PlanQuant& q) {
  const float inv = 1.0f / sz.s, qmin = float(q.qmin()), qmax = float(q.qmax());
  for (long i = 0; i < n; ++i) {
    const float v = q.reciprocal ? x[i] * inv : x[i] / sz.s;
    const float off = q.step_offset.empty() ? 0.f : q.step_offset[size_t(col0 + i)];
    const float code = std::clamp(std::nearbyint(v + off) + sz.z, qmin, qmax);
    x[i] = sz.s * (code - sz.z);
  }
}

void range_of(const float* x, long n, float& mx, float& mn) {
  for (long i = 0; i < n; ++i) mx = std::max(mx, x[i]), mn = std::min(mn, x[i]);
}

}  // namespace

void fake_quantize_plan(Mat& x, const PlanQuant& q) {
  if (!q.enabled()) return;
  if (!q.step_offset.empty() && long(q.step_offset.size()) != x.cols())
    throw std::invalid_argument(fmt::format("fake_quantize_plan: {} step offsets for {} columns", q.step_offset.size(),
                                            x.cols()));
  const long cols = x.cols();
  if (q.scope == PlanQuant::Scope::row_groups) {
    const long g = q.group > 0 ? q.group : cols;
    for (long r = 0; r < x.rows(); ++r)
      for (long c0 = 0; c0 < cols; c0 += g) {
        const long n = std::min(g, cols - c0);
        float* p = x.data() + r * cols + c0;
        float mx = 0, mn = 0;
        range_of(p, n, mx, mn);
        quantize_span(p, n, c0, plan_scale(mx, mn, q), q);
      }
    return;
  }
  ScaleZeroF sz{q.scale, q.zero};
  if (q.scope == PlanQuant::Scope::tensor) {
    float mx = 0, mn = 0;
    range_of(x.data(), x.size(), mx, mn);
    sz = plan_scale(mx, mn, q);
  }
  for (long r = 0; r < x.rows(); ++r) quantize_span(x.data() + r * cols, cols, 0, sz, q);
}

Mat run_linear_plan(const LinearPlan& p, const Mat& x) {
  if (!p.weight) throw std::invalid_argument("run_linear_plan: the plan has no weight");
  Mat a = x;
  if (!p.clip_limit.empty()) a = clip_columns(a, p.clip_limit);
  if (p.kron_left) {
    Mat t;
    kron_apply<float>(a, *p.kron_left, *p.kron_right, t);
    a = std::move(t);
  }
  if (p.flatten) a = flatten_activations(a, *p.flatten);
  fake_quantize_plan(a, p.quant);
  if (p.weight->cols() != a.cols()) throw std::invalid_argument("run_linear_plan: weight width ≠ the prepared input");
  Mat y = a * p.weight->transpose();
  if (p.bias) y.rowwise() += p.bias->transpose();
  return y;
}

void run_attention_plan(const AttentionPlan& plan, int head_dim, Mat& q, Mat& k, Mat& v) {
  for (const AttentionStep& s : plan) {
    Mat& x = s.tensor == AttentionStep::Tensor::q ? q : (s.tensor == AttentionStep::Tensor::k ? k : v);
    if (s.head_transform) {
      Eigen::Map<Mat> heads(x.data(), x.size() / head_dim, head_dim);
      heads = (heads * *s.head_transform).eval();
    }
    fake_quantize_plan(x, s.quant);
  }
}

}  // namespace fb

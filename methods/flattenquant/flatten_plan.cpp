#include "methods/flattenquant/flatten_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb {

BetaReference parse_beta_reference(const std::string& name) {
  if (name == "max") return BetaReference::max;
  if (name == "median") return BetaReference::median;
  throw std::invalid_argument("flattenquant: beta_ref must be 'max' or 'median', got '" + name + "'");
}

float flatten_threshold(const Vec& m, float beta, BetaReference ref) {
  if (m.size() == 0) throw std::invalid_argument("flattenquant: no channel magnitudes to flatten");
  if (!(beta > 0)) throw std::invalid_argument(fmt::format("flattenquant: beta must be > 0, got {}", beta));
  if (ref == BetaReference::max) return beta * m.maxCoeff();
  std::vector<float> v(m.data(), m.data() + m.size());
  auto mid = v.begin() + long(v.size()) / 2;
  std::nth_element(v.begin(), mid, v.end());
  return beta * *mid;
}

std::vector<int> flatten_copies(const Vec& m, float T) {
  std::vector<int> copies(size_t(m.size()), 1);
  if (!(T > 0)) return copies;
  for (long k = 0; k < m.size(); ++k) {
    // ceil in double so that m_k = T exactly stays one copy.
    const double n = std::ceil(double(m[k]) / double(T));
    copies[size_t(k)] = std::max(1, int(n));
  }
  return copies;
}

FlattenPlan plan_flatten(const Vec& m, float beta, BetaReference ref, long pad_to, SplitMode split) {
  return make_flatten_plan(flatten_copies(m, flatten_threshold(m, beta, ref)), pad_to, split);
}

std::vector<int> plan_copies(const FlattenPlan& plan) {
  std::vector<int> n(size_t(plan.k_in), 0);
  for (int32_t k : plan.src) ++n[size_t(k)];
  return n;
}

float flattened_range(const Vec& m, const FlattenPlan& plan) {
  const std::vector<int> n = plan_copies(plan);
  float r = 0;
  for (long k = 0; k < m.size(); ++k) r = std::max(r, m[k] / float(n[size_t(k)]));
  return r;
}

Mat expand_weight(const Mat& W, const FlattenPlan& plan) {
  if (W.cols() != plan.k_in)
    throw std::invalid_argument(fmt::format("flattenquant: weight has {} input columns, plan expects {}", W.cols(),
                                            plan.k_in));
  Mat out = Mat::Zero(W.rows(), plan.k_out);
  const long kf = flat_width(plan);
  for (long n = 0; n < W.rows(); ++n) {  // row by row: both matrices are row-major
    const float* w = W.row(n).data();
    float* o = out.row(n).data();
    for (long j = 0; j < kf; ++j) o[j] = w[plan.src[size_t(j)]];
  }
  return out;
}

}  // namespace fb

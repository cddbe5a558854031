#include "methods/flatquant/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace fb::flatquant {
namespace {

thread_local RoundingTape* g_tape = nullptr;

// Round half to even, as std::nearbyint in the default rounding mode and torch.round, by the
// 1.5·2^52 trick: it vectorises where the baseline x86-64 target has no rounding instruction.
// Exact for |v| < 2^51; every quantizer's v = x / s lies within its grid (|v| ≤ 2^bits).
inline double round_even(double v) {
  constexpr double kMagic = 6755399441055744.0;  // 1.5 · 2^52
  return (v + kMagic) - kMagic;
}

// clamp(round(v) + z, qmin, qmax); with a tape, replays v + the taped offset and the taped
// clamp decision, so an element sitting exactly on a grid end (every group's extreme does)
// keeps the side torch's inclusive clamp gradient assigns it.
double round_clamp_taped(double v, double z, double qmin, double qmax) {
  const double r = std::nearbyint(v) + z;
  if (!g_tape) return std::clamp(r, qmin, qmax);
  if (!g_tape->replay) {
    g_tape->values.push_back(std::nearbyint(v) - v);
    g_tape->values.push_back(r < qmin ? -1 : (r > qmax ? 1 : 0));
    return std::clamp(r, qmin, qmax);
  }
  const double offset = g_tape->values.at(g_tape->cursor++), side = g_tape->values.at(g_tape->cursor++);
  return side < 0 ? qmin : (side > 0 ? qmax : v + offset + z);
}
// A rounded value with no gradient (the zero point): taped as is.
double round_frozen(double v) {
  if (!g_tape) return std::nearbyint(v);
  if (!g_tape->replay) {
    g_tape->values.push_back(std::nearbyint(v));
    return std::nearbyint(v);
  }
  return g_tape->values.at(g_tape->cursor++);
}

// How a quantizer reduces its group to a range; the two official quantizers differ in
// small ways that change gradients and degenerate cases.
enum class Style { activation, weight };

struct Range {
  double raw_max = 0, raw_min = 0;  // max/min of the group
  long arg_max = 0, arg_min = 0;    // first index of each (weight style routes gradient there)
  double mx = 0, mn = 0;            // bracketed to include 0
  double hi = 0, lo = 0;            // after clipping ratios
  double s = 1, z = 0;              // scale and zero point
  bool scale_const = false;         // scale replaced by a constant (no gradient)
  bool scale_floored = false;       // weight scale hit the 1e-5 floor
};

template <class T>
Range find_range(const T* x, long n, const QuantSpec& spec, Style style, double ratio_hi, double ratio_lo) {
  Range r;
  if (style == Style::weight) {  // the weight backward routes the range's gradient to these indices
    r.raw_max = r.raw_min = x[0];
    for (long k = 1; k < n; ++k) {
      if (x[k] > r.raw_max) r.raw_max = x[k], r.arg_max = k;
      if (x[k] < r.raw_min) r.raw_min = x[k], r.arg_min = k;
    }
  } else {  // no indices needed: Eigen's vectorised reductions (the calibration's per-token hot path)
    const Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> v(x, n);
    r.raw_max = v.maxCoeff(), r.raw_min = v.minCoeff();
  }
  r.mx = std::max(r.raw_max, 0.0);
  r.mn = std::min(r.raw_min, 0.0);
  r.hi = r.mx * ratio_hi;
  r.lo = r.mn * ratio_lo;
  const double qmax = spec.qmax();
  if (spec.sym) {
    double m = std::max(std::abs(r.lo), r.hi);
    if (style == Style::weight) {
      if (m < 1e-5) m = 1e-5, r.scale_floored = true;
      r.s = m / qmax;
    } else if (m == 0) {
      r.s = 1, r.scale_const = true;
    } else {
      r.s = m / qmax;
    }
    return r;
  }
  if (r.hi == 0 && r.lo == 0) r.hi = 1, r.lo = -1, r.scale_const = true;
  double span = r.hi - r.lo;
  if (style == Style::weight && span < 1e-5) span = 1e-5, r.scale_floored = true;
  r.s = span / qmax;
  r.z = round_frozen(-r.lo / r.s);  // torch.round: no gradient through the zero point
  return r;
}

template <class T>
void quantize_group(const T* x, long n, const QuantSpec& spec, const Range& r, T* y) {
  const double qmin = spec.qmin(), qmax = spec.qmax();
  if (!g_tape) {  // the calibration's path: one tape check per group, not per element
    for (long k = 0; k < n; ++k) {
      const double q = std::clamp(round_even(x[k] / r.s) + r.z, qmin, qmax);
      y[k] = T(r.s * (q - r.z));
    }
    return;
  }
  for (long k = 0; k < n; ++k) {
    double q = round_clamp_taped(x[k] / r.s, r.z, qmin, qmax);
    y[k] = T(r.s * (q - r.z));
  }
}

// Split of a gradient through torch.maximum(a, b) (or minimum): half each on a tie.
struct Split {
  double a = 0, b = 0;
};
Split split_max(double a, double b, double g) {
  if (a > b) return {g, 0};
  if (a < b) return {0, g};
  return {g / 2, g / 2};
}

// Backward of one group. Returns the gradients of the clipped range ends (hi, lo) in
// *g_hi / *g_lo, and accumulates the element gradients of the straight-through path.
template <class T>
void backward_group(const T* x, long n, const QuantSpec& spec, const Range& r, const T* gy, T* gx, double* g_hi,
                    double* g_lo) {
  const double qmin = spec.qmin(), qmax = spec.qmax();
  double gs = 0;
  for (long k = 0; k < n; ++k) {
    double rounded = round_even(x[k] / r.s) + r.z;
    bool inside = rounded >= qmin && rounded <= qmax;
    double q = std::clamp(rounded, qmin, qmax);
    if (inside) gx[k] += gy[k];
    gs += gy[k] * ((q - r.z) - (inside ? x[k] / r.s : 0.0));
  }
  *g_hi = *g_lo = 0;
  if (r.scale_const || r.scale_floored) return;
  double gm = gs / qmax;
  if (spec.sym) {
    Split sp = split_max(std::abs(r.lo), r.hi, gm);  // torch.maximum(|lo|, hi)
    *g_lo = r.lo < 0 ? -sp.a : 0.0;                  // d|lo|/dlo = sign(lo)
    *g_hi = sp.b;
  } else {
    *g_hi = gm;
    *g_lo = -gm;
  }
}

// Routes the gradient of mx = maximum(max(x), 0) (and mn = minimum(min(x), 0)) to elements.
template <class T>
void route_extremes(const T* x, long n, const Range& r, Style style, double g_mx, double g_mn, T* gx) {
  double g_raw_max = split_max(r.raw_max, 0.0, g_mx).a;
  double g_raw_min = split_max(-r.raw_min, 0.0, g_mn).a;  // minimum(a, 0) = −maximum(−a, 0)
  if (style == Style::weight) {
    gx[r.arg_max] += g_raw_max;
    gx[r.arg_min] += g_raw_min;
    return;
  }
  long n_max = 0, n_min = 0;
  for (long k = 0; k < n; ++k) n_max += x[k] == r.raw_max, n_min += x[k] == r.raw_min;
  for (long k = 0; k < n; ++k) {
    if (x[k] == r.raw_max) gx[k] += g_raw_max / n_max;
    if (x[k] == r.raw_min) gx[k] += g_raw_min / n_min;
  }
}

template <class S>
void check_group(const MatX<S>& x, int group) {
  if (group <= 0 || x.cols() % group != 0)
    throw std::invalid_argument("flatquant fake quantizer: group " + std::to_string(group) +
                                " does not divide row length " + std::to_string(x.cols()));
}

}  // namespace

void set_rounding_tape(RoundingTape* tape) { g_tape = tape; }
bool rounding_tape_active() { return g_tape != nullptr; }

template <class S>
void act_quant_forward(const MatX<S>& x, int group, const QuantSpec& spec, const double* amax, const double* amin,
                       MatX<S>& y) {
  y.resize(x.rows(), x.cols());
  if (!spec.enabled()) {
    y = x;
    return;
  }
  check_group(x, group);
  const double rh = amax ? sigmoid(*amax) : 1.0, rl = amin ? sigmoid(*amin) : 1.0;
  const long groups = x.size() / group;
  // Groups are independent; a rounding tape (tests) records them in order, so it keeps one thread.
#pragma omp parallel for schedule(static) if (!g_tape && groups >= 256)
  for (long g = 0; g < groups; ++g) {
    const S* xg = x.data() + g * group;
    Range r = find_range(xg, group, spec, Style::activation, rh, rl);
    quantize_group(xg, group, spec, r, y.data() + g * group);
  }
}

template <class S>
void act_quant_backward(const MatX<S>& x, int group, const QuantSpec& spec, const double* amax, const double* amin,
                        const MatX<S>& gy, MatX<S>& gx, double* g_amax, double* g_amin) {
  if (!spec.enabled()) {
    gx += gy;
    return;
  }
  check_group(x, group);
  const double rh = amax ? sigmoid(*amax) : 1.0, rl = amin ? sigmoid(*amin) : 1.0;
  const long groups = x.size() / group;
  // Each group's LAC gradient is kept and summed in group order afterwards, so the result does
  // not depend on how many threads ran (a rounding tape keeps one thread: it records in order).
  std::vector<double> g_hi_of(amax ? groups : 0), g_lo_of(amin ? groups : 0);
#pragma omp parallel for schedule(static) if (!g_tape && groups >= 256)
  for (long g = 0; g < groups; ++g) {
    const S* xg = x.data() + g * group;
    S* gxg = gx.data() + g * group;
    Range r = find_range(xg, group, spec, Style::activation, rh, rl);
    double g_hi, g_lo;
    backward_group(xg, group, spec, r, gy.data() + g * group, gxg, &g_hi, &g_lo);
    if (amax) g_hi_of[g] = g_hi * r.mx * rh * (1 - rh);
    if (amin) g_lo_of[g] = g_lo * r.mn * rl * (1 - rl);
    route_extremes(xg, group, r, Style::activation, g_hi * rh, g_lo * rl, gxg);
  }
  for (double v : g_hi_of) *g_amax += v;
  for (double v : g_lo_of) *g_amin += v;
}

template void act_quant_forward<float>(const MatX<float>&, int, const QuantSpec&, const double*, const double*,
                                       MatX<float>&);
template void act_quant_forward<double>(const MatD&, int, const QuantSpec&, const double*, const double*, MatD&);
template void act_quant_backward<float>(const MatX<float>&, int, const QuantSpec&, const double*, const double*,
                                        const MatX<float>&, MatX<float>&, double*, double*);
template void act_quant_backward<double>(const MatD&, int, const QuantSpec&, const double*, const double*,
                                         const MatD&, MatD&, double*, double*);

void weight_quant_forward(const MatD& w, const QuantSpec& spec, MatD& y) {
  y.resize(w.rows(), w.cols());
  if (!spec.enabled()) {
    y = w;
    return;
  }
  for (long n = 0; n < w.rows(); ++n) {
    Range r = find_range(w.data() + n * w.cols(), w.cols(), spec, Style::weight, 1.0, 1.0);
    quantize_group(w.data() + n * w.cols(), w.cols(), spec, r, y.data() + n * w.cols());
  }
}

void weight_quant_backward(const MatD& w, const QuantSpec& spec, const MatD& gy, MatD& gw) {
  if (!spec.enabled()) {
    gw += gy;
    return;
  }
  const long K = w.cols();
  for (long n = 0; n < w.rows(); ++n) {
    const double* wn = w.data() + n * K;
    Range r = find_range(wn, K, spec, Style::weight, 1.0, 1.0);
    double g_hi, g_lo;
    backward_group(wn, K, spec, r, gy.data() + n * K, gw.data() + n * K, &g_hi, &g_lo);
    route_extremes(wn, K, r, Style::weight, g_hi, g_lo, gw.data() + n * K);
  }
}

void lwc_forward(const MatD& w, const MatD& cmax, const MatD& cmin, MatD& y) {
  y.resize(w.rows(), w.cols());
  for (long n = 0; n < w.rows(); ++n) {
    double hi = w.row(n).maxCoeff() * sigmoid(cmax(n, 0));
    double lo = w.row(n).minCoeff() * sigmoid(cmin(n, 0));
    for (long k = 0; k < w.cols(); ++k) y(n, k) = std::min(std::max(w(n, k), lo), hi);
  }
}

void lwc_backward(const MatD& w, const MatD& cmax, const MatD& cmin, const MatD& gy, MatD& gw, MatD& g_cmax,
                  MatD& g_cmin) {
  for (long n = 0; n < w.rows(); ++n) {
    long i_max, i_min;
    double wmax = w.row(n).maxCoeff(&i_max), wmin = w.row(n).minCoeff(&i_min);
    double sh = sigmoid(cmax(n, 0)), sl = sigmoid(cmin(n, 0));
    double hi = wmax * sh, lo = wmin * sl;
    double g_hi = 0, g_lo = 0;  // torch.clamp(Tensor min, Tensor max) backward
    for (long k = 0; k < w.cols(); ++k) {
      double v = w(n, k);
      if (v < lo) g_lo += gy(n, k);
      else if (v > hi) g_hi += gy(n, k);
      else gw(n, k) += gy(n, k);
    }
    g_cmax(n, 0) += g_hi * wmax * sh * (1 - sh);
    g_cmin(n, 0) += g_lo * wmin * sl * (1 - sl);
    gw(n, i_max) += g_hi * sh;
    gw(n, i_min) += g_lo * sl;
  }
}

}  // namespace fb::flatquant

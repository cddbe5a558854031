// FlatQuant's fake quantizers with the gradients PyTorch autograd gives the official code
// (flatquant/quant_utils.py, flat_linear.py): rounding is a straight-through estimator,
// the clamp to the integer grid passes gradient only inside the grid, and the scale is
// NOT detached — its gradient flows into the group's max/min and, through them, into the
// learnable clipping logits (LAC/LWC) and the transformed values. Ties follow torch:
// amax/amin share the gradient evenly among equal extremes, max(dim)/min(dim) route it to
// the first index, maximum/minimum split it in half on equality.
#pragma once

#include "methods/flatquant/kron.h"

#include <cmath>
#include <vector>

namespace fb::flatquant {

struct QuantSpec {
  int bits = 16;
  bool sym = true;
  bool enabled() const { return bits < 16; }
  double qmax() const { return sym ? (1 << (bits - 1)) - 1 : (1 << bits) - 1; }
  double qmin() const { return sym ? -qmax() - 1 : 0; }
};

// Test hook for finite-difference checks of the straight-through estimator. torch's
// round_ste(v) = v + (round(v) − v).detach() is, locally, v plus a frozen offset; with a
// tape set, the quantizers record every offset, every clamp decision (torch's clamp passes
// gradient on the boundary, where a difference quotient would see a kink) and every zero
// point (whose round() has no gradient) on a first forward pass and replay them later, so a
// central difference sees exactly the function whose derivative the backward pass computes.
struct RoundingTape {
  std::vector<double> values;
  size_t cursor = 0;
  bool replay = false;
};
void set_rounding_tape(RoundingTape* tape);  // null: ordinary rounding
// Whether this thread records or replays a tape: work that rounds must then stay on this
// thread, in order (the tape is per thread and sequential).
bool rounding_tape_active();

inline double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }

// Activation quantizer (ActivationQuantizer): dynamic per group of `group` consecutive
// values of each row (group = row length: per token; group = head_dim: KV per head).
// With LAC (logits non-null) the group's max/min are scaled by σ(amax)/σ(amin). S is float
// (calibration) or double (tests); the range and scale are computed in double either way.
template <class S>
void act_quant_forward(const MatX<S>& x, int group, const QuantSpec& spec, const double* amax, const double* amin,
                       MatX<S>& y);
// Accumulates into gx (same shape as x) and, with LAC, into *g_amax / *g_amin.
template <class S>
void act_quant_backward(const MatX<S>& x, int group, const QuantSpec& spec, const double* amax, const double* amin,
                        const MatX<S>& gy, MatX<S>& gx, double* g_amax, double* g_amin);

// Weight quantizer (WeightQuantizer, per output row, scale clamped ≥ 1e-5).
void weight_quant_forward(const MatD& w, const QuantSpec& spec, MatD& y);
void weight_quant_backward(const MatD& w, const QuantSpec& spec, const MatD& gy, MatD& gw);

// Learnable weight clipping: row n clamped to [σ(cmin_n)·min_k w, σ(cmax_n)·max_k w].
void lwc_forward(const MatD& w, const MatD& cmax, const MatD& cmin, MatD& y);
// Accumulates into gw, g_cmax, g_cmin (N×1).
void lwc_backward(const MatD& w, const MatD& cmax, const MatD& cmin, const MatD& gy, MatD& gw, MatD& g_cmax,
                  MatD& g_cmin);

}  // namespace fb::flatquant

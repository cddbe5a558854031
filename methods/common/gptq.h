// GPTQ (Frantar et al., 2023; docs/methods.md §3.4): quantizes a weight column by column and spreads
// each column's rounding error over the not-yet-quantized columns through the inverse Hessian
// of the layer's calibration inputs, so the layer output X·Ŵᵀ stays close to X·Wᵀ.
#pragma once

#include "methods/common/calibration.h"
#include "methods/common/quant_linear.h"

#include <Eigen/Core>

namespace fb {

struct GptqOptions {
  int block = 128;         // columns per lazy-update block
  double damp = 0.01;      // λ: H += λ·mean(diag H)·I
  bool act_order = false;  // quantize columns in decreasing diag(H) order
  bool mse_clip = false;   // MSE clip search for the (fixed) scales
};

struct GptqInfo {
  int dead_columns = 0;    // inputs never active in calibration (H_kk = 0): zeroed
  double damp_used = 0;    // λ after any retries for a non-positive-definite H
};

// xtx = Σ_t x_tᵀ x_t over `tokens` calibration rows (H = 2·xtx / tokens). The quantizer's
// scales are fixed from the full W before the loop (groups keep their original columns under
// act-order). Returns the quantized weight; `info` (optional) receives diagnostics.
QuantizedWeight gptq_quantize(const Mat& W, const Eigen::MatrixXd& xtx, long tokens, QuantSpec spec,
                              const GptqOptions& opt, GptqInfo* info = nullptr);

}  // namespace fb

// FlattenQuant's per-layer INT4-or-INT8 choice (docs/methods.md §1.7, reconstructed in the style of
// TensorRT's entropy calibration so that the KL divergence is always finite):
//
//   P   = histogram of |v| on [0, R] with B = 2048 bins (values beyond R in the last bin)
//   Q   = P with each INT4 cell's mass spread evenly over that cell's non-empty bins
//         (cells: the 8 magnitude levels 0..7 of step R/7; a bin belongs to the level
//          nearest its centre)
//   KL4 = Σ P·log(P/Q)   and the layer runs INT4 iff KL4 ≤ γ.
//
// Q = P wherever P is flat inside each cell, so KL4 measures how much of the distribution's
// shape INT4 cannot represent: ~0 for a uniform-like tensor, large for a heavy-tailed one.
#pragma once

#include <string>
#include <vector>

namespace fb {

// A histogram accumulated over calibration batches, on a fixed range.
struct Histogram {
  float range = 0;          // R: abs mode [0, R]; signed mode [−R, R]
  bool is_signed = false;
  std::vector<double> counts;

  Histogram() = default;
  Histogram(float range, int bins, bool is_signed);
  void add(const float* values, long n);  // out-of-range values go to the end bins
  double total() const;
};

// Σ P·log(P/Q) over bins with P > 0, after normalising both. Q must be > 0 wherever P > 0
// (throws std::invalid_argument otherwise). 0 for P = Q, ≥ 0 always.
double kl_divergence(const std::vector<double>& p, const std::vector<double>& q);

// The quantized-reference Q of a histogram for a symmetric grid of `bits` (levels −2^(b−1)..2^(b−1)−1
// of step R/(2^(b−1)−1); abs mode keeps the non-negative levels).
std::vector<double> quantized_reference(const Histogram& h, int bits);

// KL(P ‖ Q_bits) of the histogram (KL4 for bits = 4).
double kl_quantization(const Histogram& h, int bits);

// KL of the distribution of |v| (or v) of one tensor, in one call (tests, weights).
double kl_of_values(const std::vector<float>& v, float range, int bits, int bins = 2048, bool is_signed = false);

// INT4 iff kl ≤ γ (γ < 0: never; γ = +inf: always).
inline int choose_bits(double kl4, double gamma) { return kl4 <= gamma ? 4 : 8; }

}  // namespace fb

// Fused activation operators that feed the integer GEMMs, each a plain reference beside a
// fast (AVX-512) kernel that computes bit-identical results:
//
//   FlattenQuant (docs/methods.md §1.5–1.6): A'[t,j] = A[t, src[j]] · inv_div[j] for j < K',
//   zero for K' ≤ j < K'', then per-tensor symmetric quantization with a static scale.
//   A staggered plan adds a constant offset (in quantization steps) to each copy before rounding.
//
//   FlatQuant (docs/methods.md §2.2): for each token x (width K = n1·n2) viewed row-major as
//   X (n1×n2), Y = P1ᵀ · X · P2, then per-token symmetric quantization with the learned
//   clipping the method deploys (kernels/lac.h): scale = max(max(Y)·hi, −min(Y)·lo)/qmax.
//
// Rounding is half to even (std::nearbyint / vcvtps2dq under the default rounding mode).
// Quantization multiplies by inv_scale = 1/scale (float), in both reference and fast code:
//   q = clamp(nearbyint(x · inv_scale), −qmax−1, qmax),   qmax = 2^(bits−1) − 1.
// The matrix products accumulate k = 0, 1, … with one fused multiply-add per term in both
// versions, so the fast kernels match the references exactly, not just closely.
#pragma once

#include "core/tensor.h"
#include "kernels/lac.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fb {

struct FlattenPlan {
  long k_in = 0;                  // K: width of the input rows
  std::vector<int32_t> src;       // K' source channels, each in [0, K)
  std::vector<float> inv_div;     // K' factors 1/n_k
  long k_out = 0;                 // K'' ≥ K': width of the output rows (zero padded)
  std::vector<float> step_offset; // empty, or K' offsets in quantization steps, |o| < 1/2, summing to 0 per channel
};

// How a channel's n copies divide its value.
//   equal      (the paper): n identical copies x/n. They round identically, so the channel keeps
//              the rounding error it had before the split: only unsplit channels gain from the
//              smaller per-tensor scale.
//   staggered: copy i also carries the offset o_i = (i − (n−1)/2)/n steps (Σ o_i = 0, so the float
//              identity holds). By Hermite's identity Σ_i round(y + o_i) = round(n·y), so the
//              copies' codes sum to the code of x at the new, finer step: every channel gains.
enum class SplitMode { equal, staggered };
SplitMode parse_split_mode(const std::string& name);  // throws naming the choices

// Channel k repeated copies[k] ≥ 1 times, copies adjacent, in the original order; K''
// rounded up to a multiple of pad_to (32 in FlattenQuant).
FlattenPlan make_flatten_plan(const std::vector<int>& copies, long pad_to = 32, SplitMode split = SplitMode::equal);
// Throws std::invalid_argument naming the first inconsistency.
void validate_flatten_plan(const FlattenPlan& plan);

// x with every column k clamped to ±limit[k] (FlattenQuant's outlier suppression before the flatten).
Mat clip_columns(const Mat& x, const std::vector<float>& limit);

// X' (T × K''): column j = X[:, src[j]] · inv_div[j], zero for the padding (the float reference
// of the runtime op; models/op_plan.cpp runs a plan's flatten with it).
Mat flatten_activations(const Mat& X, const FlattenPlan& plan);

// Q (T × k_out int8 codes) from A (T × k_in fp32). bits ∈ {4, 8}; scale > 0.
void flatten_quantize_ref(const float* A, long T, const FlattenPlan& plan, float scale, int bits, int8_t* Q);
void flatten_quantize(const float* A, long T, const FlattenPlan& plan, float scale, int bits, int8_t* Q,
                      int threads = 1);

struct KronFactors {
  long n1 = 0, n2 = 0;
  std::vector<float> p1;  // n1×n1 row-major
  std::vector<float> p2;  // n2×n2 row-major
};

// FlatQuant's factor sizes, by the method's own rule (kernels/kron_dims.h): the benchmarks time
// the split the method deploys (172 → 2×86, not the 4×43 of "the largest divisor ≤ √K").
std::pair<long, long> kron_factor_sizes(long K);

// Q (T × K int8 codes) and scales (T) from X (T × K fp32), K = n1·n2; both ratios ∈ (0, 1].
// An all-zero token gets scale 0 and codes 0.
void kron_quantize_ref(const float* X, long T, const KronFactors& f, int bits, ClipRatios clip, int8_t* Q,
                       float* scales);
void kron_quantize(const float* X, long T, const KronFactors& f, int bits, ClipRatios clip, int8_t* Q,
                   float* scales, int threads = 1);
// The transform alone (Y = P1ᵀ·X·P2 per token, reference order), for checks.
void kron_transform_ref(const float* X, long T, const KronFactors& f, float* Y);

// Whether flatten_quantize / kron_quantize run the AVX-512 kernels here (else the references).
bool fused_quant_fast_path();

}  // namespace fb

// Quantizer primitives (docs/methods.md §0): symmetric / asymmetric uniform grids of 2–8 bits,
// per-tensor, per-row (weights: per output channel; activations: per token) and per-group
// granularity, clip ratios, MSE clip search (docs/methods.md §3.1), INT4 packing.
//
// Conventions, shared by every quantized operator in the project:
//  * rounding is round-half-to-even (std::nearbyint under the default rounding mode), like
//    torch.round and the CUDA kernels the papers use;
//  * a code is q = clamp(nearbyint(x / s) + z, qmin, qmax) and x̂ = s · (q − z); symmetric grids
//    have z = 0 and [qmin, qmax] = [−2^(b−1), 2^(b−1) − 1], asymmetric grids [0, 2^b − 1];
//  * "integer codes" stored for integer GEMMs are signed bytes: asymmetric codes (and their zero
//    points) are shifted by −2^(b−1) so INT8-asymmetric fits int8 too (x̂ = s·(q − z) either way).
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <vector>

namespace fb {

using QMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Which values share one scale. Weights are N×K (row = output channel), activations T×K
// (row = token): per_channel and per_token both mean "one scale per row".
enum class Granularity { per_tensor, per_channel, per_token, per_group };

Granularity parse_granularity(const std::string& name);  // throws naming the valid choices
const char* granularity_name(Granularity g);

struct QuantSpec {
  int bits = 8;           // 2..8 quantize; ≥ 16 means "leave in floating point"
  bool sym = true;
  Granularity granularity = Granularity::per_channel;
  int group = 0;          // per_group: values per group along the last dimension
  float clip = 1.0f;      // range ratio c ∈ (0, 1]: scale from c·range (QuaRot uses 0.9 for activations)
  bool weight = false;    // zero-range groups: weights clamp the range to ≥ 1e-5, activations use s = 1

  bool enabled() const { return bits < 16; }
  int qmin() const { return sym ? -(1 << (bits - 1)) : 0; }
  int qmax() const { return sym ? (1 << (bits - 1)) - 1 : (1 << bits) - 1; }
  // Shift from the grid's codes to signed storage codes (0 for symmetric, −2^(b−1) for asymmetric).
  int storage_offset() const { return sym ? 0 : -(1 << (bits - 1)); }
  std::string describe() const;  // e.g. "W4 sym per_channel clip 0.9"
  void validate() const;         // throws std::invalid_argument on bits/group/clip out of range
};

// Scales and zero points for a rows × cols matrix. One entry per (row, group) — a row is one
// group for per-row granularity, and per-tensor keeps a single entry for every element.
struct QuantParams {
  std::vector<float> scale;
  std::vector<float> zero;  // integer-valued, grid convention (0 for symmetric)
  int rows = 0, cols = 0;
  int group = 0;            // columns per group
  bool per_tensor = false;

  int groups_per_row() const { return (cols + group - 1) / group; }
  int index(int row, int col) const { return per_tensor ? 0 : row * groups_per_row() + col / group; }
  float scale_at(int row, int col) const { return scale[index(row, col)]; }
  float zero_at(int row, int col) const { return zero[index(row, col)]; }
};

// Scale and zero point of one group with range [lo, hi] (brackets 0 first, then applies spec.clip).
struct ScaleZero {
  float scale = 1, zero = 0;
};
ScaleZero scale_from_range(float lo, float hi, const QuantSpec& spec);

inline float quantize_code(float x, float scale, float zero, int qmin, int qmax) {
  float q = std::nearbyint(x / scale) + zero;
  return q < qmin ? float(qmin) : (q > qmax ? float(qmax) : q);
}

// Dynamic parameters of X under spec (range of each group). `clips`, when given, holds one
// range ratio per row (per_tensor: one value; per_group: one per group) and replaces spec.clip.
QuantParams compute_params(const QMat& X, const QuantSpec& spec, const std::vector<float>* clips = nullptr);
// Static per-tensor parameters from a calibrated range (activations: abs-max over calibration).
QuantParams static_params(float lo, float hi, int rows, int cols, const QuantSpec& spec);

// Quantize–dequantize in place with the given parameters.
void fake_quantize(QMat& X, const QuantParams& p, const QuantSpec& spec);
// Dynamic quantize–dequantize (the fake-quant activation path): compute_params then fake_quantize.
void fake_quantize_dynamic(QMat& X, const QuantSpec& spec);
QMat fake_quantized(const QMat& X, const QuantSpec& spec);

// Signed storage codes (row-major rows × cols), see the header comment for the asymmetric shift.
std::vector<int8_t> quantize_codes(const QMat& X, const QuantParams& p, const QuantSpec& spec);
QMat dequantize_codes(const std::vector<int8_t>& codes, const QuantParams& p, const QuantSpec& spec);

// MSE clip search for weights (GPTQ repo's `mse` option, docs/methods.md §3.1): for p = 1 − i/grid,
// i < maxshrink·grid, shrink each unit's range to p·[lo, hi], quantize, score Σ|ŵ − w|^norm,
// keep the best p per unit (unit = row, or the tensor for per_tensor, or the group).
std::vector<float> search_clip_mse(const QMat& W, const QuantSpec& spec, int grid = 100, float maxshrink = 0.8f,
                                   float norm = 2.4f);

// INT4 packing: rows × cols codes in [−8, 7] → rows × ceil(cols/2) bytes; in each byte the low
// nibble holds the even column, the high nibble the odd column, two's complement.
std::vector<uint8_t> pack_int4(const int8_t* codes, int rows, int cols);
// (Row stride int4_row_bytes(cols), declared in kernels/gemm_ref.h.)
void unpack_int4(const uint8_t* packed, int rows, int cols, int8_t* codes);

}  // namespace fb

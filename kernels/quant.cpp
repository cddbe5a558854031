#include "kernels/quant.h"

#include "kernels/gemm_ref.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb {

Granularity parse_granularity(const std::string& name) {
  if (name == "per_tensor") return Granularity::per_tensor;
  if (name == "per_channel") return Granularity::per_channel;
  if (name == "per_token") return Granularity::per_token;
  if (name == "per_group") return Granularity::per_group;
  throw std::invalid_argument("unknown granularity '" + name +
                              "' (expected per_tensor, per_channel, per_token or per_group)");
}

const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::per_tensor: return "per_tensor";
    case Granularity::per_channel: return "per_channel";
    case Granularity::per_token: return "per_token";
    case Granularity::per_group: return "per_group";
  }
  return "?";
}

std::string QuantSpec::describe() const {
  if (!enabled()) return "fp";
  std::string s = fmt::format("{}-bit {} {}", bits, sym ? "sym" : "asym", granularity_name(granularity));
  if (granularity == Granularity::per_group) s += fmt::format(" g{}", group);
  if (clip != 1.0f) s += fmt::format(" clip {:g}", clip);
  return s;
}

void QuantSpec::validate() const {
  if (!enabled()) return;
  if (bits < 2 || bits > 8)
    throw std::invalid_argument(fmt::format("quantizer bits must be 2..8 (or 16 = off), got {}", bits));
  if (granularity == Granularity::per_group && group <= 0)
    throw std::invalid_argument(fmt::format("per_group quantization needs a group size > 0, got {}", group));
  if (!(clip > 0.f && clip <= 1.f))
    throw std::invalid_argument(fmt::format("clip ratio must be in (0, 1], got {}", clip));
}

ScaleZero scale_from_range(float lo, float hi, const QuantSpec& spec) {
  // The grid must contain 0 exactly (zero padding, ReLU outputs), so bracket it first.
  lo = std::min(lo, 0.f) * spec.clip;
  hi = std::max(hi, 0.f) * spec.clip;
  ScaleZero sz;
  if (spec.sym) {
    float a = std::max(-lo, hi);
    if (spec.weight) a = std::max(a, 1e-5f);
    sz.scale = a > 0 ? a / float(spec.qmax()) : 1.f;
    return sz;
  }
  if (spec.weight) {
    if (hi - lo < 1e-5f) hi = lo + 1e-5f;
  } else if (lo == 0 && hi == 0) {
    lo = -1, hi = 1;
  }
  sz.scale = (hi - lo) / float(spec.qmax());
  sz.zero = std::nearbyint(-lo / sz.scale);
  return sz;
}

namespace {

// Column layout of the parameter table for a rows × cols matrix.
QuantParams empty_params(int rows, int cols, const QuantSpec& spec) {
  QuantParams p;
  p.rows = rows;
  p.cols = cols;
  p.per_tensor = spec.granularity == Granularity::per_tensor;
  p.group = spec.granularity == Granularity::per_group ? std::min(spec.group, std::max(cols, 1)) : std::max(cols, 1);
  size_t n = p.per_tensor ? 1 : size_t(rows) * p.groups_per_row();
  p.scale.assign(n, 1.f);
  p.zero.assign(n, 0.f);
  return p;
}

template <class F>
void for_each_group(const QuantParams& p, F&& f) {  // f(index, row, col_begin, col_end)
  if (p.per_tensor) return f(0, 0, 0, p.cols);
  for (int r = 0; r < p.rows; ++r)
    for (int g = 0; g < p.groups_per_row(); ++g)
      f(r * p.groups_per_row() + g, r, g * p.group, std::min(p.cols, (g + 1) * p.group));
}

void group_range(const QMat& X, const QuantParams& p, int row, int c0, int c1, float& lo, float& hi) {
  if (p.per_tensor) {
    lo = X.size() ? X.minCoeff() : 0.f;
    hi = X.size() ? X.maxCoeff() : 0.f;
    return;
  }
  auto seg = X.row(row).segment(c0, c1 - c0);
  lo = seg.size() ? seg.minCoeff() : 0.f;
  hi = seg.size() ? seg.maxCoeff() : 0.f;
}

}  // namespace

QuantParams compute_params(const QMat& X, const QuantSpec& spec, const std::vector<float>* clips) {
  spec.validate();
  QuantParams p = empty_params(int(X.rows()), int(X.cols()), spec);
  if (clips && clips->size() != p.scale.size())
    throw std::invalid_argument(fmt::format("compute_params: {} clip ratios given for {} quantization groups",
                                            clips->size(), p.scale.size()));
  for_each_group(p, [&](int i, int r, int c0, int c1) {
    float lo, hi;
    group_range(X, p, r, c0, c1, lo, hi);
    QuantSpec s = spec;
    if (clips) s.clip = (*clips)[i];
    ScaleZero sz = scale_from_range(lo, hi, s);
    p.scale[i] = sz.scale;
    p.zero[i] = sz.zero;
  });
  return p;
}

QuantParams static_params(float lo, float hi, int rows, int cols, const QuantSpec& spec) {
  QuantSpec s = spec;
  s.granularity = Granularity::per_tensor;
  s.validate();
  QuantParams p = empty_params(rows, cols, s);
  ScaleZero sz = scale_from_range(lo, hi, s);
  p.scale[0] = sz.scale;
  p.zero[0] = sz.zero;
  return p;
}

void fake_quantize(QMat& X, const QuantParams& p, const QuantSpec& spec) {
  if (!spec.enabled()) return;
  const int qmin = spec.qmin(), qmax = spec.qmax();
  for (int r = 0; r < X.rows(); ++r)
    for (int c = 0; c < X.cols(); ++c) {
      int i = p.index(r, c);
      float s = p.scale[i], z = p.zero[i];
      X(r, c) = s * (quantize_code(X(r, c), s, z, qmin, qmax) - z);
    }
}

void fake_quantize_dynamic(QMat& X, const QuantSpec& spec) {
  if (!spec.enabled()) return;
  fake_quantize(X, compute_params(X, spec), spec);
}

QMat fake_quantized(const QMat& X, const QuantSpec& spec) {
  QMat out = X;
  fake_quantize_dynamic(out, spec);
  return out;
}

std::vector<int8_t> quantize_codes(const QMat& X, const QuantParams& p, const QuantSpec& spec) {
  const int qmin = spec.qmin(), qmax = spec.qmax(), off = spec.storage_offset();
  std::vector<int8_t> codes(size_t(X.rows()) * X.cols());
  for (int r = 0; r < X.rows(); ++r)
    for (int c = 0; c < X.cols(); ++c) {
      int i = p.index(r, c);
      codes[size_t(r) * X.cols() + c] = int8_t(int(quantize_code(X(r, c), p.scale[i], p.zero[i], qmin, qmax)) + off);
    }
  return codes;
}

QMat dequantize_codes(const std::vector<int8_t>& codes, const QuantParams& p, const QuantSpec& spec) {
  const int off = spec.storage_offset();
  QMat X(p.rows, p.cols);
  for (int r = 0; r < p.rows; ++r)
    for (int c = 0; c < p.cols; ++c) {
      int i = p.index(r, c);
      X(r, c) = p.scale[i] * (float(codes[size_t(r) * p.cols + c] - off) - p.zero[i]);
    }
  return X;
}

std::vector<float> search_clip_mse(const QMat& W, const QuantSpec& spec, int grid, float maxshrink, float norm) {
  QuantParams layout = compute_params(W, spec);
  const int n = int(layout.scale.size());
  std::vector<float> best_clip(n, 1.f), best_err(n, INFINITY);
  const int qmin = spec.qmin(), qmax = spec.qmax();
  for (int i = 0; i < int(maxshrink * grid); ++i) {
    QuantSpec s = spec;
    s.clip = 1.f - float(i) / float(grid);
    QuantParams p = compute_params(W, s);
    std::vector<double> err(n, 0.0);
    for (int r = 0; r < W.rows(); ++r)
      for (int c = 0; c < W.cols(); ++c) {
        int g = p.index(r, c);
        float sc = p.scale[g], z = p.zero[g];
        float d = sc * (quantize_code(W(r, c), sc, z, qmin, qmax) - z) - W(r, c);
        err[g] += std::pow(std::fabs(double(d)), double(norm));
      }
    for (int g = 0; g < n; ++g)
      if (err[g] < best_err[g]) best_err[g] = err[g], best_clip[g] = s.clip;
  }
  return best_clip;
}

std::vector<uint8_t> pack_int4(const int8_t* codes, int rows, int cols) {
  const long rb = int4_row_bytes(cols);
  std::vector<uint8_t> out(size_t(rows) * rb, 0);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      int v = codes[size_t(r) * cols + c];
      if (v < -8 || v > 7) throw std::out_of_range(fmt::format("pack_int4: code {} at ({}, {}) is outside [-8, 7]", v, r, c));
      uint8_t nib = uint8_t(v) & 0x0F;
      out[size_t(r) * rb + c / 2] |= (c % 2 == 0) ? nib : uint8_t(nib << 4);
    }
  return out;
}

void unpack_int4(const uint8_t* packed, int rows, int cols, int8_t* codes) {
  const long rb = int4_row_bytes(cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      uint8_t byte = packed[size_t(r) * rb + c / 2];
      int nib = (c % 2 == 0) ? (byte & 0x0F) : (byte >> 4);
      codes[size_t(r) * cols + c] = int8_t(nib >= 8 ? nib - 16 : nib);  // sign-extend the nibble
    }
}

}  // namespace fb

// References, plan helpers and dispatch for the fused activation operators
// (kernels/fused_quant.h). The fast kernels are in kernels/fused_quant_avx512.cpp.
#include "kernels/fused_quant.h"

#include <fmt/format.h>

#include "kernels/kron_dims.h"

#include "kernels/fused_quant_tiles.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace fb {

using namespace fused_detail;

namespace {

// Threads worth a fork/join for `work` element-operations (≈ 30 µs per thread at least).
int useful_threads(int threads, long work) {
  return int(std::max(1L, std::min(long(threads), work / (1L << 18))));
}

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("kernels/fused_quant: " + what); }

float qmax_of(int bits) {
  if (bits != 4 && bits != 8) fail("bits must be 4 or 8, got " + std::to_string(bits));
  return float((1 << (bits - 1)) - 1);
}

// The one quantization formula of this file (see the header); `offset` is in steps.
inline int8_t quantize_value(float x, float inv_scale, float qmax, float offset = 0.0f) {
  return int8_t(std::nearbyint(std::clamp(x * inv_scale + offset, -qmax - 1, qmax)));
}

void check_kron(const KronFactors& f, ClipRatios clip) {
  if (f.n1 <= 0 || f.n2 <= 0) fail("Kronecker factor sizes must be positive");
  if (long(f.p1.size()) != f.n1 * f.n1 || long(f.p2.size()) != f.n2 * f.n2)
    fail("P1 must hold n1·n1 and P2 n2·n2 values");
  for (float r : {clip.hi, clip.lo})
    if (!(r > 0 && r <= 1)) fail("clip ratio must be in (0, 1], got " + std::to_string(r));
}

float quantize_row_ref(const float* y, long len, float qmax, ClipRatios clip, int8_t* q) {
  float max = 0, min = 0;
  for (long i = 0; i < len; ++i) max = std::max(max, y[i]), min = std::min(min, y[i]);
  const float scale = lac_symmetric_range(max, min, clip) / qmax;
  const float inv = scale > 0 ? 1.0f / scale : 0.0f;
  for (long i = 0; i < len; ++i) q[i] = quantize_value(y[i], inv, qmax);
  return scale;
}

// C (m×n) = A (m×k, row stride lda) · B (k×n), fma-accumulated in k order from zero.
void sgemm_in_order(const float* A, long lda, const float* B, float* C, long m, long n, long k) {
  for (long i = 0; i < m; ++i)
    for (long j = 0; j < n; ++j) {
      float acc = 0;
      for (long l = 0; l < k; ++l) acc = std::fma(A[i * lda + l], B[l * n + j], acc);
      C[i * n + j] = acc;
    }
}

std::vector<float> transposed(const std::vector<float>& P, long n) {
  std::vector<float> T(P.size());
  for (long i = 0; i < n; ++i)
    for (long j = 0; j < n; ++j) T[j * n + i] = P[i * n + j];
  return T;
}

// How the fast kernel fetches each chunk of 16 outputs (see ChunkFetch): a plain load when
// the sources are consecutive, a two-register permute when they all lie within 32 floats
// of the first (a repeated channel shifts the run by one), else a gather.
std::vector<uint8_t> chunk_fetch_modes(const FlattenPlan& plan) {
  const long k_flat = long(plan.src.size());
  std::vector<uint8_t> modes((k_flat + 15) / 16, kFetchGather);
  for (long c = 0; c < long(modes.size()); ++c) {
    if (16 * c + 16 > k_flat) continue;  // partial chunk: masked gather
    const int32_t* src = plan.src.data() + 16 * c;
    bool consecutive = true, near = src[0] + 32 <= plan.k_in;
    for (long i = 1; i < 16; ++i) {
      consecutive = consecutive && src[i] == src[0] + i;
      near = near && src[i] >= src[0] && src[i] < src[0] + 32;
    }
    modes[c] = consecutive ? kFetchLoad : near ? kFetchPermute : kFetchGather;
  }
  return modes;
}

}  // namespace

bool fused_quant_fast_path() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}

SplitMode parse_split_mode(const std::string& name) {
  if (name == "equal") return SplitMode::equal;
  if (name == "staggered") return SplitMode::staggered;
  fail("unknown split mode '" + name + "' (known: equal, staggered)");
}

FlattenPlan make_flatten_plan(const std::vector<int>& copies, long pad_to, SplitMode split) {
  if (pad_to < 1) fail("pad_to must be ≥ 1");
  FlattenPlan plan;
  plan.k_in = long(copies.size());
  for (long k = 0; k < plan.k_in; ++k) {
    if (copies[k] < 1) fail("channel " + std::to_string(k) + " has " + std::to_string(copies[k]) + " copies (≥ 1)");
    const int n = copies[k];
    for (int c = 0; c < n; ++c) {
      plan.src.push_back(int32_t(k));
      plan.inv_div.push_back(1.0f / float(n));
      // (2c − (n−1)) / (2n): symmetric around 0, so each channel's offsets cancel exactly in float.
      if (split == SplitMode::staggered) plan.step_offset.push_back(float(2 * c - (n - 1)) / float(2 * n));
    }
  }
  plan.k_out = (long(plan.src.size()) + pad_to - 1) / pad_to * pad_to;
  return plan;
}

void validate_flatten_plan(const FlattenPlan& plan) {
  if (plan.src.size() != plan.inv_div.size())
    fail("plan has " + std::to_string(plan.src.size()) + " sources but " + std::to_string(plan.inv_div.size()) +
         " divisors");
  if (plan.k_out < long(plan.src.size())) fail("plan's padded width k_out is below its flattened width");
  if (!plan.step_offset.empty() && plan.step_offset.size() != plan.src.size())
    fail("plan has " + std::to_string(plan.src.size()) + " sources but " + std::to_string(plan.step_offset.size()) +
         " step offsets");
  for (float o : plan.step_offset)
    if (!(std::fabs(o) < 0.5f)) fail("plan step offset " + std::to_string(o) + " is outside (−1/2, 1/2)");
  for (size_t j = 0; j < plan.src.size(); ++j)
    if (plan.src[j] < 0 || plan.src[j] >= plan.k_in)
      fail("plan source " + std::to_string(j) + " = " + std::to_string(plan.src[j]) + " is outside [0, " +
           std::to_string(plan.k_in) + ")");
}

void flatten_quantize_ref(const float* A, long T, const FlattenPlan& plan, float scale, int bits, int8_t* Q) {
  validate_flatten_plan(plan);
  if (!(scale > 0)) fail("the static activation scale must be positive");
  const float qmax = qmax_of(bits), inv_scale = 1.0f / scale;
  const long k_flat = long(plan.src.size());
  for (long t = 0; t < T; ++t) {
    const float* a = A + t * plan.k_in;
    int8_t* q = Q + t * plan.k_out;
    const float* off = plan.step_offset.empty() ? nullptr : plan.step_offset.data();
    for (long j = 0; j < k_flat; ++j)
      q[j] = quantize_value(a[plan.src[j]] * plan.inv_div[j], inv_scale, qmax, off ? off[j] : 0.0f);
    std::fill(q + k_flat, q + plan.k_out, int8_t(0));
  }
}

void flatten_quantize(const float* A, long T, const FlattenPlan& plan, float scale, int bits, int8_t* Q,
                      int threads) {
  if (!fused_quant_fast_path()) return flatten_quantize_ref(A, T, plan, scale, bits, Q);
  validate_flatten_plan(plan);
  if (!(scale > 0)) fail("the static activation scale must be positive");
  const float qmax = qmax_of(bits), inv_scale = 1.0f / scale;
  const std::vector<uint8_t> modes = chunk_fetch_modes(plan);
  const int team = useful_threads(threads, T * plan.k_out);
#pragma omp parallel for if (team > 1) num_threads(team) schedule(static)
  for (long t = 0; t < T; ++t)
    flatten_row_avx512(A + t * plan.k_in, plan.src.data(), plan.inv_div.data(),
                       plan.step_offset.empty() ? nullptr : plan.step_offset.data(), modes.data(),
                       long(plan.src.size()), plan.k_out, inv_scale, qmax, Q + t * plan.k_out);
}

std::pair<long, long> kron_factor_sizes(long K) { return flatquant_kron_dims(K); }

void kron_transform_ref(const float* X, long T, const KronFactors& f, float* Y) {
  const long K = f.n1 * f.n2;
  const std::vector<float> p1t = transposed(f.p1, f.n1);
  std::vector<float> Z(K);
  for (long t = 0; t < T; ++t) {
    sgemm_in_order(X + t * K, f.n2, f.p2.data(), Z.data(), f.n1, f.n2, f.n2);     // X · P2
    sgemm_in_order(p1t.data(), f.n1, Z.data(), Y + t * K, f.n1, f.n2, f.n1);      // P1ᵀ · (X · P2)
  }
}

void kron_quantize_ref(const float* X, long T, const KronFactors& f, int bits, ClipRatios clip, int8_t* Q,
                       float* scales) {
  check_kron(f, clip);
  const float qmax = qmax_of(bits);
  const long K = f.n1 * f.n2;
  std::vector<float> Y(K);
  for (long t = 0; t < T; ++t) {
    kron_transform_ref(X + t * K, 1, f, Y.data());
    scales[t] = quantize_row_ref(Y.data(), K, qmax, clip, Q + t * K);
  }
}

void kron_quantize(const float* X, long T, const KronFactors& f, int bits, ClipRatios clip, int8_t* Q,
                   float* scales, int threads) {
  if (!fused_quant_fast_path()) return kron_quantize_ref(X, T, f, bits, clip, Q, scales);
  check_kron(f, clip);
  const float qmax = qmax_of(bits);
  const long n1 = f.n1, n2 = f.n2, K = n1 * n2;
  const std::vector<float> p1t = transposed(f.p1, n1);
  const int team = useful_threads(threads, T * K * (n1 + n2) / 4);  // fmas, 4 per element-op
#pragma omp parallel if (team > 1) num_threads(team)
  {
    std::vector<float> Z(K), Y(K);
#pragma omp for schedule(static)
    for (long t = 0; t < T; ++t) {
      small_sgemm_avx512(X + t * K, n2, f.p2.data(), n2, Z.data(), n2, n1, n2, n2);
      small_sgemm_avx512(p1t.data(), n1, Z.data(), n2, Y.data(), n2, n1, n2, n1);
      scales[t] = quantize_row_avx512(Y.data(), K, qmax, clip, Q + t * K);
    }
  }
}

Mat flatten_activations(const Mat& X, const FlattenPlan& plan) {
  if (X.cols() != plan.k_in)
    throw std::invalid_argument(fmt::format("flatten_activations: input has {} channels, plan expects {}", X.cols(),
                                            plan.k_in));
  Mat out = Mat::Zero(X.rows(), plan.k_out);
  const long kf = long(plan.src.size());
  for (long t = 0; t < X.rows(); ++t) {
    const float* x = X.row(t).data();
    float* o = out.row(t).data();
    for (long j = 0; j < kf; ++j) o[j] = x[plan.src[size_t(j)]] * plan.inv_div[size_t(j)];
  }
  return out;
}

Mat clip_columns(const Mat& x, const std::vector<float>& limit) {
  if (long(limit.size()) != x.cols())
    throw std::invalid_argument(fmt::format("clip_columns: {} limits for {} columns", limit.size(), x.cols()));
  Mat out = x;
  for (long t = 0; t < out.rows(); ++t) {
    float* row = out.row(t).data();
    for (long k = 0; k < out.cols(); ++k) row[k] = std::clamp(row[k], -limit[size_t(k)], limit[size_t(k)]);
  }
  return out;
}

}  // namespace fb

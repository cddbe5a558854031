#include "kernels/cuda/reference.h"

#include "kernels/gemm_ref.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb::cuda_ref {

float round_to_half(float v) { return static_cast<float>(static_cast<_Float16>(v)); }

std::vector<float> gemm_dequant(const int8_t* a, const void* b, bool b_int4, long m, long n, long k,
                                const std::vector<float>& sa, const std::vector<float>& sb) {
  std::vector<int32_t> c(size_t(m * n));
  if (b_int4) gemm_s8s4s32_ref(a, static_cast<const uint8_t*>(b), c.data(), m, n, k);
  else gemm_s8s8s32_ref(a, static_cast<const int8_t*>(b), c.data(), m, n, k);
  std::vector<float> y(c.size());
  for (long i = 0; i < m; ++i)
    for (long j = 0; j < n; ++j)
      y[i * n + j] = float(c[i * n + j]) * sa[sa.size() == 1 ? 0 : i] * sb[sb.size() == 1 ? 0 : j];
  return y;
}

namespace {
int8_t code(float v, float qmax) { return static_cast<int8_t>(std::clamp(std::rint(v), -qmax - 1.0f, qmax)); }
}  // namespace

std::vector<int8_t> flatten_quantize(const std::vector<float>& a, long tokens, long k, const std::vector<int>& src,
                                     const std::vector<float>& inv_div, float inv_scale,
                                     const std::vector<float>& step_offset) {
  const long k_pad = long(src.size());
  std::vector<int8_t> q(size_t(tokens * k_pad));
  for (long t = 0; t < tokens; ++t)
    for (long j = 0; j < k_pad; ++j) {
      float v = src[j] < 0 ? 0.0f : (a[t * k + src[j]] * inv_div[j]) * inv_scale;
      if (!step_offset.empty()) v += step_offset[j];
      q[t * k_pad + j] = code(v, 127.0f);
    }
  return q;
}

std::vector<int8_t> kron_quantize(const std::vector<float>& x, long tokens, int n1, int n2,
                                  const std::vector<float>& p1, const std::vector<float>& p2, int bits,
                                  ClipRatios clip, std::vector<float>& scales) {
  const long k = long(n1) * n2;
  const float qmax = bits == 8 ? 127.0f : 7.0f;
  std::vector<int8_t> q(size_t(tokens * k));
  std::vector<float> t_mat(static_cast<size_t>(k)), y(static_cast<size_t>(k));
  scales.assign(size_t(tokens), 0.0f);
  for (long t = 0; t < tokens; ++t) {
    const float* xt = x.data() + t * k;
    for (int i = 0; i < n1; ++i)  // T = X·P2, rounded to fp16
      for (int j = 0; j < n2; ++j) {
        double s = 0;
        for (int l = 0; l < n2; ++l) s += double(xt[i * n2 + l]) * p2[size_t(l) * n2 + j];
        t_mat[size_t(i) * n2 + j] = round_to_half(float(s));
      }
    float max = 0, min = 0;
    for (int i = 0; i < n1; ++i)  // Y = P1ᵀ·T
      for (int j = 0; j < n2; ++j) {
        double s = 0;
        for (int l = 0; l < n1; ++l) s += double(p1[size_t(l) * n1 + i]) * t_mat[size_t(l) * n2 + j];
        y[size_t(i) * n2 + j] = float(s);
        max = std::max(max, float(s)), min = std::min(min, float(s));
      }
    const float range = lac_symmetric_range(max, min, clip);
    const float scale = range > 0 ? range / qmax : 1.0f;
    scales[t] = scale;
    const float inv_scale = 1.0f / scale;  // the GPU multiplies by the reciprocal too
    for (long e = 0; e < k; ++e) q[t * k + e] = code(y[e] * inv_scale, qmax);
  }
  return q;
}

}  // namespace fb::cuda_ref

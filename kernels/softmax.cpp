#include "kernels/softmax.h"

#include "kernels/softmax_detail.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace fb {

using namespace softmax_detail;

float exp_nonpositive_ref(float x) {
  x = std::clamp(x, kExpLo, 0.0f);
  const float n = std::nearbyint(x * kLog2e);
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = kPoly[0];
  for (int i = 1; i < 6; ++i) p = std::fma(p, r, kPoly[i]);
  const float y = std::fma(p, r * r, r) + 1.0f;
  return y * std::bit_cast<float>(uint32_t(int32_t(n) + 127) << 23);
}

void softmax_row_ref(float* x, long n, float scale) {
  if (n <= 0) return;
  const float max = *std::max_element(x, x + n);
  float lanes[kLanes] = {};
  for (long i = 0; i < n; ++i) {
    x[i] = exp_nonpositive_ref((x[i] - max) * scale);
    lanes[i % kLanes] += x[i];
  }
  float sum = 0;
  for (float l : lanes) sum += l;
  for (long i = 0; i < n; ++i) x[i] /= sum;
}

bool softmax_fast_path() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return yes;
}

void softmax_row(float* x, long n, float scale) {
  if (softmax_fast_path()) softmax_row_avx512(x, n, scale);
  else softmax_row_ref(x, n, scale);
}

}  // namespace fb

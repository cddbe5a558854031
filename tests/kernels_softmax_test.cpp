// The attention-row softmax (kernels/softmax.h): its exp against the double exp, the row
// against the plain formula, and the AVX-512 kernel bit-identical to the reference.
#include "kernels/softmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace fb {
namespace {

int ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4), std::memcpy(&ib, &b, 4);
  return std::abs(ia - ib);
}

TEST(KernelsSoftmax, ExpWithinTwoUlpOnItsDomain) {
  int worst = 0;
  for (float x = -87.0f; x <= 0.0f; x += 0.000731f) worst = std::max(worst, ulp_distance(exp_nonpositive_ref(x),
                                                                                        float(std::exp(double(x)))));
  EXPECT_LE(worst, 2);
  EXPECT_EQ(exp_nonpositive_ref(0.0f), 1.0f);
  EXPECT_GT(exp_nonpositive_ref(-1000.0f), 0.0f);  // clamped to exp(−87.3), never a bad exponent
  EXPECT_LT(exp_nonpositive_ref(-1000.0f), 1.3e-38f);
}

std::vector<float> random_row(long n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(KernelsSoftmax, RowMatchesThePlainFormula) {
  for (long n : {1L, 7L, 16L, 33L, 512L}) {
    std::vector<float> x = random_row(n, uint32_t(n)), p = x;
    softmax_row_ref(p.data(), n, 0.125f);
    double mx = x[0], sum = 0;
    for (float v : x) mx = std::max(mx, double(v));
    for (float v : x) sum += std::exp((v - mx) * 0.125);
    double total = 0;
    for (long i = 0; i < n; ++i) {
      EXPECT_NEAR(p[i], std::exp((x[i] - mx) * 0.125) / sum, 2e-6 * (1 + p[i])) << n << " " << i;
      total += p[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-5) << n;
  }
}

TEST(KernelsSoftmax, FastKernelBitIdenticalToReference) {
  if (!softmax_fast_path()) GTEST_SKIP() << "no AVX-512 here: softmax_row runs the reference itself";
  for (long n : {1L, 5L, 16L, 17L, 64L, 100L, 511L, 512L}) {
    for (float scale : {1.0f, 0.125f, 0.353553f}) {
      std::vector<float> want = random_row(n, uint32_t(7 * n + 1)), got = want;
      softmax_row_ref(want.data(), n, scale);
      softmax_row(got.data(), n, scale);
      EXPECT_EQ(got, want) << "n=" << n << " scale=" << scale;
    }
  }
}

}  // namespace
}  // namespace fb

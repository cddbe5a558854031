// The fused activation operators (kernels/fused_quant.h): references on hand-worked cases,
// fast kernels bit-identical to the references on odd shapes.
#include "kernels/fused_quant.h"
#include "methods/flatquant/deploy.h"
#include "methods/flatquant/kron.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

namespace fb {
namespace {

std::vector<float> random_floats(long count, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(KernelsFused, FlattenPlanRepeatsChannelsAdjacentAndPads) {
  FlattenPlan plan = make_flatten_plan({1, 3, 1, 2}, 8);
  EXPECT_EQ(plan.k_in, 4);
  EXPECT_EQ(plan.src, (std::vector<int32_t>{0, 1, 1, 1, 2, 3, 3}));
  EXPECT_FLOAT_EQ(plan.inv_div[1], 1.0f / 3);
  EXPECT_FLOAT_EQ(plan.inv_div[6], 0.5f);
  EXPECT_EQ(plan.k_out, 8);
  EXPECT_THROW(make_flatten_plan({1, 0}), std::invalid_argument);
}

TEST(KernelsFused, FlattenQuantizeRefHandWorked) {
  // Channel 1 (value 6) split in 3 → three 2s; scale 0.5 → codes 4; channel 0: 0.25/0.5 = 0.5 → 0
  // (half to even); channel 2: 100 saturates at 127; one zero pad column.
  FlattenPlan plan = make_flatten_plan({1, 3, 1}, 6);
  std::vector<float> A = {0.25f, 6.0f, 100.0f};
  std::vector<int8_t> Q(6, 99);
  flatten_quantize_ref(A.data(), 1, plan, 0.5f, 8, Q.data());
  EXPECT_EQ(Q, (std::vector<int8_t>{0, 4, 4, 4, 127, 0}));
  flatten_quantize_ref(A.data(), 1, plan, 0.5f, 4, Q.data());
  EXPECT_EQ(Q, (std::vector<int8_t>{0, 4, 4, 4, 7, 0}));
}

TEST(KernelsFused, FlattenQuantizeRejectsBadInput) {
  FlattenPlan plan = make_flatten_plan({1, 2});
  std::vector<float> A(2, 1.0f);
  std::vector<int8_t> Q(plan.k_out);
  EXPECT_THROW(flatten_quantize_ref(A.data(), 1, plan, 0.0f, 8, Q.data()), std::invalid_argument);
  EXPECT_THROW(flatten_quantize_ref(A.data(), 1, plan, 1.0f, 3, Q.data()), std::invalid_argument);
  FlattenPlan offsets = make_flatten_plan({1, 2}, 32, SplitMode::staggered);
  offsets.step_offset.pop_back();
  EXPECT_THROW(flatten_quantize(A.data(), 1, offsets, 1.0f, 8, Q.data()), std::invalid_argument);
  offsets.step_offset.push_back(0.5f);
  EXPECT_THROW(flatten_quantize(A.data(), 1, offsets, 1.0f, 8, Q.data()), std::invalid_argument);
  EXPECT_THROW(parse_split_mode("dithered"), std::invalid_argument);
  plan.src[0] = 5;
  EXPECT_THROW(flatten_quantize(A.data(), 1, plan, 1.0f, 8, Q.data()), std::invalid_argument);
}

TEST(KernelsFused, FlattenQuantizeFastMatchesReference) {
  if (!fused_quant_fast_path()) GTEST_SKIP() << "no AVX-512 here: flatten_quantize runs the reference itself";
  const long T = 13, K = 203;  // chunks that load, permute (after repeats), gather (near the end), partial
  std::vector<int> copies(K, 1);
  for (long k = 5; k < K; k += 37) copies[k] = 2 + int(k % 3);
  FlattenPlan plan = make_flatten_plan(copies);
  auto A = random_floats(T * K, -3.0f, 3.0f, 1);
  for (SplitMode split : {SplitMode::equal, SplitMode::staggered})
    for (int bits : {4, 8}) {
      const FlattenPlan p = make_flatten_plan(copies, 32, split);
      ASSERT_EQ(p.step_offset.size(), split == SplitMode::staggered ? p.src.size() : 0u);
      std::vector<int8_t> want(T * p.k_out), got(T * p.k_out, 55);
      flatten_quantize_ref(A.data(), T, p, 0.02f, bits, want.data());
      flatten_quantize(A.data(), T, p, 0.02f, bits, got.data(), 2);
      EXPECT_EQ(got, want) << "bits=" << bits << " staggered=" << (split == SplitMode::staggered);
    }
  // Sources in reverse order: every full chunk needs the gather path.
  FlattenPlan reversed = plan;
  for (size_t j = 0; j < reversed.src.size(); ++j) reversed.src[j] = int32_t(K - 1 - long(j) % K);
  std::vector<int8_t> want(T * plan.k_out), got(T * plan.k_out, 55);
  flatten_quantize_ref(A.data(), T, reversed, 0.02f, 8, want.data());
  flatten_quantize(A.data(), T, reversed, 0.02f, 8, got.data(), 1);
  EXPECT_EQ(got, want) << "reversed sources";
}

// Hermite's identity Σ_i round(y + o_i) = round(n·y): a staggered channel's copies sum to the
// code of x at the step s itself, while n equal copies sum to n·round(x/(n·s)) — the n× coarser
// step. Values within 1e-3 steps of a rounding boundary are left out (float rounding of y).
TEST(KernelsFused, StaggeredCopiesSumToTheCodeAtTheFineStep) {
  const float s = 0.01f;
  const auto values = random_floats(4000, -0.07f, 0.07f, 22);  // |x| ≤ 7 steps: no INT4 saturation
  for (int n = 1; n <= 7; ++n) {
    const FlattenPlan staggered = make_flatten_plan({n}, 8, SplitMode::staggered);
    const FlattenPlan equal = make_flatten_plan({n}, 8);
    double err_staggered = 0, err_equal = 0;
    for (float x : values) {
      std::vector<int8_t> qs(8), qe(8);
      flatten_quantize_ref(&x, 1, staggered, s, 4, qs.data());
      flatten_quantize_ref(&x, 1, equal, s, 4, qe.data());
      int sum_s = 0, sum_e = 0;
      for (int i = 0; i < n; ++i) sum_s += qs[size_t(i)], sum_e += qe[size_t(i)];
      const double y = double(x) / s;
      err_staggered += std::pow(sum_s * s - x, 2), err_equal += std::pow(sum_e * s - x, 2);
      if (std::fabs(y - std::floor(y) - 0.5) < 1e-3) continue;
      ASSERT_EQ(sum_s, int(std::lround(y))) << "n " << n << " x " << x;
      const double ye = y / n;
      if (std::fabs(ye - std::floor(ye) - 0.5) < 1e-3) continue;
      ASSERT_EQ(sum_e, n * int(std::lround(ye))) << "n " << n << " x " << x;
    }
    if (n >= 2) {
      EXPECT_GT(err_equal, 2.0 * err_staggered) << "n " << n;  // ≈ n² × for uniform x
    }
  }
}

TEST(KernelsFused, FusedOperatorsThreadedMatchReference) {
  if (!fused_quant_fast_path()) GTEST_SKIP() << "no AVX-512 here: the operators run the references themselves";
  // Large enough that both operators fork two threads.
  std::vector<int> copies(1000, 1);
  for (long k = 0; k < 1000; k += 64) copies[k] = 3;
  FlattenPlan plan = make_flatten_plan(copies);
  const long T = 600;
  auto A = random_floats(T * 1000, -1.0f, 1.0f, 10);
  std::vector<int8_t> want(T * plan.k_out), got(T * plan.k_out);
  flatten_quantize_ref(A.data(), T, plan, 0.01f, 8, want.data());
  flatten_quantize(A.data(), T, plan, 0.01f, 8, got.data(), 2);
  EXPECT_EQ(got, want);

  KronFactors f{64, 64, random_floats(64 * 64, -0.2f, 0.2f, 11), random_floats(64 * 64, -0.2f, 0.2f, 12)};
  const long tokens = 40;
  auto X = random_floats(tokens * 4096, -1.0f, 1.0f, 13);
  std::vector<int8_t> qw(tokens * 4096), qg(tokens * 4096);
  std::vector<float> sw(tokens), sg(tokens);
  kron_quantize_ref(X.data(), tokens, f, 4, ClipRatios{}, qw.data(), sw.data());
  kron_quantize(X.data(), tokens, f, 4, ClipRatios{}, qg.data(), sg.data(), 2);
  EXPECT_EQ(qg, qw);
  EXPECT_EQ(sg, sw);
}

TEST(KernelsFused, KronFactorSizesMatchFlatQuant) {
  EXPECT_EQ(kron_factor_sizes(4096), (std::pair<long, long>{64, 64}));
  EXPECT_EQ(kron_factor_sizes(11008), (std::pair<long, long>{86, 128}));
  EXPECT_EQ(kron_factor_sizes(14336), (std::pair<long, long>{112, 128}));
  EXPECT_EQ(kron_factor_sizes(28672), (std::pair<long, long>{128, 224}));
  EXPECT_EQ(kron_factor_sizes(5120), (std::pair<long, long>{64, 80}));
  EXPECT_EQ(kron_factor_sizes(13), (std::pair<long, long>{1, 13}));
  // The method's rule, not "the largest divisor ≤ √K" (which gives 4×43 and 25×40).
  EXPECT_EQ(kron_factor_sizes(172), (std::pair<long, long>{2, 86}));
  EXPECT_EQ(kron_factor_sizes(1000), (std::pair<long, long>{20, 50}));
  for (long K : {64L, 172L, 176L, 4096L, 11008L}) {
    const auto [n1, n2] = flatquant::decompose_dim(int(K));
    EXPECT_EQ(kron_factor_sizes(K), (std::pair<long, long>{n1, n2})) << K;
  }
  EXPECT_THROW(kron_factor_sizes(86), std::invalid_argument) << "86 ≡ 2 (mod 4) has no FlatQuant split";
}

TEST(KernelsFused, KronTransformEqualsKroneckerProduct) {
  // x · (P1 ⊗ P2) with the Kronecker product formed explicitly (invariant T-1).
  const long n1 = 2, n2 = 3, K = 6;
  KronFactors f{n1, n2, random_floats(n1 * n1, -1, 1, 2), random_floats(n2 * n2, -1, 1, 3)};
  auto x = random_floats(K, -1, 1, 4);
  std::vector<float> y(K);
  kron_transform_ref(x.data(), 1, f, y.data());
  for (long col = 0; col < K; ++col) {
    double want = 0;
    for (long row = 0; row < K; ++row)
      want += double(x[row]) * f.p1[(row / n2) * n1 + col / n2] * f.p2[(row % n2) * n2 + col % n2];
    EXPECT_NEAR(y[col], want, 1e-5) << "column " << col;
  }
}

TEST(KernelsFused, KronQuantizeRefScaleAndCodes) {
  // Identity factors: the transform is a no-op, so the codes are plain per-token RTN.
  KronFactors f{1, 4, {1.0f}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}};
  std::vector<float> X = {0.5f, -7.0f, 3.5f, 0.0f, 0, 0, 0, 0};
  std::vector<int8_t> Q(8);
  std::vector<float> s(2);
  kron_quantize_ref(X.data(), 2, f, 4, ClipRatios{}, Q.data(), s.data());
  EXPECT_FLOAT_EQ(s[0], 1.0f);
  EXPECT_EQ(std::vector<int8_t>(Q.begin(), Q.begin() + 4), (std::vector<int8_t>{0, -7, 4, 0}));  // 3.5 → 4 (even)
  EXPECT_FLOAT_EQ(s[1], 0.0f);
  EXPECT_EQ(std::vector<int8_t>(Q.begin() + 4, Q.end()), (std::vector<int8_t>{0, 0, 0, 0}));
  kron_quantize_ref(X.data(), 1, f, 4, {0.5f, 0.5f}, Q.data(), s.data());  // clip: scale 0.5, −7 saturates at −8
  EXPECT_FLOAT_EQ(s[0], 0.5f);
  EXPECT_EQ(Q[1], -8);
  // LAC is two-sided: the max shrinks by hi, the min by lo, and the larger magnitude sets the scale.
  kron_quantize_ref(X.data(), 1, f, 4, {1.0f, 0.25f}, Q.data(), s.data());  // max(3.5·1, 7·0.25) / 7
  EXPECT_FLOAT_EQ(s[0], 0.5f);
  kron_quantize_ref(X.data(), 1, f, 4, {0.25f, 1.0f}, Q.data(), s.data());  // max(3.5·0.25, 7·1) / 7
  EXPECT_FLOAT_EQ(s[0], 1.0f);
}

// The kernel the benchmarks time quantizes as the method's deployed operator does
// (methods/flatquant/deploy.cpp): with identity factors, the same scales for the same learned
// clipping ratios, and the same codes except where x/s and x·(1/s) round to different sides of a tie.
TEST(KernelsFused, KronQuantizeClipsAsFlatQuantDeploys) {
  const long T = 64, K = 96;
  const auto [n1, n2] = kron_factor_sizes(K);
  std::vector<float> p1(n1 * n1, 0.0f), p2(n2 * n2, 0.0f);
  for (long i = 0; i < n1; ++i) p1[i * n1 + i] = 1;
  for (long i = 0; i < n2; ++i) p2[i * n2 + i] = 1;
  const KronFactors f{n1, n2, p1, p2};
  const auto X = random_floats(T * K, -1.5f, 1.0f, 21);  // asymmetric, so max·hi and −min·lo compete
  QuantSpec spec;
  spec.bits = 4, spec.sym = true, spec.granularity = Granularity::per_token;
  for (ClipRatios clip : {ClipRatios{0.98f, 0.90f}, ClipRatios{0.6f, 0.95f}}) {
    std::vector<int8_t> q(T * K);
    std::vector<float> scales(T);
    kron_quantize(X.data(), T, f, 4, clip, q.data(), scales.data(), 1);
    const Mat x = Eigen::Map<const Mat>(X.data(), T, K);
    const flatquant::TokenCodes want = flatquant::quantize_groups(x, int(K), spec, clip);
    EXPECT_EQ(scales, want.scale) << clip.hi << "/" << clip.lo;
    long differ = 0;
    for (long i = 0; i < T * K; ++i) {
      EXPECT_LE(std::abs(int(q[i]) - int(want.codes[i])), 1) << i;
      differ += q[i] != want.codes[i];
    }
    EXPECT_LE(differ, T * K / 1000) << "more than ties differ";
  }
}

TEST(KernelsFused, KronQuantizeFastMatchesReference) {
  if (!fused_quant_fast_path()) GTEST_SKIP() << "no AVX-512 here: kron_quantize runs the reference itself";
  for (long K : {4096L, 1000L, 13L * 7L}) {  // (64, 64), (20, 50), (7, 13): odd, unmasked and masked widths
    const auto [n1, n2] = kron_factor_sizes(K);
    KronFactors f{n1, n2, random_floats(n1 * n1, -0.3f, 0.3f, 5), random_floats(n2 * n2, -0.3f, 0.3f, 6)};
    const long T = 5;
    auto X = random_floats(T * K, -2.0f, 2.0f, 7);
    for (int bits : {4, 8}) {
      std::vector<int8_t> want(T * K), got(T * K, 9);
      std::vector<float> sw(T), sg(T);
      kron_quantize_ref(X.data(), T, f, bits, {0.9f, 0.8f}, want.data(), sw.data());
      kron_quantize(X.data(), T, f, bits, {0.9f, 0.8f}, got.data(), sg.data(), 2);
      EXPECT_EQ(got, want) << "K=" << K << " bits=" << bits;
      EXPECT_EQ(sg, sw) << "K=" << K << " bits=" << bits;
    }
  }
}

}  // namespace
}  // namespace fb

// FlattenQuant building blocks (docs/methods.md §5 F-1..F-7): flatten plans, the flatten identity,
// padding, the KL criterion, the deployed operator (fake vs real), channel statistics.
#include "kernels/fused_quant.h"
#include "methods/common/quant_linear.h"
#include "methods/flattenquant/channel_stats.h"
#include "methods/flattenquant/flatten_linear.h"
#include "methods/flattenquant/flatten_plan.h"
#include "methods/flattenquant/kl_choice.h"
#include "models/synthetic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

namespace fb {
namespace {

// T × K activations with a few outlier channels (×scale), like a LayerNorm output of OPT.
Mat outlier_activations(long T, long K, const std::vector<long>& outliers, float scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  Mat X(T, K);
  for (long t = 0; t < T; ++t)
    for (long k = 0; k < K; ++k) X(t, k) = n(rng);
  for (long k : outliers) X.col(k) *= scale;
  return X;
}

Mat random_matrix(long R, long C, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  Mat W(R, C);
  for (long i = 0; i < W.size(); ++i) W.data()[i] = n(rng) / std::sqrt(float(C));
  return W;
}

Vec channel_absmax(const Mat& X) { return X.cwiseAbs().colwise().maxCoeff().transpose(); }

double rel_diff(const Mat& a, const Mat& b) { return double((a - b).norm() / std::max(b.norm(), 1e-30f)); }

TEST(FlattenQuantPlan, FlattenIdentityIsExactInFloat) {  // F-1
  const Mat X = outlier_activations(64, 100, {3, 17, 55}, 40.f, 1);
  const Mat W = random_matrix(48, 100, 2);
  for (float beta : {0.5f, 0.1f, 0.02f}) {
    const FlattenPlan plan = plan_flatten(channel_absmax(X), beta, BetaReference::max, 32);
    ASSERT_GT(flat_width(plan), 100) << "beta " << beta << " should split the outlier channels";
    const Mat y_ref = X * W.transpose();
    const Mat y = flatten_activations(X, plan) * expand_weight(W, plan).transpose();
    EXPECT_LT(rel_diff(y, y_ref), 1e-5) << "beta " << beta;
    // The operator in float mode is the same identity.
    FlattenActivation act;
    act.plan = plan;
    act.bits = 16;
    FlattenQuantLinear op(act, expand_weight(W, plan), Vec());
    Mat y_op;
    op.forward(X, y_op);
    EXPECT_LT(rel_diff(y_op, y_ref), 1e-5);
  }
}

TEST(FlattenQuantPlan, PaddingAddsExactZeros) {  // F-3
  const Mat X = outlier_activations(16, 70, {5}, 20.f, 3);
  const Mat W = random_matrix(9, 70, 4);
  for (long pad : {32L, 8L, 1L}) {
    const FlattenPlan plan = plan_flatten(channel_absmax(X), 0.3f, BetaReference::max, pad);
    EXPECT_EQ(plan.k_out % pad, 0);
    EXPECT_GE(plan.k_out, flat_width(plan));
    EXPECT_LT(plan.k_out - flat_width(plan), pad);
    const Mat Xf = flatten_activations(X, plan), Wf = expand_weight(W, plan);
    for (long j = flat_width(plan); j < plan.k_out; ++j) {
      EXPECT_TRUE((Xf.col(j).array() == 0.f).all());
      EXPECT_TRUE((Wf.col(j).array() == 0.f).all());
    }
  }
}

TEST(FlattenQuantPlan, ThresholdBoundsFlattenedMaxAndCopiesAreMinimal) {  // F-2
  const Mat X = outlier_activations(200, 64, {1, 2, 40}, 25.f, 5);
  const Vec m = channel_absmax(X);
  for (float beta : {0.7f, 0.3f, 0.05f}) {
    const float T = flatten_threshold(m, beta, BetaReference::max);
    const FlattenPlan plan = plan_flatten(m, beta, BetaReference::max, 32);
    EXPECT_LE(flatten_activations(X, plan).cwiseAbs().maxCoeff(), T * (1 + 1e-6f));
    const std::vector<int> n = plan_copies(plan);
    for (long k = 0; k < m.size(); ++k) {
      EXPECT_LE(m[k] / n[size_t(k)], T * (1 + 1e-6f));
      if (n[size_t(k)] > 1) {
        EXPECT_GT(m[k] / float(n[size_t(k)] - 1), T) << "channel " << k << " has a spare copy";
      }
    }
    EXPECT_NEAR(flattened_range(m, plan), flatten_activations(X, plan).cwiseAbs().maxCoeff(), 1e-5f * T);
  }
}

TEST(FlattenQuantPlan, MedianReferenceScalesTheMedian) {
  Vec m(5);
  m << 1, 2, 3, 10, 50;
  EXPECT_FLOAT_EQ(flatten_threshold(m, 4.f, BetaReference::median), 12.f);
  const std::vector<int> n = flatten_copies(m, 12.f);
  EXPECT_EQ(n, (std::vector<int>{1, 1, 1, 1, 5}));
  EXPECT_THROW(flatten_threshold(m, 0.f, BetaReference::max), std::invalid_argument);
  EXPECT_THROW(parse_beta_reference("mean"), std::invalid_argument);
}

TEST(FlattenQuantPlan, BetaAtLeastOneIsTheIdentityPlanAndPlainPerTensorRtn) {  // F-4
  const Mat X = outlier_activations(32, 64, {7}, 30.f, 6);
  const Mat W = random_matrix(40, 64, 7);
  const Vec m = channel_absmax(X);
  for (float beta : {1.0f, 3.0f}) {
    const FlattenPlan plan = plan_flatten(m, beta, BetaReference::max, 32);
    ASSERT_EQ(flat_width(plan), 64);
    ASSERT_EQ(plan.k_out, 64);
    for (int k = 0; k < 64; ++k) {
      EXPECT_EQ(plan.src[size_t(k)], k);
      EXPECT_EQ(plan.inv_div[size_t(k)], 1.f);
    }
    for (int bits : {8, 4}) {
      QuantSpec ws;
      ws.bits = bits;
      ws.granularity = Granularity::per_tensor;
      const QuantizedWeight w = quantize_weight_rtn(W, ws, false);
      FlattenActivation act;
      act.plan = plan;
      act.bits = bits;
      act.range = flattened_range(m, plan);
      FlattenQuantLinear flat(act, w, Vec(), /*real=*/false);
      ActQuantizer aq;
      aq.spec.bits = bits;
      aq.spec.granularity = Granularity::per_tensor;
      aq.is_static = true;
      aq.static_lo = -m.maxCoeff();
      aq.static_hi = m.maxCoeff();
      FakeQuantLinear plain(w, Vec(), aq);
      Mat y_flat, y_plain;
      flat.forward(X, y_flat);
      plain.forward(X, y_plain);
      EXPECT_LT(rel_diff(y_flat, y_plain), 1e-6) << "bits " << bits;
    }
  }
}

TEST(FlattenQuantPlan, FlatteningLowersPerTensorInt8ErrorWithOutliers) {
  const Mat X = outlier_activations(128, 128, {9, 77}, 60.f, 8);
  const Mat W = random_matrix(64, 128, 9);
  const Vec m = channel_absmax(X);
  const Mat y_ref = X * W.transpose();
  auto error_at = [&](float beta) {
    FlattenActivation act;
    act.plan = plan_flatten(m, beta, BetaReference::max, 32);
    act.bits = 8;
    act.range = flattened_range(m, act.plan);
    QuantSpec ws;
    ws.bits = 8;
    ws.granularity = Granularity::per_tensor;
    FlattenQuantLinear op(act, quantize_weight_rtn(expand_weight(W, act.plan), ws, false), Vec(), false);
    Mat y;
    op.forward(X, y);
    return rel_diff(y, y_ref);
  };
  EXPECT_LT(error_at(1.f / 16), 0.5 * error_at(1.f));
}

// Why flattening barely helps a tensor without outliers: the n copies of a split channel hold the
// same value x/n and, at the scale cut by n, get exactly the code the whole channel had, so the
// channel's rounding error is unchanged. Only channels that stay whole gain from the smaller scale.
TEST(FlattenQuantPlan, CopiesOfASplitChannelGetTheCodeOfTheWholeChannel) {
  Mat X = outlier_activations(64, 96, {}, 1.f, 12);
  const Vec m0 = channel_absmax(X);
  const float M = m0.maxCoeff();
  for (long k = 0; k < X.cols(); ++k)  // every channel magnitude in (M/2, M]: β = 0.5 splits each in two
    X.col(k) *= M * (0.55f + 0.45f * float(k) / float(X.cols() - 1)) / m0[k];
  const Vec m = channel_absmax(X);
  for (int bits : {4, 8}) {
    FlattenActivation whole, split;
    whole.plan = plan_flatten(m, 1.f, BetaReference::max, 32);
    split.plan = plan_flatten(m, 0.5f, BetaReference::max, 32);
    whole.bits = split.bits = bits;
    whole.range = flattened_range(m, whole.plan);
    split.range = flattened_range(m, split.plan);
    for (int n : plan_copies(split.plan)) ASSERT_EQ(n, 2);
    ASSERT_EQ(split.range, whole.range / 2);
    float s_whole = 0, s_split = 0;
    const std::vector<int8_t> q_whole = whole.codes(X, s_whole), q_split = split.codes(X, s_split);
    for (long t = 0; t < X.rows(); ++t)
      for (long k = 0; k < X.cols(); ++k) {
        const int8_t q = q_whole[size_t(t * whole.plan.k_out + k)];
        ASSERT_EQ(q_split[size_t(t * split.plan.k_out + 2 * k)], q) << "bits " << bits << " t " << t << " k " << k;
        ASSERT_EQ(q_split[size_t(t * split.plan.k_out + 2 * k + 1)], q);
      }
  }
}

// Activation-only output error (float weights) of per-tensor quantization after flattening at β.
double activation_error(const Mat& X, const Mat& W, float beta, int bits, double* flatten_ratio,
                        SplitMode split = SplitMode::equal) {
  const Vec m = channel_absmax(X);
  FlattenActivation act;
  act.plan = plan_flatten(m, beta, BetaReference::max, 32, split);
  act.bits = bits;
  act.range = flattened_range(m, act.plan);
  *flatten_ratio = double(flat_width(act.plan) - X.cols()) / double(X.cols());
  FlattenQuantLinear op(act, expand_weight(W, act.plan), Vec());
  Mat y;
  op.forward(X, y);
  return std::pow(rel_diff(y, X * W.transpose()), 2);
}

TEST(FlattenQuantPlan, FlatteningPaysWhereAFewChannelsDominateNotOnAFlatTensor) {
  const Mat W = random_matrix(64, 1024, 14);
  const Mat flat = outlier_activations(256, 1024, {}, 1.f, 15);
  const Mat dominated = outlier_activations(256, 1024, {5, 300, 700}, 50.f, 15);
  for (int bits : {4, 8}) {
    double r1 = 0, r = 0;
    // Flat tensor: halving or quartering the scale splits nearly every channel, whose copies keep its error.
    const double flat_base = activation_error(flat, W, 1.f, bits, &r1);
    for (float beta : {0.5f, 0.25f}) {
      const double e = activation_error(flat, W, beta, bits, &r);
      EXPECT_GT(r, 0.9) << "β " << beta << " splits most channels of a flat tensor";
      EXPECT_GT(e, 0.5 * flat_base) << "bits " << bits << " β " << beta;
      EXPECT_LT(e, 1.05 * flat_base) << "bits " << bits << " β " << beta;
    }
    // Dominated tensor: β at the bulk splits only the outliers; every bulk channel gains the 32× finer scale.
    const double dom_base = activation_error(dominated, W, 1.f, bits, &r1);
    const double dom = activation_error(dominated, W, 1.f / 32, bits, &r);
    EXPECT_LT(r, 0.15);
    EXPECT_LT(dom, (bits == 4 ? 0.3 : 0.05) * dom_base) << "bits " << bits;
  }
}

// The staggered split removes the identical-copies limit: every channel, split or not, is rounded
// at the finer step, so cutting a flat tensor's scale by r cuts its error power by about r².
TEST(FlattenQuantPlan, StaggeredSplitMakesFlatteningPayOnAFlatTensor) {
  const Mat W = random_matrix(64, 1024, 14);
  const Mat flat = outlier_activations(256, 1024, {}, 1.f, 15);
  for (int bits : {4, 8}) {
    double r = 0;
    const double base = activation_error(flat, W, 1.f, bits, &r);
    const double equal = activation_error(flat, W, 0.25f, bits, &r, SplitMode::equal);
    const double staggered = activation_error(flat, W, 0.25f, bits, &r, SplitMode::staggered);
    EXPECT_LT(staggered, base / 8) << "bits " << bits << ": a 4× finer step";
    EXPECT_LT(staggered, equal / 4) << "bits " << bits;
  }
}

TEST(FlattenQuantOperator, FakeQuantEqualsRealQuant) {
  const Mat X = outlier_activations(37, 90, {4, 60}, 30.f, 10);
  const Mat W = random_matrix(50, 90, 11);
  Vec b = Vec::LinSpaced(50, -0.5f, 0.5f);
  const Vec m = channel_absmax(X);
  for (int bits : {8, 4})
    for (Granularity g : {Granularity::per_tensor, Granularity::per_channel})
      for (bool dynamic : {false, true})
        for (bool clip : {false, true}) {
          FlattenActivation act;  // staggered copies on half of the cases
          act.plan = plan_flatten(m, 0.2f, BetaReference::max, 32, clip == dynamic ? SplitMode::equal : SplitMode::staggered);
          act.bits = bits;
          act.dynamic = dynamic;
          act.range = 0.8f * flattened_range(m, act.plan);  // some values saturate
          if (clip)
            for (int n : plan_copies(act.plan)) act.clip_limit.push_back(float(n) * act.range);
          QuantSpec ws;
          ws.bits = bits;
          ws.granularity = g;
          const QuantizedWeight w = quantize_weight_rtn(expand_weight(W, act.plan), ws, false);
          FlattenQuantLinear fake(act, w, b, false), real(act, w, b, true);
          Mat yf, yr;
          fake.forward(X, yf);
          real.forward(X, yr);
          EXPECT_LE((yf - yr).cwiseAbs().maxCoeff(), 1e-5f * yf.cwiseAbs().maxCoeff())
              << "bits " << bits << " " << granularity_name(g) << " dynamic " << dynamic << " clip " << clip;
        }
}

TEST(FlattenQuantOperator, RejectsMismatchedShapes) {
  FlattenActivation act;
  act.plan = make_flatten_plan({1, 2, 1}, 32);
  act.bits = 16;
  EXPECT_THROW(FlattenQuantLinear(act, Mat::Zero(4, 4), Vec()), std::invalid_argument);
  FlattenQuantLinear op(act, Mat::Zero(4, 32), Vec());
  Mat y;
  EXPECT_THROW(op.forward(Mat::Zero(2, 5), y), std::invalid_argument);
}

// ---- KL criterion (F-6) -------------------------------------------------------

std::vector<float> uniform_values(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

std::vector<float> heavy_tailed_values(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> t(2.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = t(rng);
  return v;
}

float abs_max(const std::vector<float>& v) {
  float a = 0;
  for (float x : v) a = std::max(a, std::fabs(x));
  return a;
}

TEST(FlattenQuantKl, UniformPicksInt4HeavyTailPicksInt8) {
  const auto u = uniform_values(100000, 1), h = heavy_tailed_values(100000, 2);
  const double kl_u = kl_of_values(u, abs_max(u), 4), kl_h = kl_of_values(h, abs_max(h), 4);
  EXPECT_LT(kl_u, 0.01);
  EXPECT_GT(kl_h, 0.5);
  EXPECT_EQ(choose_bits(kl_u, 0.05), 4);
  EXPECT_EQ(choose_bits(kl_h, 0.05), 8);
  // The signed construction agrees.
  EXPECT_EQ(choose_bits(kl_of_values(u, abs_max(u), 4, 2048, true), 0.05), 4);
  EXPECT_EQ(choose_bits(kl_of_values(h, abs_max(h), 4, 2048, true), 0.05), 8);
}

TEST(FlattenQuantKl, NonNegativeZeroForIdenticalAndFinerGridLoosesLess) {
  std::vector<double> p = {0, 3, 1, 0, 7, 2};
  EXPECT_NEAR(kl_divergence(p, p), 0.0, 1e-15);
  EXPECT_THROW(kl_divergence(p, {1, 0, 1, 1, 1, 1}), std::invalid_argument);  // Q = 0 where P > 0
  std::mt19937_64 rng(3);
  std::normal_distribution<float> n(0.f, 1.f);
  for (int trial = 0; trial < 5; ++trial) {
    std::vector<float> v(20000);
    for (float& x : v) x = n(rng) * (trial + 1);
    const float r = abs_max(v) * (trial % 2 ? 0.5f : 1.f);  // also with clipped tails
    Histogram h(r, 2048, false);
    h.add(v.data(), long(v.size()));
    const double kl4 = kl_quantization(h, 4), kl8 = kl_quantization(h, 8);
    EXPECT_GE(kl4, 0);
    EXPECT_GE(kl8, 0);
    EXPECT_LE(kl8, kl4);
    // Q keeps each cell's mass: both histograms sum to the same total.
    const auto q = quantized_reference(h, 4);
    EXPECT_NEAR(std::accumulate(q.begin(), q.end(), 0.0), h.total(), 1e-6 * h.total());
  }
}

TEST(FlattenQuantKl, Int4SetShrinksAsGammaFalls) {
  std::vector<double> kls;
  for (int i = 0; i < 12; ++i) {
    auto v = i % 2 ? heavy_tailed_values(5000, 100 + i) : uniform_values(5000, 100 + i);
    for (float& x : v) x = std::copysign(std::pow(std::fabs(x), 1.f + 0.2f * i), x);  // varied tails
    kls.push_back(kl_of_values(v, abs_max(v), 4));
  }
  const std::vector<double> gammas = {1e30, 1.0, 0.3, 0.1, 0.03, 0.01, 1e-3, 0.0, -1.0};
  std::vector<bool> prev(kls.size(), true);
  for (double g : gammas) {
    for (size_t i = 0; i < kls.size(); ++i) {
      const bool int4 = choose_bits(kls[i], g) == 4;
      EXPECT_TRUE(!int4 || prev[i]) << "site " << i << " became INT4 when γ fell to " << g;
      prev[i] = int4;
    }
  }
  for (bool b : prev) EXPECT_FALSE(b) << "γ = −1 must give all INT8";
}

// ---- channel statistics -------------------------------------------------------

TEST(FlattenQuantStats, CollectorMatchesBruteForce) {
  Model m = make_synthetic_model(synthetic_config("opt-tiny"), SyntheticOptions{.layers = 2, .seed = 3,
                                                                                .outlier_channels = 2});
  std::mt19937_64 rng(4);
  std::vector<std::vector<int>> windows(5, std::vector<int>(40));
  for (auto& w : windows)
    for (int& t : w) t = int(rng() % uint64_t(m.cfg.vocab_size));
  ChannelStatsOptions opt;
  opt.percentile = 99.0;
  opt.max_rows = 100000;  // keep every row for the brute-force comparison
  const ChannelStatsMap stats = collect_channel_stats(m, windows, opt);
  ASSERT_EQ(stats.size(), size_t(2 * 4));  // per layer: q (shared by k, v), o, fc1, fc2
  for (const auto& [key, st] : stats) {
    ASSERT_EQ(st.rows.rows(), 200);
    ASSERT_EQ(st.windows, 5);
    for (long k = 0; k < st.rows.cols(); ++k) {
      std::vector<float> col(200);
      float seq_sum = 0;
      for (int w = 0; w < 5; ++w) {
        float mx = 0;
        for (int t = 0; t < 40; ++t) mx = std::max(mx, std::fabs(st.rows(w * 40 + t, k)));
        seq_sum += mx;
      }
      for (int t = 0; t < 200; ++t) col[size_t(t)] = std::fabs(st.rows(t, k));
      EXPECT_FLOAT_EQ(st.absmax[k], *std::max_element(col.begin(), col.end()));
      EXPECT_FLOAT_EQ(st.percentile[k], channel_percentile(col, 99.0));  // 1% of the way from the 3rd to the 2nd largest of 200
      EXPECT_NEAR(st.seq_mean_max[k], seq_sum / 5, 1e-5f * seq_sum);
      EXPECT_LE(st.percentile[k], st.absmax[k]);
    }
  }
}

}  // namespace
}  // namespace fb

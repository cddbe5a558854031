// Calibration statistics, SmoothQuant folding (exactness), GPTQ (beats RTN on layer
// reconstruction) and KV-cache quantization hooks.
#include "methods/common/calibration.h"
#include "methods/common/gptq.h"
#include "methods/common/kv_quant.h"
#include "methods/common/smoothing.h"
#include "models/synthetic.h"
#include "method_test_util.h"

#include <gtest/gtest.h>

#include <random>

namespace fb {
namespace {

Model tiny(const std::string& arch, int outliers = 0) { return test::tiny_synthetic(arch, 7, outliers); }

std::vector<std::vector<int>> random_windows(const Model& m, int n, int len, uint64_t seed) {
  CalibConfig c;
  c.samples = n;
  c.seqlen = len;
  c.seed = seed;
  return calibration_windows(m, nullptr, "", c);
}

// docs/methods.md §5 tolerance for FP32 identities: ‖a − b‖ ≤ 1e-5·‖a‖.
double rel_diff(const Mat& a, const Mat& b) { return (a - b).norm() / a.norm(); }

TEST(QuantCalibration, StatsMatchTheSiteInputs) {
  Model m = tiny("llama-tiny", 2);
  auto windows = random_windows(m, 3, 20, 1);
  EXPECT_EQ(windows, random_windows(m, 3, 20, 1));  // seeded
  EXPECT_NE(windows, random_windows(m, 3, 20, 2));

  // Record the inputs of layer 1 gate directly and compare with the collected statistics.
  Mat all(0, m.cfg.dim);
  m.site_hook = [&](const SiteId& id, const Mat& x) {
    if (id.layer == 1 && id.role == Role::gate) {
      Mat grown(all.rows() + x.rows(), x.cols());
      grown << all, x;
      all = grown;
    }
  };
  for (const auto& w : windows) m.forward(w);
  m.site_hook = nullptr;

  CollectOptions opt;
  opt.max_rows = 15;
  opt.hessian = true;
  SiteStatsMap stats = collect_site_stats(m, windows, opt);
  EXPECT_FALSE(m.site_hook);  // hook restored
  ASSERT_EQ(stats.size(), m.sites().size());
  const SiteStats& st = stats.at(site_key({1, Role::gate}));
  EXPECT_EQ(st.tokens, 60);
  EXPECT_EQ((st.absmax - all.cwiseAbs().colwise().maxCoeff().transpose()).cwiseAbs().maxCoeff(), 0.f);
  EXPECT_EQ(st.rows.rows(), 15);  // stride 4 over 60 tokens
  EXPECT_EQ((st.rows.row(1) - all.row(4)).cwiseAbs().maxCoeff(), 0.f);
  Eigen::MatrixXd xtx = all.cast<double>().transpose() * all.cast<double>();
  EXPECT_LE((st.xtx - xtx).cwiseAbs().maxCoeff(), 1e-9 * xtx.cwiseAbs().maxCoeff());
}

void expect_smoothing_is_exact(Model m, const std::vector<std::vector<int>>& windows) {
  std::vector<Mat> before;
  for (const auto& w : windows) before.push_back(m.forward(w));
  SiteStatsMap stats = collect_site_stats(m, windows, CollectOptions{});
  const Vec absmax_before = stats.at(site_key({0, Role::q})).absmax;
  for (float alpha : {0.5f, 0.85f}) {
    Model s = m;
    SiteStatsMap st = stats;
    std::vector<SmoothResult> res = smooth_model(s, st, alpha);
    EXPECT_EQ(res.size(), 2 * m.blocks.size());
    EXPECT_GT(res[0].scales.maxCoeff() / res[0].scales.minCoeff(), 1.5f);  // it really rescaled channels
    for (size_t i = 0; i < windows.size(); ++i) {
      const Mat after = s.forward(windows[i]);
      EXPECT_LE(rel_diff(before[i], after), 1e-5) << alpha;
      EXPECT_LE((before[i] - after).cwiseAbs().maxCoeff(), 1e-4 * before[i].cwiseAbs().maxCoeff()) << alpha;
    }
    // The rescaled statistics equal statistics collected on the smoothed model.
    SiteStatsMap fresh = collect_site_stats(s, windows, CollectOptions{});
    const Vec& a = st.at(site_key({0, Role::q})).absmax;
    const Vec& b = fresh.at(site_key({0, Role::q})).absmax;
    EXPECT_LE((a - b).cwiseAbs().maxCoeff(), 1e-4 * b.maxCoeff());
  }
  (void)absmax_before;
}

TEST(QuantCalibration, SmoothingLeavesLlamaLogitsUnchanged) {
  Model m = tiny("llama-tiny", 3);
  expect_smoothing_is_exact(m, random_windows(m, 2, 24, 3));
}

TEST(QuantCalibration, SmoothingLeavesOptLogitsUnchanged) {  // LayerNorm: gamma and beta are folded
  Model m = tiny("opt-tiny", 3);
  ASSERT_GT(m.blocks[0].attn_norm.beta.size(), 0);
  expect_smoothing_is_exact(m, random_windows(m, 2, 24, 4));
}

TEST(QuantCalibration, SmoothingLeavesStories260KLogitsUnchanged) {
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  LoadedModel lm = test::load_stories260k();
  CalibConfig c;
  c.samples = 2;
  c.seqlen = 64;
  expect_smoothing_is_exact(lm.model, calibration_windows(lm.model, lm.tokenizer.get(), test::data_dir(), c));
}

TEST(QuantCalibration, SmoothingScalesFollowTheFormula) {
  Vec act(3);
  act << 4.f, 1.f, 0.f;
  Mat W1(2, 3), W2(1, 3);
  W1 << 1, -0.5f, 2, 0.25f, 0.5f, -1;
  W2 << -2, 0.1f, 0;
  Vec s = smoothing_scales(act, {&W1, &W2}, 0.5f);
  EXPECT_FLOAT_EQ(s[0], std::sqrt(4.f) / std::sqrt(2.f));
  EXPECT_FLOAT_EQ(s[1], 1.f / std::sqrt(0.5f));
  EXPECT_FLOAT_EQ(s[2], 1e-5f);  // a dead channel clamps to 1e-5
}

// Layer output error ‖X·(W − Ŵ)ᵀ‖² of a quantized weight on the calibration rows.
double layer_error(const Mat& X, const Mat& W, const QuantizedWeight& q) {
  return double((X * (W - q.dequantized()).transpose()).squaredNorm());
}

TEST(QuantGptq, BeatsRtnOnCorrelatedActivations) {
  // Structured inputs: correlated channels (low-rank mixing) plus a few large channels.
  const int T = 512, K = 96, N = 40;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd;
  Mat Z(T, 16), A(16, K), W(N, K), noise(T, K);
  for (Mat* M : {&Z, &A, &W, &noise})
    for (int i = 0; i < M->size(); ++i) M->data()[i] = nd(rng);
  Mat X = Z * A + 0.1f * noise;
  X.col(3) *= 10.f;
  X.col(50) *= 6.f;
  Eigen::MatrixXd xtx = X.cast<double>().transpose() * X.cast<double>();
  for (int bits : {3, 4}) {
    QuantSpec s;
    s.bits = bits;
    QuantizedWeight rtn = quantize_weight_rtn(W, s, false);
    for (bool act_order : {false, true}) {
      GptqOptions opt;
      opt.block = 32;  // several blocks: exercises the lazy batch update
      opt.act_order = act_order;
      QuantizedWeight g = gptq_quantize(W, xtx, T, s, opt);
      EXPECT_LT(layer_error(X, W, g), 0.7 * layer_error(X, W, rtn)) << bits << " bits, act_order " << act_order;
      // The codes live on the same grid as RTN's (scales fixed from the full weight).
      EXPECT_EQ(g.params.scale, rtn.params.scale);
    }
  }
}

TEST(QuantGptq, DeadColumnsAreZeroed) {
  const int T = 64, K = 8, N = 4;
  std::mt19937_64 rng(6);
  std::normal_distribution<float> nd;
  Mat X(T, K), W(N, K);
  for (Mat* M : {&X, &W})
    for (int i = 0; i < M->size(); ++i) M->data()[i] = nd(rng);
  X.col(2).setZero();
  Eigen::MatrixXd xtx = X.cast<double>().transpose() * X.cast<double>();
  GptqInfo info;
  QuantSpec s;
  s.bits = 4;
  QuantizedWeight g = gptq_quantize(W, xtx, T, s, GptqOptions{}, &info);
  EXPECT_EQ(info.dead_columns, 1);
  EXPECT_EQ(g.dequantized().col(2).cwiseAbs().maxCoeff(), 0.f);
  EXPECT_THROW(gptq_quantize(W, Eigen::MatrixXd::Identity(3, 3), T, s, GptqOptions{}), std::invalid_argument);
}

TEST(QuantGptq, BeatsRtnOnStories260KActivations) {
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  LoadedModel lm = test::load_stories260k();
  CalibConfig c;
  c.samples = 16;
  c.seqlen = 128;
  auto windows = calibration_windows(lm.model, lm.tokenizer.get(), test::data_dir(), c);
  CollectOptions opt;
  opt.max_rows = 1 << 20;  // keep every row: the error is measured on exactly the Hessian's data
  opt.hessian = true;
  SiteStatsMap stats = collect_site_stats(lm.model, windows, opt);
  QuantSpec s;
  s.bits = 4;
  double sum_rtn = 0, sum_gptq = 0;
  int better = 0, n = 0;
  for (const LinearSite* site : lm.model.sites()) {
    const SiteStats& st = stats.at(site_key(site->id));
    double e_rtn = layer_error(st.rows, site->W, quantize_weight_rtn(site->W, s, false));
    double e_gptq = layer_error(st.rows, site->W, gptq_quantize(site->W, st.xtx, st.tokens, s, GptqOptions{}));
    sum_rtn += e_rtn, sum_gptq += e_gptq;
    better += e_gptq < e_rtn;
    ++n;
  }
  EXPECT_EQ(better, n) << "GPTQ should beat RTN on every site's calibration reconstruction";
  EXPECT_LT(sum_gptq, 0.8 * sum_rtn);
}

TEST(QuantKv, HookQuantizesKAndVPerHead) {
  Model m = tiny("llama-tiny");
  const int hd = m.cfg.head_dim();
  install_kv_quant(m, 4);
  EXPECT_EQ(installed_kv_bits(m), 4);
  Mat q = Mat::Random(5, m.cfg.n_heads * hd), k = Mat::Random(5, m.cfg.n_kv_heads * hd), v = k;
  k.col(0) *= 50.f;  // an outlier in head 0 must not coarsen head 1
  const Mat q0 = q, k0 = k, v0 = v;
  m.attention_hook(0, q, k, v);
  EXPECT_EQ((q - q0).cwiseAbs().maxCoeff(), 0.f);  // queries untouched
  EXPECT_GT((v - v0).cwiseAbs().maxCoeff(), 0.f);
  for (int t = 0; t < 5; ++t) {
    Eigen::RowVectorXf head1 = k.row(t).segment(hd, hd), orig1 = k0.row(t).segment(hd, hd);
    float step = (orig1.maxCoeff() - std::min(orig1.minCoeff(), 0.f)) / 15.f;
    EXPECT_LE((head1 - orig1).cwiseAbs().maxCoeff(), step * 1.0001f);
  }
  // Chaining keeps an earlier hook and runs it first.
  int calls = 0;
  Model m2 = tiny("llama-tiny");
  m2.attention_hook = [&](int, Mat&, Mat&, Mat&) { ++calls; };
  install_kv_quant(m2, 8);
  m2.forward(std::vector<int>{1, 2, 3});
  EXPECT_EQ(calls, m2.cfg.n_layers);
  install_kv_quant(m2, 16);  // 16 = off: nothing changes
  EXPECT_EQ(installed_kv_bits(m2), 8);
}

}  // namespace
}  // namespace fb

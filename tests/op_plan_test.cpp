// Every deployed operator's backend-neutral description (models/op_plan.h) computes what the
// operator computes: run_linear_plan / run_attention_plan (the CPU execution of a plan, which
// the CUDA kernels follow) beside LinearOp::forward / AttentionOp::apply, for each method's
// operator and each quantizer scope. A step a plan leaves out (clipping, a transform, an offset)
// shows up here as a difference.
#include "methods/common/kv_quant.h"
#include "methods/common/quant_linear.h"
#include "methods/flatquant/deploy.h"
#include "methods/flattenquant/flatten_linear.h"
#include "methods/flattenquant/flatten_plan.h"
#include "method_test_util.h"
#include "models/op_plan.h"
#include "test_util.h"

#include <gtest/gtest.h>

namespace fb {
namespace {

using test::gaussian_matrix;

double rel_diff(const Mat& a, const Mat& b) {
  EXPECT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.cols(), b.cols());
  if (a.rows() != b.rows() || a.cols() != b.cols()) return 1e9;
  return (a - b).norm() / std::max(1e-30f, b.norm());
}

// Activations with a few outlier channels, as the methods see them.
Mat activations(int T, int K, uint64_t seed) {
  Mat x = gaussian_matrix(T, K, seed);
  for (int t = 0; t < T; ++t) x(t, 3) *= 30.f, x(t, K - 2) *= 12.f;
  return x;
}

Mat forward_of(const LinearOp& op, const Mat& x) {
  Mat y;
  op.forward(x, y);
  return y;
}

void expect_plan_matches(const LinearOp& op, const Mat& x) {
  const std::optional<LinearPlan> plan = op.plan();
  ASSERT_TRUE(plan.has_value()) << op.describe();
  EXPECT_LT(rel_diff(run_linear_plan(*plan, x), forward_of(op, x)), 1e-6) << op.describe();
}

QuantSpec act_spec(int bits, bool sym, Granularity g, int group = 0, float clip = 1.f) {
  QuantSpec s;
  s.bits = bits, s.sym = sym, s.granularity = g, s.group = group, s.clip = clip;
  return s;
}

TEST(OpPlan, FakeQuantLinearEveryActivationScope) {
  const Mat x = activations(24, 64, 1), W = gaussian_matrix(40, 64, 2);
  const Vec bias = gaussian_matrix(40, 1, 3).col(0);
  const QuantizedWeight w4 = quantize_weight_rtn(W, act_spec(4, true, Granularity::per_channel), false);
  const std::vector<QuantSpec> specs = {act_spec(4, true, Granularity::per_token),
                                        act_spec(4, false, Granularity::per_token, 0, 0.9f),
                                        act_spec(8, true, Granularity::per_tensor),
                                        act_spec(4, false, Granularity::per_tensor),
                                        act_spec(4, true, Granularity::per_group, 16),
                                        act_spec(6, false, Granularity::per_group, 24)};  // a partial last group
  for (const QuantSpec& s : specs) {
    ActQuantizer a;
    a.spec = s;
    expect_plan_matches(FakeQuantLinear(w4, bias, a), x);
  }
  ActQuantizer fixed;
  fixed.spec = act_spec(8, false, Granularity::per_tensor);
  fixed.is_static = true, fixed.static_lo = -3.f, fixed.static_hi = 20.f;  // clips the outlier channel
  expect_plan_matches(FakeQuantLinear(w4, Vec(), fixed), x);
  expect_plan_matches(FakeQuantLinear(W, bias, ActQuantizer{}), x);  // float weight, float input
}

TEST(OpPlan, FlattenQuantLinearEqualAndStaggeredStaticAndDynamicClipped) {
  const int K = 70;
  const Mat x = activations(20, K, 4), W = gaussian_matrix(33, K, 5);
  std::vector<int> copies(K, 1);
  copies[3] = 4, copies[K - 2] = 2;
  for (SplitMode split : {SplitMode::equal, SplitMode::staggered})
    for (bool dynamic : {false, true}) {
      FlattenActivation act;
      act.plan = make_flatten_plan(copies, 32, split);
      act.bits = 4;
      act.dynamic = dynamic;
      act.range = 6.f;
      act.clip_limit.assign(K, 25.f);  // cuts the 30× channel's tail
      const QuantizedWeight w = quantize_weight_rtn(expand_weight(W, act.plan), act_spec(4, true, Granularity::per_channel), false);
      expect_plan_matches(FlattenQuantLinear(act, w, Vec(), false), x);
    }
  FlattenActivation flat_only;
  flat_only.plan = make_flatten_plan(copies, 32);
  flat_only.bits = 16;
  expect_plan_matches(FlattenQuantLinear(flat_only, expand_weight(W, flat_only.plan), Vec()), x);
}

TEST(OpPlan, FlatQuantLinearKroneckerAndLearnedClipping) {
  const Mat x = activations(16, 48, 6), W = gaussian_matrix(20, 48, 7);
  const Mat L = gaussian_matrix(6, 6, 8), R = gaussian_matrix(8, 8, 9);
  const Vec bias = gaussian_matrix(20, 1, 10).col(0);
  for (bool sym : {true, false}) {
    flatquant::FlatQuantLinear op(L, R, act_spec(4, sym, Granularity::per_token), ClipRatios{0.9f, 0.7f}, W,
                                  act_spec(4, true, Granularity::per_channel), bias, false, true);
    expect_plan_matches(op, x);
  }
}

TEST(OpPlan, IntegerGemmOperatorsHaveNoPlan) {
  const Mat W = gaussian_matrix(16, 32, 11);
  ActQuantizer a;
  a.spec = act_spec(8, true, Granularity::per_token);
  const QuantizedWeight w8 = quantize_weight_rtn(W, act_spec(8, true, Granularity::per_channel), false);
  EXPECT_FALSE(RealQuantLinear(w8, Vec(), a).plan().has_value());
  flatquant::FlatQuantLinear real(Mat::Identity(4, 4), Mat::Identity(8, 8), act_spec(8, true, Granularity::per_token),
                                  ClipRatios{}, W, act_spec(8, true, Granularity::per_channel), Vec(), true, true);
  EXPECT_FALSE(real.plan().has_value());
}

TEST(OpPlan, AttentionHooksChainedInOrder) {
  const int hd = 8, T = 12;
  const Mat q0 = gaussian_matrix(T, 4 * hd, 12), k0 = gaussian_matrix(T, 2 * hd, 13), v0 = gaussian_matrix(T, 2 * hd, 14);
  auto flat = std::make_shared<flatquant::FlatQuantAttentionHook>();
  flat->head_dim = hd;
  flatquant::KvLayer L;
  L.pk = gaussian_matrix(hd, hd, 15);
  L.pk_inv_t = gaussian_matrix(hd, hd, 16);
  L.q = act_spec(8, true, Granularity::per_token);
  L.k = act_spec(4, false, Granularity::per_token);
  L.v = act_spec(4, false, Granularity::per_token);
  L.k_clip = {0.95f, 0.8f};
  flat->layers = {L, L};
  auto kv = std::make_shared<KvQuantHook>(kv_quant_spec(3, hd, false, 0.9f));
  AttentionHook hook = chain_attention_hooks(AttentionOpHook{flat}, AttentionOpHook{kv}, true);

  Mat q = q0, k = k0, v = v0;
  hook(1, q, k, v);
  const std::optional<AttentionPlan> plan = attention_plan(hook, 1);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->size(), 7u);  // two transforms, three FlatQuant quantizers, two KV quantizers
  Mat qp = q0, kp = k0, vp = v0;
  run_attention_plan(*plan, hd, qp, kp, vp);
  EXPECT_LT(rel_diff(qp, q), 1e-6);
  EXPECT_LT(rel_diff(kp, k), 1e-6);
  EXPECT_LT(rel_diff(vp, v), 1e-6);
  EXPECT_GT(rel_diff(kp, k0), 1e-3);  // the steps did something

  EXPECT_TRUE(attention_plan(AttentionHook{}, 0).has_value());
  EXPECT_TRUE(attention_plan(AttentionHook{}, 0)->empty());
  const AttentionHook probe = [](int, Mat&, Mat&, Mat&) {};
  EXPECT_FALSE(attention_plan(chain_attention_hooks(AttentionOpHook{kv}, probe, false), 0).has_value());
}

// What a backend other than the CPU needs from each method of configs/flatquant.yaml: every site's
// operator and every layer's attention edits as a plan, and each plan equal to its operator on
// the inputs the site sees (random here).
TEST(OpPlan, EveryMethodOfTheFlatQuantTableDeploysPlans) {
  const std::vector<std::pair<std::string, json>> jobs = {
      {"rtn", {{"w_bits", 4}, {"a_bits", 4}, {"kv_bits", 4}}},
      {"smoothquant", {{"alpha", 0.85}, {"w_granularity", "per_channel"}, {"w_bits", 4}, {"a_bits", 4}, {"kv_bits", 4}}},
      {"flattenquant",
       {{"bits_mode", "int4"}, {"kv_bits", 4}, {"w_granularity", "per_channel"}, {"calib_samples", 8}, {"calib_seqlen", 64},
        {"check_windows", 0}}},
      {"flattenquant", {{"bits_mode", "int8"}, {"calib_samples", 8}, {"calib_seqlen", 64}, {"check_windows", 0}}},
      {"flatquant", {{"epochs", 1}, {"nsamples", 4}, {"seqlen", 32}, {"cali_bsz", 2}}},
  };
  for (const auto& [method, params] : jobs) {
    Model m = test::tiny_synthetic("llama-tiny", 3, 2);
    test::run_method(method, m, nullptr, params);
    int with_ops = 0;
    for (const LinearSite* s : std::as_const(m).sites()) {
      if (!s->op) continue;
      ++with_ops;
      expect_plan_matches(*s->op, activations(9, s->in_features(), 20 + with_ops));
    }
    EXPECT_GT(with_ops, 0) << method;
    for (int l = 0; l < m.cfg.n_layers; ++l)
      EXPECT_TRUE(attention_plan(m.attention_hook, l).has_value()) << method << " layer " << l;
  }
}

}  // namespace
}  // namespace fb

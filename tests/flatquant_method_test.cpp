// FlatQuant as users run it (methods/flatquant/): the merge/deploy path against the training
// forward, the deployed integer operators against fake-quant, the calibration loop over the
// official schedule, GPTQ weights (w_quantizer: gptq), and whole jobs on a small synthetic model.
#include "method_test_util.h"
#include "methods/flatquant/calibrate.h"
#include "methods/flatquant/deploy.h"
#include "methods/flatquant/params.h"
#include "flatquant_test_util.h"

#include <gtest/gtest.h>

#include <random>

namespace fb::flatquant {
namespace {

using fb::test::run_method;
using fb::test::tiny_synthetic;

constexpr int kT = 16;  // tokens per window

// A one-block llama-tiny, a window of tokens and its embedded input.
struct OneBlock {
  Model m = [] {
    Model x = tiny_synthetic("llama-tiny", 21);
    x.blocks.resize(1);
    x.cfg.n_layers = 1;
    return x;
  }();
  std::vector<int> tokens;
  MatD x;
  OneBlock() {
    std::mt19937_64 rng(3);
    for (int t = 0; t < kT; ++t) tokens.push_back(int(rng() % m.cfg.vocab_size));
    x.resize(kT, m.cfg.dim);
    for (int t = 0; t < kT; ++t) x.row(t) = m.tok_embedding.row(tokens[t]).cast<double>();
  }
  // Logits of the model whose block outputs y: final RMSNorm, then the output matrix.
  Mat logits_after(const MatD& y) const {
    Mat out(y.rows(), m.cfg.vocab_size);
    for (long t = 0; t < y.rows(); ++t) {
      const double rms = std::sqrt(y.row(t).squaredNorm() / double(y.cols()) + m.cfg.norm_eps);
      const Eigen::RowVectorXf h = (y.row(t) / rms).cast<float>().cwiseProduct(m.final_norm.gamma.transpose());
      out.row(t) = h * m.output_matrix().transpose();
    }
    return out;
  }
};

double rel_error(const Mat& got, const Mat& want) { return double((got - want).norm() / want.norm()); }

// Learned-looking parameters: σ off 1 and clipping logits off their start, so the merge has work to do.
BlockParams moved_params(const OneBlock& b, const QuantSettings& s, std::mt19937_64& rng) {
  const BlockShape shape = block_shape_of(b.m.cfg);
  const FpBlock fp = fp_block_of(b.m.blocks[0]);
  InputStats stats;
  fp_block_forward(shape, fp, b.x, kT, &stats);
  BlockParams p = init_block_params(shape, fp, stats, s, true, 0.3, rng);
  for (Factor* f : p.factors())
    if (!f->direct) f->sigma.v = (MatD::Random(f->size(), 1).array() * 0.3 + 1).matrix();
  for (LinearClip* c : {&p.q, &p.k, &p.v, &p.o, &p.gate, &p.up, &p.dn})
    if (c->wmax.v.size()) c->wmax.v.array() += 0.5 * MatD::Random(c->wmax.v.rows(), 1).array();
  return p;
}

// The deployed model (merged weights, FlatQuantLinear operators, attention hook) computes what
// the training forward QuantBlock computes, with the quantizers off and with them on.
TEST(FlatquantDeploy, DeployedModelEqualsTheTrainingForward) {
  std::vector<Mat> trained_logits;
  for (bool quantize : {false, true}) {
    OneBlock b;
    std::mt19937_64 rng(5);
    QuantSettings s;
    s.quantize = quantize;
    s.a = {8, true};  // per-token A8: the float and double paths round the same codes
    s.w = {8, true};
    s.k = s.v = {8, false};
    BlockParams p = moved_params(b, s, rng);
    const BlockShape shape = block_shape_of(b.m.cfg);
    const FpBlock fp = fp_block_of(b.m.blocks[0]);
    QuantBlock trained(shape, fp, p, s);
    const Mat want = b.logits_after(trained.forward(b.x, kT));

    FlatQuantAttentionHook hook;
    deploy_block(b.m, 0, shape, merge_block(shape, fp, p, s), p, s, {}, hook);
    b.m.attention_hook = AttentionOpHook{std::make_shared<FlatQuantAttentionHook>(std::move(hook))};
    const Mat got = b.m.forward(b.tokens);
    EXPECT_LE(rel_error(got, want), 1e-5) << "quantizers " << (quantize ? "on" : "off");
    trained_logits.push_back(want);
  }
  EXPECT_GT(rel_error(trained_logits[1], trained_logits[0]), 1e-3) << "the quantizers were on";
}

// Each integer operator (packed codes, integer GEMM) equals its fake-quant twin on the same input.
TEST(FlatquantDeploy, IntegerOperatorsEqualFakeQuantPerSite) {
  OneBlock b;
  std::mt19937_64 rng(8);
  QuantSettings s;
  s.a = {8, true};
  BlockParams p = moved_params(b, s, rng);
  const BlockShape shape = block_shape_of(b.m.cfg);
  const FpBlock fp = fp_block_of(b.m.blocks[0]);
  const MergedBlock merged = merge_block(shape, fp, p, s);
  Model real = b.m, fake = b.m;
  FlatQuantAttentionHook h1, h2;
  deploy_block(real, 0, shape, merged, p, s, {.real_quant = true}, h1);
  deploy_block(fake, 0, shape, merged, p, s, {.real_quant = false}, h2);
  for (size_t i = 0; i < real.sites().size(); ++i) {
    const LinearSite& r = *real.sites()[i];
    const LinearSite& f = *fake.sites()[i];
    ASSERT_TRUE(dynamic_cast<const FlatQuantLinear&>(*r.op).real_quant());
    const Mat x = Mat::Random(kT, r.in_features());
    Mat yr, yf;
    r.op->forward(x, yr);
    f.op->forward(x, yf);
    EXPECT_LE(rel_error(yr, yf), 1e-5) << role_name(r.id.role);
  }
}

// Over the official schedule (AdamW, cosine decay, normalised loss), calibration lowers the
// block's MSE against the full-precision output, and each epoch's mean stays below the start.
TEST(FlatquantCalibration, LowersTheBlockMseOverTheSchedule) {
  OneBlock b;
  std::mt19937_64 rng(2);
  const BlockShape shape = block_shape_of(b.m.cfg);
  const FpBlock fp = fp_block_of(b.m.blocks[0]);
  MatD x(4 * kT, shape.dim);
  for (int w = 0; w < 4; ++w) x.middleRows(w * kT, kT) = b.x + test::random_mat(kT, shape.dim, rng, 0.1);
  InputStats stats;
  const MatD y = fp_block_forward(shape, fp, x, kT, &stats);
  QuantSettings s;  // W4A4KV4
  BlockParams p = init_block_params(shape, fp, stats, s, true, 0.3, rng);
  CalibOptions opt;
  opt.epochs = 6;
  opt.batch = 2;
  const BlockCalibReport rep = calibrate_block(shape, fp, x, y, kT, p, s, opt);
  ASSERT_EQ(rep.epoch_mse.size(), 6u);
  EXPECT_LT(rep.final_mse, rep.init_mse) << rep.init_mse << " → " << rep.final_mse;
  EXPECT_LT(rep.epoch_mse.back(), rep.epoch_mse.front());
  EXPECT_NEAR(rep.final_mse, evaluate_block(shape, fp, x, y, kT, 2, p, s), 1e-12) << "the report is the evaluation";
}

// The float training forward and backward (calibration's default) track the double ones the
// finite-difference tests check: same outputs and parameter gradients to float precision.
TEST(FlatquantCalibration, Fp32PassesTrackTheFp64Reference) {
  OneBlock b;
  std::mt19937_64 rng(12);
  const BlockShape shape = block_shape_of(b.m.cfg);
  const FpBlock fp = fp_block_of(b.m.blocks[0]);
  QuantSettings s;
  s.a = s.w = {8, true};  // 8-bit grids: float and double land on the same codes
  s.k = s.v = {8, false};
  BlockParams p64 = moved_params(b, s, rng);
  BlockParams p32 = p64;
  QuantBlockT<double> d(shape, fp, p64, s);
  QuantBlockT<float> f(shape, fp, p32, s);
  const MatD y64 = d.forward(b.x, kT);
  const MatX<float> y32 = f.forward(b.x.cast<float>(), kT);
  EXPECT_LE((y32.cast<double>() - y64).norm(), 1e-5 * y64.norm());
  const MatD g = MatD::Random(y64.rows(), y64.cols());
  d.backward(g);
  f.backward(g.cast<float>());
  const std::vector<Param*> a = p64.all(), c = p32.all();
  ASSERT_EQ(a.size(), c.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const double scale = std::max(1e-3, a[i]->g.norm());
    EXPECT_LE((a[i]->g - c[i]->g).norm(), 1e-3 * scale) << "parameter " << i;
  }
}

// The calibration's batch step (windows on threads, one shared weight side whose backward runs on
// the summed gradients) equals one block over the whole batch: outputs and every gradient.
TEST(FlatquantCalibration, BatchStepEqualsOneBlockOverTheBatch) {
  OneBlock b;
  std::mt19937_64 rng(5);
  const BlockShape shape = block_shape_of(b.m.cfg);
  const FpBlock fp = fp_block_of(b.m.blocks[0]);
  QuantSettings s;
  BlockParams whole = moved_params(b, s, rng);
  BlockParams batched = whole;
  MatD x(3 * kT, b.x.cols());  // three windows: the first, then two perturbed copies
  for (int w = 0; w < 3; ++w) x.middleRows(w * kT, kT) = b.x.array() * (1.0 + 0.1 * w) + 0.01 * w;
  const MatD g = MatD::Random(x.rows(), x.cols());
  QuantBlock one(shape, fp, whole, s);
  const MatD y_one = one.forward(x, kT);
  one.backward(g);
  const MatD y_batch = batch_forward_backward(shape, fp, x, g, kT, batched, s);
  EXPECT_LE((y_batch - y_one).norm(), 1e-12 * y_one.norm());
  const std::vector<Param*> a = whole.all(), c = batched.all();
  ASSERT_EQ(a.size(), c.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_GT(a[i]->g.norm(), 0) << "parameter " << i << " got no gradient: the check would be empty";
    EXPECT_LE((a[i]->g - c[i]->g).norm(), 1e-9 * a[i]->g.norm()) << "parameter " << i;
  }
}

const json kTinyJob = {{"epochs", 1}, {"nsamples", 4}, {"seqlen", 32}, {"cali_bsz", 2}};

json with(json p, const json& more) {
  p.update(more);
  return p;
}

// Output error of a quantized copy of `m` against `m` itself, over held-out random windows.
double output_error(const Model& fp, const Model& q) {
  std::mt19937_64 rng(99);
  double err = 0, ref = 0;
  for (int w = 0; w < 3; ++w) {
    std::vector<int> tokens(32);
    for (int& t : tokens) t = int(rng() % fp.cfg.vocab_size);
    const Mat a = fp.forward(tokens), c = q.forward(tokens);
    err += (a - c).squaredNorm(), ref += a.squaredNorm();
  }
  return err / ref;
}

TEST(FlatquantMethod, AJobCalibratesEveryBlockAndDeploysEverySite) {
  const Model fp = tiny_synthetic("llama-tiny", 4);
  Model m = fp;
  const JobResult r = run_method("flatquant", m, nullptr, kTinyJob);
  ASSERT_EQ(r.sites.size(), size_t(7 * m.cfg.n_layers));
  for (const SiteRecord& s : r.sites) {
    EXPECT_EQ(s.w_bits, 4);
    EXPECT_EQ(s.extra.value("w_quantizer", ""), "rtn");
    EXPECT_NE(s.extra.value("op", "").find("flatquant"), std::string::npos) << s.extra.dump();
  }
  for (int l = 0; l < m.cfg.n_layers; ++l)
    EXPECT_LT(fb::test::metric(r, "calib_loss_block" + std::to_string(l)),
              fb::test::metric(r, "calib_init_loss_block" + std::to_string(l)));
  const double e = output_error(fp, m);
  EXPECT_TRUE(std::isfinite(e));
  EXPECT_GT(e, 0) << "W4A4KV4 changes the outputs";
}

// GPTQ on the merged weights (official main.py → gptq_fwrd) keeps the model closer to the
// float model than RTN of the same merged weights, and says so in every site record.
// (With as few calibration rows as a site has inputs, H is near singular and GPTQ fits noise:
// 32 windows of 32 tokens give every site ≥ 5× its width.)
TEST(FlatquantGptq, KeepsTheOutputsCloserThanRtn) {
  for (int outliers : {0, 4}) {
    const Model fp = tiny_synthetic("llama-tiny", 6, outliers);
    const json w4 = with(kTinyJob, {{"epochs", 0}, {"a_bits", 16}, {"k_bits", 16}, {"v_bits", 16}, {"nsamples", 32}});
    Model rtn = fp, gptq = fp;
    run_method("flatquant", rtn, nullptr, w4);
    const JobResult r = run_method("flatquant", gptq, nullptr, with(w4, {{"w_quantizer", "gptq"}}));
    for (const SiteRecord& s : r.sites) EXPECT_EQ(s.extra.value("w_quantizer", ""), "gptq") << s.role;
    EXPECT_GT(fb::test::metric(r, "gptq_seconds"), 0);
    const double e_rtn = output_error(fp, rtn), e_gptq = output_error(fp, gptq);
    EXPECT_LT(e_gptq, (outliers ? 0.5 : 0.95) * e_rtn) << outliers << " outlier channels: gptq " << e_gptq << " vs rtn "
                                                        << e_rtn;
  }
}

// With real_quant the GPTQ weights go into the integer operators (codes packed for the integer
// GEMM): the same weights as the fake-quant job (GPTQ runs on fake-quant operators either way).
TEST(FlatquantGptq, RealQuantOperatorsCarryTheGptqWeights) {
  const Model fp = tiny_synthetic("llama-tiny", 7);
  const json job = with(kTinyJob, {{"epochs", 0}, {"a_bits", 8}, {"w_quantizer", "gptq"}, {"nsamples", 32}});
  Model fake = fp, real = fp;
  run_method("flatquant", fake, nullptr, job);
  const JobResult r = run_method("flatquant", real, nullptr, with(job, {{"real_quant", true}}));
  for (size_t i = 0; i < real.sites().size(); ++i) {
    const auto& q = dynamic_cast<const FlatQuantLinear&>(*real.sites()[i]->op);
    const auto& f = dynamic_cast<const FlatQuantLinear&>(*fake.sites()[i]->op);
    EXPECT_TRUE(q.real_quant());
    EXPECT_EQ(q.weight(), f.weight()) << "the same GPTQ weight in both operators";
  }
  for (const SiteRecord& s : r.sites) EXPECT_EQ(s.extra.value("w_quantizer", ""), "gptq");
  EXPECT_LE(output_error(fake, real), 1e-8);
}

}  // namespace
}  // namespace fb::flatquant

// Every hand-written backward pass of FlatQuant's calibration against central finite
// differences in double precision. Quantizers are probed through a RoundingTape, which
// freezes round()'s offsets so the difference quotient sees the straight-through function.
#include "methods/flatquant/block.h"
#include "methods/flatquant/block_ops.h"
#include "methods/flatquant/fake_quant.h"
#include "methods/flatquant/params.h"
#include "flatquant_test_util.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>

namespace fb::flatquant {
namespace {

using test::random_mat;

// Σ w ⊙ f(...) as the scalar loss; its gradient w.r.t. f's output is w.
double weighted(const MatD& y, const MatD& w) { return y.cwiseProduct(w).sum(); }

// Central difference of `loss` w.r.t. every entry of `v` (or `max_entries` spread entries),
// compared with `grad`. The loss is re-evaluated with the rounding tape in replay mode.
void expect_grad(MatD& v, const MatD& grad, const std::function<double()>& loss, const char* what,
                 RoundingTape* tape = nullptr, double h = 1e-6, double tol = 1e-6, long max_entries = 40) {
  const long stride = std::max<long>(1, v.size() / max_entries);
  double scale = std::max(1.0, grad.cwiseAbs().maxCoeff());
  for (long i = 0; i < v.size(); i += stride) {
    double keep = v.data()[i];
    auto eval = [&](double value) {
      v.data()[i] = value;
      if (tape) tape->cursor = 0, tape->replay = true;
      set_rounding_tape(tape);
      double l = loss();
      set_rounding_tape(nullptr);
      return l;
    };
    double fd = (eval(keep + h) - eval(keep - h)) / (2 * h);
    v.data()[i] = keep;
    EXPECT_NEAR(grad.data()[i], fd, tol * scale) << what << " entry " << i;
  }
}

TEST(FlatquantBackward, Kronecker) {
  std::mt19937_64 rng(1);
  MatD A = random_mat(3, 3, rng), B = random_mat(5, 5, rng), x = random_mat(4, 15, rng), w = random_mat(4, 15, rng);
  MatD gx, gA = MatD::Zero(3, 3), gB = MatD::Zero(5, 5);
  kron_backward(x, A, B, w, &gx, &gA, &gB);
  auto loss = [&] {
    MatD y;
    kron_apply(x, A, B, y);
    return weighted(y, w);
  };
  expect_grad(x, gx, loss, "x");
  expect_grad(A, gA, loss, "A");
  expect_grad(B, gB, loss, "B");
}

TEST(FlatquantBackward, CayleyAndSvdFactor) {
  std::mt19937_64 rng(2);
  for (bool direct : {false, true}) {
    Factor f;
    f.init(5, direct, rng);
    if (!direct) f.sigma.v = (MatD::Random(5, 1).array() * 0.3 + 1).matrix();
    MatD w1 = random_mat(5, 5, rng), w2 = random_mat(5, 5, rng);
    auto loss = [&] {
      f.materialise();
      return weighted(f.mat, w1) + weighted(f.inv_t, w2);
    };
    loss();
    f.g_mat = w1, f.g_inv_t = w2;
    f.backward();
    for (Param* p : f.params()) expect_grad(p->v, p->g, loss, direct ? "direct A" : "svd param");
  }
}

TEST(FlatquantBackward, RmsNorm) {
  std::mt19937_64 rng(3);
  MatD x = random_mat(4, 8, rng), w = random_mat(4, 8, rng), y;
  VecD gamma = VecD::Random(8), rstd;
  rmsnorm_forward(x, gamma, 1e-5, y, rstd);
  MatD gx = MatD::Zero(4, 8);
  rmsnorm_backward(x, gamma, rstd, w, gx);
  expect_grad(x, gx, [&] { MatD yy; VecD r; rmsnorm_forward(x, gamma, 1e-5, yy, r); return weighted(yy, w); }, "x");
}

TEST(FlatquantBackward, RopeIsAnIsometryWhoseInverseIsItsTranspose) {
  std::mt19937_64 rng(4);
  for (bool interleaved : {true, false}) {
    MatD x = random_mat(6, 16, rng), w = random_mat(6, 16, rng);
    MatD g = w;
    rope_apply(g, 3, 8, 10000, interleaved, true);
    expect_grad(x, g, [&] { MatD y = x; rope_apply(y, 3, 8, 10000, interleaved, false); return weighted(y, w); },
                "x");
  }
}

TEST(FlatquantBackward, CausalGqaAttention) {
  std::mt19937_64 rng(5);
  const int T = 4, H = 4, KVH = 2, hd = 3;
  MatD q = random_mat(2 * T, H * hd, rng), k = random_mat(2 * T, KVH * hd, rng), v = random_mat(2 * T, KVH * hd, rng);
  MatD w = random_mat(2 * T, H * hd, rng), out, probs, gq, gk, gv;
  attention_forward(q, k, v, T, H, KVH, out, probs);
  attention_backward(q, k, v, probs, w, T, H, KVH, gq, gk, gv);
  auto loss = [&] { MatD o, p; attention_forward(q, k, v, T, H, KVH, o, p); return weighted(o, w); };
  expect_grad(q, gq, loss, "q");
  expect_grad(k, gk, loss, "k");
  expect_grad(v, gv, loss, "v");
}

// Windows longer than the attention's causal chunk (64 query rows): the chunk edges, a partial
// last chunk, and the forward against the unchunked masked softmax.
TEST(FlatquantBackward, CausalAttentionAcrossChunks) {
  std::mt19937_64 rng(15);
  const int T = 150, H = 2, KVH = 1, hd = 4;
  MatD q = random_mat(T, H * hd, rng), k = random_mat(T, KVH * hd, rng), v = random_mat(T, KVH * hd, rng);
  MatD w = random_mat(T, H * hd, rng), out, probs, gq, gk, gv;
  attention_forward(q, k, v, T, H, KVH, out, probs);
  for (int h = 0; h < H; ++h) {
    MatD S = q.middleCols(h * hd, hd) * k.transpose() / std::sqrt(double(hd));
    for (int i = 0; i < T; ++i) {
      for (int j = i + 1; j < T; ++j) S(i, j) = -1e300;
      S.row(i) = (S.row(i).array() - S.row(i).maxCoeff()).exp().matrix();
      S.row(i) /= S.row(i).sum();
    }
    EXPECT_LE((out.middleCols(h * hd, hd) - S * v).cwiseAbs().maxCoeff(), 1e-12) << "head " << h;
  }
  attention_backward(q, k, v, probs, w, T, H, KVH, gq, gk, gv);
  auto loss = [&] { MatD o, p; attention_forward(q, k, v, T, H, KVH, o, p); return weighted(o, w); };
  expect_grad(q, gq, loss, "q");
  expect_grad(k, gk, loss, "k");
  expect_grad(v, gv, loss, "v");
}

TEST(FlatquantBackward, SwiGluAndPerHead) {
  std::mt19937_64 rng(6);
  MatD g = random_mat(3, 6, rng), u = random_mat(3, 6, rng), w = random_mat(3, 6, rng), gg, gu;
  swiglu_backward(g, u, w, gg, gu);
  auto loss = [&] { MatD y; swiglu_forward(g, u, y); return weighted(y, w); };
  expect_grad(g, gg, loss, "gate");
  expect_grad(u, gu, loss, "up");
  MatD x = random_mat(3, 6, rng), M = random_mat(3, 3, rng), gx, gM = MatD::Zero(3, 3);
  per_head_backward(x, M, w, &gx, &gM);
  auto loss2 = [&] { MatD y; per_head_apply(x, M, y); return weighted(y, w); };
  expect_grad(x, gx, loss2, "x");
  expect_grad(M, gM, loss2, "M");
}

TEST(FlatquantBackward, ActivationQuantizerWithLacSymAndAsym) {
  std::mt19937_64 rng(7);
  for (bool sym : {true, false}) {
    QuantSpec spec{4, sym};
    MatD x = random_mat(5, 12, rng), w = random_mat(5, 12, rng);
    MatD amax(1, 1), amin(1, 1);
    amax(0, 0) = 1.2, amin(0, 0) = 0.7;  // clipping active: σ < 1
    for (int group : {12, 4}) {
      RoundingTape tape;
      MatD y, gx = MatD::Zero(5, 12), gmax = MatD::Zero(1, 1), gmin = MatD::Zero(1, 1);
      set_rounding_tape(&tape);
      act_quant_forward(x, group, spec, amax.data(), amin.data(), y);
      set_rounding_tape(nullptr);
      act_quant_backward(x, group, spec, amax.data(), amin.data(), w, gx, gmax.data(), gmin.data());
      auto loss = [&] { MatD yy; act_quant_forward(x, group, spec, amax.data(), amin.data(), yy); return weighted(yy, w); };
      expect_grad(x, gx, loss, sym ? "sym x" : "asym x", &tape, 1e-7);
      expect_grad(amax, gmax, loss, "amax", &tape, 1e-7);
      expect_grad(amin, gmin, loss, "amin", &tape, 1e-7);
    }
  }
}

TEST(FlatquantBackward, WeightClippingAndQuantizer) {
  std::mt19937_64 rng(8);
  MatD W = random_mat(4, 10, rng), w = random_mat(4, 10, rng);
  MatD cmax = MatD::Constant(4, 1, 1.0), cmin = MatD::Constant(4, 1, 0.5);
  RoundingTape tape;
  QuantSpec spec{4, true};
  auto forward = [&](MatD& out) {
    MatD c;
    lwc_forward(W, cmax, cmin, c);
    weight_quant_forward(c, spec, out);
  };
  MatD y;
  set_rounding_tape(&tape);
  forward(y);
  set_rounding_tape(nullptr);
  MatD c, gc = MatD::Zero(4, 10), gW = MatD::Zero(4, 10), gmax = MatD::Zero(4, 1), gmin = MatD::Zero(4, 1);
  lwc_forward(W, cmax, cmin, c);
  weight_quant_backward(c, spec, w, gc);
  lwc_backward(W, cmax, cmin, gc, gW, gmax, gmin);
  auto loss = [&] { MatD out; forward(out); return weighted(out, w); };
  expect_grad(W, gW, loss, "W", &tape, 1e-7);
  expect_grad(cmax, gmax, loss, "cmax", &tape, 1e-7);
  expect_grad(cmin, gmin, loss, "cmin", &tape, 1e-7);
}

// The whole quantized block (W4A4KV4, LWC, LAC, PS): gradient of the MSE loss w.r.t. a
// sample of every parameter tensor.
TEST(FlatquantBackward, WholeQuantizedBlock) {
  std::mt19937_64 rng(9);
  BlockShape shape{16, 24, 4, 2, 1e-5, 10000, true};
  const FpBlock fp = test::random_fp_block(shape, rng);
  const int T = 4;
  MatD x = random_mat(2 * T, 16, rng);
  InputStats stats;
  MatD target = fp_block_forward(shape, fp, x, T, &stats);
  QuantSettings s;
  s.q = QuantSpec{4, true};  // exercise the query quantizer too
  BlockParams p = init_block_params(shape, fp, stats, s, true, 0.3, rng);
  for (Factor* f : p.factors()) f->sigma.v = (MatD::Random(f->size(), 1).array() * 0.3 + 1).matrix();
  for (Param* prm : p.all())
    if (prm->group == Group::wclip || prm->group == Group::aclip) prm->v.array() -= 3.0;  // clipping active
  QuantBlock qb(shape, fp, p, s);
  RoundingTape tape;
  auto mse = [&](const MatD& y) { return (y - target).squaredNorm() / y.size(); };
  set_rounding_tape(&tape);
  MatD y = qb.forward(x, T);
  set_rounding_tape(nullptr);
  for (Param* prm : p.all()) prm->zero_grad();
  qb.backward(2.0 * (y - target) / y.size());
  auto loss = [&] { return mse(qb.forward(x, T)); };
  int checked = 0;
  for (Param* prm : p.all()) {
    expect_grad(prm->v, prm->g, loss, "block param", &tape, 1e-7, 2e-5, 6);
    ++checked;
  }
  EXPECT_GE(checked, 40);
}

}  // namespace
}  // namespace fb::flatquant

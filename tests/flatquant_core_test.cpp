// FlatQuant building blocks: Kronecker apply (T-1), factor sizes (T-2), Cayley/SVD factors
// and their inverse (T-3), and transform equivalence of the whole block (T-4).
#include "methods/flatquant/block.h"
#include "methods/flatquant/kron.h"
#include "methods/flatquant/params.h"
#include "flatquant_test_util.h"

#include <gtest/gtest.h>

#include <random>

namespace fb::flatquant {
namespace {

using test::random_mat;

TEST(FlatquantKron, ApplyEqualsExplicitKroneckerForRectangularFactors) {
  std::mt19937_64 rng(1);
  for (auto [n1, n2] : {std::pair{3, 5}, std::pair{5, 3}, std::pair{2, 86}}) {
    MatD A = random_mat(n1, n1, rng), B = random_mat(n2, n2, rng), x = random_mat(7, n1 * n2, rng);
    MatD y;
    kron_apply(x, A, B, y);
    MatD expected = x * kron_dense(A, B);
    EXPECT_LE((y - expected).cwiseAbs().maxCoeff(), 1e-12 * expected.cwiseAbs().maxCoeff()) << n1 << "x" << n2;
  }
}

TEST(FlatquantKron, FloatInstantiationMatchesDouble) {
  std::mt19937_64 rng(2);
  MatD A = random_mat(4, 4, rng), B = random_mat(6, 6, rng), x = random_mat(5, 24, rng);
  MatD y;
  kron_apply(x, A, B, y);
  MatX<float> yf;
  kron_apply<float>(x.cast<float>(), A.cast<float>(), B.cast<float>(), yf);
  EXPECT_LE((yf.cast<double>() - y).cwiseAbs().maxCoeff(), 1e-5 * y.cwiseAbs().maxCoeff());
}

TEST(FlatquantKron, RejectsMismatchedWidth) {
  MatD A = MatD::Identity(3, 3), B = MatD::Identity(4, 4), x = MatD::Zero(2, 13), y;
  EXPECT_THROW(kron_apply(x, A, B, y), std::invalid_argument);
}

TEST(FlatquantKron, DecomposeDimMatchesOfficialTable) {
  const std::pair<int, std::pair<int, int>> table[] = {
      {4096, {64, 64}},   {11008, {86, 128}}, {14336, {112, 128}}, {5120, {64, 80}},  {13824, {108, 128}},
      {8192, {64, 128}},  {28672, {128, 224}}, {3584, {56, 64}},   {18944, {128, 148}}, {27648, {144, 192}},
      {2048, {32, 64}},   {64, {8, 8}},        {172, {2, 86}}};
  for (auto [k, dims] : table) EXPECT_EQ(decompose_dim(k), dims) << k;
  for (int k = 1; k < 3000; k += 37) {
    if (k % 4 == 2) {
      EXPECT_THROW(decompose_dim(k), std::invalid_argument) << k;
      continue;
    }
    auto [n1, n2] = decompose_dim(k);
    EXPECT_EQ(n1 * n2, k);
    EXPECT_LE(n1, n2);
  }
}

TEST(FlatquantFactor, CayleyIsOrthogonal) {
  std::mt19937_64 rng(3);
  for (int n : {1, 4, 13}) {
    MatD Q = cayley(random_mat(n, n, rng, 2.0));
    EXPECT_LE((Q.transpose() * Q - MatD::Identity(n, n)).cwiseAbs().maxCoeff(), 1e-12) << n;
  }
  MatD R = random_orthogonal(9, rng);
  EXPECT_LE((R.transpose() * R - MatD::Identity(9, 9)).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(FlatquantFactor, ClosedFormInverseTransposeIsExact) {
  std::mt19937_64 rng(4);
  for (bool direct : {false, true}) {
    Factor f;
    f.init(7, direct, rng);
    if (!direct) f.sigma.v = MatD::Random(7, 1).array() + 1.5;  // σ > 0, away from 1
    f.materialise();
    EXPECT_LE((f.mat * f.inv_t.transpose() - MatD::Identity(7, 7)).cwiseAbs().maxCoeff(), 1e-12) << direct;
  }
}

TEST(FlatquantFactor, InitialFactorIsARotationThatPreservesNorms) {  // T-6
  std::mt19937_64 rng(5);
  Factor l, r;
  l.init(4, false, rng);
  r.init(6, false, rng);
  l.materialise();
  r.materialise();
  MatD x = random_mat(3, 24, rng), y;
  kron_apply(x, l.mat, r.mat, y);
  for (int t = 0; t < 3; ++t) {
    EXPECT_NEAR(y.row(t).norm(), x.row(t).norm(), 1e-12);
    EXPECT_LE(y.row(t).cwiseAbs().maxCoeff(), x.row(t).norm() + 1e-12);
  }
}

// A small GQA block with random weights (dim 16 → n1×n2 = 4×4, hidden 24 → 4×6).
struct TinyBlock {
  BlockShape shape{16, 24, 4, 2, 1e-5, 10000, true};
  FpBlock fp;
  explicit TinyBlock(uint64_t seed) {
    std::mt19937_64 rng(seed);
    fp = test::random_fp_block(shape, rng);
  }
};

TEST(FlatquantBlock, TransformedBlockWithoutQuantizersReproducesOriginal) {  // T-4 / T-9
  TinyBlock b(6);
  std::mt19937_64 rng(7);
  const int T = 5;
  MatD x = random_mat(2 * T, 16, rng);
  InputStats stats;
  MatD y_fp = fp_block_forward(b.shape, b.fp, x, T, &stats);
  for (bool direct : {false, true}) {
    QuantSettings s;
    s.quantize = false;
    s.lwc = false;
    s.direct_inv = direct;
    BlockParams p = init_block_params(b.shape, b.fp, stats, s, true, 0.3, rng);
    for (Factor* f : p.factors())  // move σ off 1 so the inverse really matters
      if (!f->direct) f->sigma.v = (MatD::Random(f->size(), 1).array() * 0.4 + 1).matrix();
    QuantBlock qb(b.shape, b.fp, p, s);
    MatD y = qb.forward(x, T);
    EXPECT_LE((y - y_fp).cwiseAbs().maxCoeff(), 1e-10 * y_fp.cwiseAbs().maxCoeff()) << direct;
  }
}

TEST(FlatquantBlock, DiagInitFollowsSmoothQuantShape) {
  TinyBlock b(8);
  std::mt19937_64 rng(9);
  MatD x = random_mat(6, 16, rng);
  InputStats stats;
  fp_block_forward(b.shape, b.fp, x, 6, &stats);
  QuantSettings s;
  BlockParams p = init_block_params(b.shape, b.fp, stats, s, true, 0.3, rng);
  ASSERT_TRUE(p.down.has_diag());
  const int k = 3;
  double wmax = b.fp.wdown.col(k).cwiseAbs().maxCoeff();
  EXPECT_NEAR(p.down.diag.v(k, 0), std::pow(wmax, 0.7) / std::pow(stats.down(k), 0.3), 1e-12);
  EXPECT_EQ(p.q.wmax.v(0, 0), 4.0);
  EXPECT_NEAR(sigmoid(4.0), 0.98201379, 1e-8);  // T-7
}

}  // namespace
}  // namespace fb::flatquant

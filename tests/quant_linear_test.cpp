// Fake-quant and real-quant operators agree (up to float rounding of the epilogue), and the
// integer path matches the FP64 product of the dequantized operands.
#include "methods/common/quant_linear.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <random>

namespace fb {
namespace {

using test::gaussian_matrix;

struct Case {
  int w_bits, a_bits;
  Granularity w_gran, a_gran;
  bool w_sym, a_sym, a_static;
};

QuantSpec make_spec(int bits, Granularity g, bool sym) {
  QuantSpec s;
  s.bits = bits;
  s.granularity = g;
  s.sym = sym;
  return s;
}

double max_abs(const Mat& m) { return m.cwiseAbs().maxCoeff(); }

void expect_fake_equals_real(const Case& c) {
  const int T = 13, K = 67, N = 21;  // odd K exercises the int4 row padding
  Mat X = gaussian_matrix(T, K, 11, 2.f), W = gaussian_matrix(N, K, 12, 0.3f);
  X.col(5) *= 20.f;  // an outlier channel
  Vec b = gaussian_matrix(N, 1, 13).col(0);
  QuantizedWeight qw = quantize_weight_rtn(W, make_spec(c.w_bits, c.w_gran, c.w_sym), false);
  ActQuantizer act{make_spec(c.a_bits, c.a_gran, c.a_sym), c.a_static, -30.f, 35.f};
  FakeQuantLinear fake(qw, b, act);
  Mat yf;
  fake.forward(X, yf);
  const double tol = 1e-5 * max_abs(yf);
  Mat xq = X;
  act.apply(xq);
  Eigen::MatrixXd ref = xq.cast<double>() * qw.dequantized().cast<double>().transpose();
  ref.rowwise() += b.cast<double>().transpose();

  for (bool use_reference : {true, false}) {  // scalar reference kernel and the fast packed kernel
    RealQuantLinear real(qw, b, act, use_reference);
    Mat yr;
    real.forward(X, yr);
    ASSERT_EQ(yr.rows(), T);
    ASSERT_EQ(yr.cols(), N);
    EXPECT_LE(max_abs(yf - yr), tol) << fake.describe() << " vs " << real.describe();
    // the integer path equals the FP64 product of the dequantized operands.
    EXPECT_LE((ref - yr.cast<double>()).cwiseAbs().maxCoeff(), 1e-5 * ref.cwiseAbs().maxCoeff()) << real.describe();
    // And quantization did something: the output differs from the fp32 product.
    Mat exact = X * W.transpose();
    exact.rowwise() += b.transpose();
    EXPECT_GT(max_abs(exact - yr), tol);
  }
}

TEST(QuantLinear, FakeEqualsRealInt8PerTokenPerChannel) {
  expect_fake_equals_real({8, 8, Granularity::per_channel, Granularity::per_token, true, true, false});
}
TEST(QuantLinear, FakeEqualsRealInt4PerTokenPerChannel) {
  expect_fake_equals_real({4, 4, Granularity::per_channel, Granularity::per_token, true, true, false});
  expect_fake_equals_real({4, 8, Granularity::per_channel, Granularity::per_token, true, true, false});
}
TEST(QuantLinear, FakeEqualsRealPerTensor) {
  expect_fake_equals_real({8, 8, Granularity::per_tensor, Granularity::per_tensor, true, true, false});
  expect_fake_equals_real({4, 4, Granularity::per_tensor, Granularity::per_tensor, true, true, false});
}
TEST(QuantLinear, FakeEqualsRealStaticActivations) {
  expect_fake_equals_real({8, 8, Granularity::per_tensor, Granularity::per_tensor, true, true, true});
}
TEST(QuantLinear, FakeEqualsRealAsymmetricZeroPoints) {
  expect_fake_equals_real({8, 8, Granularity::per_channel, Granularity::per_token, false, false, false});
  expect_fake_equals_real({4, 4, Granularity::per_channel, Granularity::per_token, false, true, false});
  expect_fake_equals_real({4, 8, Granularity::per_tensor, Granularity::per_tensor, true, false, false});
}

TEST(QuantLinear, WeightOnlyRealQuantMatchesFake) {
  Mat X = gaussian_matrix(5, 32, 1), W = gaussian_matrix(8, 32, 2);
  QuantizedWeight qw = quantize_weight_rtn(W, make_spec(4, Granularity::per_channel, true), false);
  ActQuantizer none;
  none.spec.bits = 16;
  Mat yf, yr;
  FakeQuantLinear(qw, Vec(), none).forward(X, yf);
  RealQuantLinear(qw, Vec(), none).forward(X, yr);
  EXPECT_LE(max_abs(yf - yr), 1e-5 * max_abs(yf));
}

TEST(QuantLinear, RealQuantRejectsScalesAlongK) {
  Mat W = gaussian_matrix(4, 64, 3);
  ActQuantizer act{make_spec(8, Granularity::per_token, true)};
  QuantSpec g = make_spec(4, Granularity::per_group, true);
  g.group = 32;
  QuantizedWeight grouped = quantize_weight_rtn(W, g, false);
  EXPECT_THROW(RealQuantLinear(grouped, Vec(), act), std::invalid_argument);
}

TEST(QuantLinear, FootprintCountsPackedBytes) {
  Mat W = gaussian_matrix(6, 9, 4);
  QuantizedWeight qw = quantize_weight_rtn(W, make_spec(4, Granularity::per_channel, true), false);
  ActQuantizer act{make_spec(8, Granularity::per_token, true)};
  OpFootprint real = RealQuantLinear(qw, Vec(), act).footprint();
  EXPECT_EQ(real.packed_bytes, 6 * 5);  // (9 + 1) / 2 bytes per row
  EXPECT_EQ(real.scale_values, 6);
  OpFootprint fake = FakeQuantLinear(qw, Vec(), act).footprint();
  EXPECT_EQ(footprint_weight_bytes(fake, 2), std::ceil(6 * 9 * 4 / 8.0));
  EXPECT_EQ(fake.a_bits, 8);
}

}  // namespace
}  // namespace fb

// Quantizer primitives: docs/methods.md §5 invariants Q-1..Q-5 and Q-7.
#include "kernels/quant.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace fb {
namespace {

using test::gaussian_matrix;

QuantSpec spec(int bits, bool sym, Granularity g, int group = 0) {
  QuantSpec s;
  s.bits = bits;
  s.sym = sym;
  s.granularity = g;
  s.group = group;
  return s;
}

TEST(QuantPrimitives, Q1_GridValuesRoundTrip) {
  for (int bits : {2, 3, 4, 8})
    for (bool sym : {true, false}) {
      QuantSpec s = spec(bits, sym, Granularity::per_tensor);
      const float scale = 0.0371f, zero = sym ? 0.f : float(s.qmax() / 3);
      for (int q = s.qmin(); q <= s.qmax(); ++q) {
        float x = scale * (float(q) - zero);
        EXPECT_EQ(quantize_code(x, scale, zero, s.qmin(), s.qmax()), float(q)) << bits << " bits, q=" << q;
      }
    }
}

TEST(QuantPrimitives, Q1_FakeQuantIsIdempotent) {
  // A dequantized tensor lies on its own grid: quantizing it again with the same parameters changes nothing.
  QMat X = gaussian_matrix(7, 33, 1);
  for (bool sym : {true, false}) {
    QuantSpec s = spec(4, sym, Granularity::per_token);
    QuantParams p = compute_params(X, s);
    QMat once = X;
    fake_quantize(once, p, s);
    QMat twice = once;
    fake_quantize(twice, p, s);
    EXPECT_EQ((once - twice).cwiseAbs().maxCoeff(), 0.f);
  }
}

// Every element within half a step of its reconstruction (symmetric), or a full step (asymmetric, z rounded).
void expect_error_bound(const QMat& X, const QuantSpec& s) {
  QuantParams p = compute_params(X, s);
  QMat Y = X;
  fake_quantize(Y, p, s);
  const float slack = s.sym ? 0.5f : 1.0f;
  for (int r = 0; r < X.rows(); ++r)
    for (int c = 0; c < X.cols(); ++c)
      ASSERT_LE(std::fabs(Y(r, c) - X(r, c)), slack * p.scale_at(r, c) * (1 + 1e-5f))
          << s.describe() << " at (" << r << ", " << c << ")";
}

TEST(QuantPrimitives, Q2_ErrorBoundNoClip) {
  QMat X = gaussian_matrix(16, 96, 2, 3.f);
  for (int bits : {2, 4, 8})
    for (bool sym : {true, false}) {
      expect_error_bound(X, spec(bits, sym, Granularity::per_tensor));
      expect_error_bound(X, spec(bits, sym, Granularity::per_channel));
      expect_error_bound(X, spec(bits, sym, Granularity::per_group, 32));
      expect_error_bound(X, spec(bits, sym, Granularity::per_group, 40));  // ragged last group
    }
}

TEST(QuantPrimitives, Q2_ClipSaturatesOutliersAndBoundsTheRest) {
  QMat X = gaussian_matrix(8, 64, 3);
  X(2, 5) = 25.f;  // outlier
  QuantSpec s = spec(4, true, Granularity::per_token);
  s.clip = 0.5f;
  QuantParams p = compute_params(X, s);
  QMat Y = X;
  fake_quantize(Y, p, s);
  for (int r = 0; r < X.rows(); ++r) {
    float limit = 0.5f * X.row(r).cwiseAbs().maxCoeff();
    float sc = p.scale_at(r, 0);
    EXPECT_NEAR(sc, limit / 7.f, 1e-6f);
    for (int c = 0; c < X.cols(); ++c) {
      if (std::fabs(X(r, c)) <= limit) {
        EXPECT_LE(std::fabs(Y(r, c) - X(r, c)), 0.5f * sc * (1 + 1e-5f));
      } else {
        // Beyond the clip: positive values saturate at qmax·s, negative ones reach −qmax·s or −(qmax+1)·s.
        bool saturated = X(r, c) > 0 ? Y(r, c) == 7 * sc : (Y(r, c) == -7 * sc || Y(r, c) == -8 * sc);
        EXPECT_TRUE(saturated) << "element " << X(r, c) << " beyond the clip gave " << Y(r, c);
      }
    }
  }
}

TEST(QuantPrimitives, Q3_CodeRanges) {
  QMat X = gaussian_matrix(32, 64, 4, 5.f);
  for (int bits : {4, 8}) {
    QuantSpec sym = spec(bits, true, Granularity::per_channel);
    std::vector<int8_t> codes = quantize_codes(X, compute_params(X, sym), sym);
    int lo = *std::min_element(codes.begin(), codes.end()), hi = *std::max_element(codes.begin(), codes.end());
    EXPECT_EQ(hi, (1 << (bits - 1)) - 1);        // abs-max element lands on ±qmax
    EXPECT_GE(lo, -(1 << (bits - 1)) + 1);       // s = absmax/qmax never produces −2^(b−1)
    QuantSpec asym = spec(bits, false, Granularity::per_channel);
    QuantParams pa = compute_params(X, asym);
    std::vector<int8_t> acodes = quantize_codes(X, pa, asym);
    for (int8_t c : acodes) {
      int grid = c - asym.storage_offset();
      ASSERT_GE(grid, 0);
      ASSERT_LE(grid, (1 << bits) - 1);
    }
    EXPECT_LE((dequantize_codes(acodes, pa, asym) - fake_quantized(X, asym)).cwiseAbs().maxCoeff(), 0.f);
  }
}

TEST(QuantPrimitives, Q4_ZeroRows) {
  QMat X = QMat::Zero(3, 16);
  X.row(1).setConstant(0.25f);
  for (bool sym : {true, false}) {
    QuantSpec act = spec(4, sym, Granularity::per_token);
    QuantParams pa = compute_params(X, act);
    EXPECT_EQ(pa.scale_at(0, 0), sym ? 1.f : 2.f / 15.f);  // zero range → s = 1 (asym: range [−1, 1])
    QMat Y = fake_quantized(X, act);
    EXPECT_TRUE(Y.allFinite());
    EXPECT_EQ(Y.row(0).cwiseAbs().maxCoeff(), 0.f);
    EXPECT_EQ(Y.row(2).cwiseAbs().maxCoeff(), 0.f);

    QuantSpec w = act;
    w.weight = true;
    QuantParams pw = compute_params(X, w);
    EXPECT_NEAR(pw.scale_at(0, 0), 1e-5f / float(w.qmax()), 1e-12f);
    QMat W = X;
    fake_quantize(W, pw, w);
    EXPECT_TRUE(W.allFinite());
    EXPECT_EQ(W.row(0).cwiseAbs().maxCoeff(), 0.f);
  }
}

TEST(QuantPrimitives, Q5_ScaleInvariance) {
  QMat X = gaussian_matrix(9, 40, 5);
  for (bool sym : {true, false}) {
    QuantSpec s = spec(4, sym, Granularity::per_token);
    QMat base = fake_quantized(X, s);
    for (float alpha : {0.25f, 2.f, 8.f}) {  // powers of two: exact
      QMat scaled = fake_quantized(QMat(alpha * X), s);
      EXPECT_EQ((scaled - alpha * base).cwiseAbs().maxCoeff(), 0.f) << alpha;
    }
    QMat scaled = fake_quantized(QMat(1.7f * X), s);  // otherwise up to rounding of x/s
    int differ = 0;
    for (int i = 0; i < X.size(); ++i)
      if (std::fabs(scaled.data()[i] - 1.7f * base.data()[i]) > 1e-5f * (1 + std::fabs(scaled.data()[i]))) ++differ;
    EXPECT_LE(differ, 2);
  }
}

TEST(QuantPrimitives, StaticPerTensorParams) {
  QuantSpec s = spec(8, true, Granularity::per_token);
  QuantParams p = static_params(-3.f, 5.f, 4, 10, s);
  EXPECT_TRUE(p.per_tensor);
  EXPECT_FLOAT_EQ(p.scale_at(3, 9), 5.f / 127.f);
  QMat X = QMat::Constant(4, 10, 10.f);  // beyond the calibrated range: saturates
  fake_quantize(X, p, s);
  EXPECT_FLOAT_EQ(X(0, 0), 127 * 5.f / 127.f);
}

TEST(QuantPrimitives, MseClipSearchNeverWorseThanNoClip) {
  QMat W = gaussian_matrix(12, 128, 6);
  W(3, 7) = 9.f;  // an outlier makes shrinking worthwhile for row 3
  QuantSpec s = spec(3, true, Granularity::per_channel);
  s.weight = true;
  std::vector<float> clips = search_clip_mse(W, s);
  ASSERT_EQ(clips.size(), 12u);
  QMat plain = fake_quantized(W, s), searched = W;
  fake_quantize(searched, compute_params(W, s, &clips), s);
  for (int r = 0; r < W.rows(); ++r) {
    double e_plain = (plain.row(r) - W.row(r)).array().abs().pow(2.4f).sum();
    double e_search = (searched.row(r) - W.row(r)).array().abs().pow(2.4f).sum();
    EXPECT_LE(e_search, e_plain * (1 + 1e-6)) << "row " << r;
    EXPECT_GE(clips[r], 0.21f - 1e-6f);
  }
  EXPECT_LT(clips[3], 1.f);
}

TEST(QuantPrimitives, Q7_Int4PackRoundTripAndLayout) {
  std::vector<int8_t> codes;
  for (int i = 0; i < 3 * 7; ++i) codes.push_back(int8_t((i * 5) % 16 - 8));
  std::vector<uint8_t> packed = pack_int4(codes.data(), 3, 7);
  ASSERT_EQ(packed.size(), 3u * 4u);  // odd width pads the last byte
  std::vector<int8_t> back(codes.size());
  unpack_int4(packed.data(), 3, 7, back.data());
  EXPECT_EQ(back, codes);

  int8_t pair[2] = {-3, 5};  // low nibble = even index, two's complement
  std::vector<uint8_t> one = pack_int4(pair, 1, 2);
  EXPECT_EQ(one[0], uint8_t(0x5D));
  int8_t bad = 8;
  EXPECT_THROW(pack_int4(&bad, 1, 1), std::out_of_range);
}

TEST(QuantPrimitives, SpecValidation) {
  EXPECT_THROW(spec(1, true, Granularity::per_tensor).validate(), std::invalid_argument);
  EXPECT_THROW(spec(4, true, Granularity::per_group, 0).validate(), std::invalid_argument);
  EXPECT_THROW(parse_granularity("per_row"), std::invalid_argument);
  EXPECT_EQ(parse_granularity("per_token"), Granularity::per_token);
  EXPECT_FALSE(spec(16, true, Granularity::per_tensor).enabled());
}

}  // namespace
}  // namespace fb

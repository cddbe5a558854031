// The fast integer GEMMs (kernels/gemm_s8.h) against the scalar references, on shapes that
// are multiples of no tile, on each ISA path the CPU has (a missing one skips, saying why).
#include "kernels/gemm_ref.h"
#include "kernels/gemm_s8.h"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <vector>

namespace fb {
namespace {

struct Shape {
  long m, n, k;
};
// Edge rows/cols, K tails of every size modulo 8, K spanning several k blocks (4096, so
// partial sums round-trip through the output), M spanning several row blocks (192).
const Shape kOddShapes[] = {{1, 1, 1},       {7, 13, 5},     {13, 67, 37},   {6, 64, 8},  {5, 129, 3},
                            {29, 130, 1031}, {200, 70, 515}, {3, 200, 1},    {7, 65, 8201}};

std::vector<int8_t> random_s8(long count, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int8_t> v(count);
  for (auto& x : v) x = int8_t(dist(rng));
  return v;
}

std::vector<uint8_t> pack_int4_rows(const std::vector<int8_t>& w, long N, long K) {
  std::vector<uint8_t> packed(N * int4_row_bytes(K), 0xEE);  // garbage in the unused odd-K nibble
  for (long n = 0; n < N; ++n)
    for (long k = 0; k < K; ++k) {
      uint8_t& byte = packed[n * int4_row_bytes(K) + k / 2];
      const uint8_t nib = uint8_t(w[n * K + k]) & 0x0F;
      byte = k % 2 == 0 ? uint8_t((byte & 0xF0) | nib) : uint8_t((byte & 0x0F) | nib << 4);
    }
  return packed;
}

class KernelsGemm : public ::testing::TestWithParam<GemmIsa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam()))
      GTEST_SKIP() << "this CPU lacks the " << isa_name(GetParam()) << " path; its kernels are not exercised here";
  }
};

TEST_P(KernelsGemm, S8MatchesReferenceExactly) {
  for (const Shape& s : kOddShapes) {
    SCOPED_TRACE(testing::Message() << "M=" << s.m << " N=" << s.n << " K=" << s.k);
    auto A = random_s8(s.m * s.k, -128, 127, 1), B = random_s8(s.n * s.k, -128, 127, 2);
    std::vector<int32_t> want(s.m * s.n), got(s.m * s.n, -7);
    gemm_s8s8s32_ref(A.data(), B.data(), want.data(), s.m, s.n, s.k);
    PackedWeights packed = pack_weights_s8(B.data(), s.n, s.k, GetParam());
    for (int threads : {1, 2, 3}) {
      gemm_s8_packed(A.data(), s.m, packed, got.data(), threads);
      EXPECT_EQ(got, want) << "threads=" << threads;
    }
  }
}

TEST_P(KernelsGemm, S8ExtremeValuesDoNotOverflowOrSaturate) {
  // Every product is (-128)·(-128): the worst case for vpmaddubsw-style saturation and for
  // the +128 offset correction.
  const long M = 3, N = 17, K = 2053;
  std::vector<int8_t> A(M * K, -128), B(N * K, -128);
  std::vector<int32_t> got(M * N);
  gemm_s8_packed(A.data(), M, pack_weights_s8(B.data(), N, K, GetParam()), got.data());
  for (int32_t v : got) ASSERT_EQ(v, 128 * 128 * K);
  // At the largest K accepted, the offset accumulator's worst case (a = −128, w + 128 = 255).
  const long K_max = 65793;
  std::vector<int8_t> a_max(K_max, -128), b_max(K_max, 127);
  int32_t c = 0;
  gemm_s8_packed(a_max.data(), 1, pack_weights_s8(b_max.data(), 1, K_max, GetParam()), &c);
  EXPECT_EQ(c, -128 * 127 * K_max);
}

TEST_P(KernelsGemm, S4MatchesReferenceExactly) {
  for (const Shape& s : kOddShapes) {
    SCOPED_TRACE(testing::Message() << "M=" << s.m << " N=" << s.n << " K=" << s.k);
    auto A = random_s8(s.m * s.k, -128, 127, 3);
    auto B4 = pack_int4_rows(random_s8(s.n * s.k, -8, 7, 4), s.n, s.k);
    std::vector<int32_t> want(s.m * s.n), got(s.m * s.n, -7);
    gemm_s8s4s32_ref(A.data(), B4.data(), want.data(), s.m, s.n, s.k);
    PackedWeights packed = pack_weights_s4(B4.data(), s.n, s.k, GetParam());
    for (int threads : {1, 2}) {
      gemm_s8_packed(A.data(), s.m, packed, got.data(), threads);
      EXPECT_EQ(got, want) << "threads=" << threads;
    }
  }
}

// Shapes big enough that the kernels really fork (≥ 4M multiply-adds per thread): one
// splitting the panels between threads, one with a single panel splitting the rows.
TEST_P(KernelsGemm, ThreadedSplitsMatchReference) {
  for (const Shape& s : {Shape{50, 300, 1101}, Shape{400, 60, 701}}) {
    SCOPED_TRACE(testing::Message() << "M=" << s.m << " N=" << s.n << " K=" << s.k);
    auto A = random_s8(s.m * s.k, -128, 127, 8);
    auto Bw = random_s8(s.n * s.k, -8, 7, 9);
    auto B4 = pack_int4_rows(Bw, s.n, s.k);
    std::vector<int32_t> want8(s.m * s.n), want4(s.m * s.n), got(s.m * s.n);
    gemm_s8s8s32_ref(A.data(), Bw.data(), want8.data(), s.m, s.n, s.k);
    gemm_s8s4s32_ref(A.data(), B4.data(), want4.data(), s.m, s.n, s.k);
    for (int threads : {2, 3}) {
      gemm_s8_packed(A.data(), s.m, pack_weights_s8(Bw.data(), s.n, s.k, GetParam()), got.data(), threads);
      EXPECT_EQ(got, want8) << "s8, threads=" << threads;
      gemm_s8_packed(A.data(), s.m, pack_weights_s4(B4.data(), s.n, s.k, GetParam()), got.data(), threads);
      EXPECT_EQ(got, want4) << "s4, threads=" << threads;
    }
  }
}

void expect_dequantized_equal(GemmIsa isa, WeightFormat format, long n_sa_mode, long n_sb_mode, bool with_bias) {
  const long M = 37, N = 75, K = 4099;  // two k blocks: the epilogue reads back int32 partials
  auto A = random_s8(M * K, -128, 127, 5);
  auto Bw = random_s8(N * K, format == WeightFormat::kS8 ? -128 : -8, format == WeightFormat::kS8 ? 127 : 7, 6);
  auto B4 = pack_int4_rows(Bw, N, K);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> pos(0.001f, 0.1f), any(-2.0f, 2.0f);
  std::vector<float> sa(n_sa_mode == 1 ? 1 : M), sb(n_sb_mode == 1 ? 1 : N), bias(N);
  for (auto& v : sa) v = pos(rng);
  for (auto& v : sb) v = pos(rng);
  for (auto& v : bias) v = any(rng);
  std::vector<int32_t> C(M * N);
  format == WeightFormat::kS8 ? gemm_s8s8s32_ref(A.data(), Bw.data(), C.data(), M, N, K)
                              : gemm_s8s4s32_ref(A.data(), B4.data(), C.data(), M, N, K);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> want(M * N), got(M * N);
  dequantize_s32_ref(C.data(), M, N, sa.data(), long(sa.size()), sb.data(), long(sb.size()), b, want.data());
  PackedWeights packed = format == WeightFormat::kS8 ? pack_weights_s8(Bw.data(), N, K, isa)
                                                     : pack_weights_s4(B4.data(), N, K, isa);
  DequantEpilogue ep{sa.data(), long(sa.size()), sb.data(), long(sb.size()), b};
  gemm_s8_packed(A.data(), M, packed, ep, got.data(), 2);
  for (long i = 0; i < M * N; ++i) ASSERT_FLOAT_EQ(got[i], want[i]) << "at " << i;
}

TEST_P(KernelsGemm, FusedEpiloguePerTokenPerChannelWithBias) {
  expect_dequantized_equal(GetParam(), WeightFormat::kS8, 0, 0, true);
  expect_dequantized_equal(GetParam(), WeightFormat::kS4, 0, 0, true);
}

TEST_P(KernelsGemm, FusedEpiloguePerTensorWithoutBias) {
  expect_dequantized_equal(GetParam(), WeightFormat::kS8, 1, 1, false);
  expect_dequantized_equal(GetParam(), WeightFormat::kS4, 1, 1, false);
}

TEST_P(KernelsGemm, EpilogueRejectsWrongScaleCounts) {
  std::vector<int8_t> A(4 * 8, 1), B(5 * 8, 1);
  std::vector<float> s(3, 1.0f), Y(4 * 5);
  PackedWeights packed = pack_weights_s8(B.data(), 5, 8, GetParam());
  EXPECT_THROW(gemm_s8_packed(A.data(), 4, packed, DequantEpilogue{s.data(), 3, s.data(), 1}, Y.data()),
               std::invalid_argument);
  EXPECT_THROW(gemm_s8_packed(A.data(), 4, packed, DequantEpilogue{s.data(), 1, s.data(), 3}, Y.data()),
               std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Isa, KernelsGemm, ::testing::Values(GemmIsa::kAvx2, GemmIsa::kAvx512Vnni),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

TEST(KernelsGemmPacking, RejectsEmptyWeightsAndUnknownPaths) {
  std::vector<int8_t> B(4, 1);
  EXPECT_THROW(pack_weights_s8(B.data(), 0, 4), std::invalid_argument);
  std::vector<int8_t> wide(65794, 1);  // one past the K whose int32 sums provably fit
  EXPECT_THROW(pack_weights_s8(wide.data(), 1, 65794), std::invalid_argument);
  EXPECT_NO_THROW(pack_weights_s8(wide.data(), 1, 65793));
  EXPECT_NO_THROW(pack_weights_s8(B.data(), 1, 4, GemmIsa::kAuto));
  if (!isa_supported(GemmIsa::kAvx512Vnni)) {
    EXPECT_THROW(pack_weights_s8(B.data(), 1, 4, GemmIsa::kAvx512Vnni), std::runtime_error);
  }
}

}  // namespace
}  // namespace fb

// The scalar reference kernels: checked on hand-worked examples and against each other
// (an int4 GEMM equals the int8 GEMM of its unpacked weights).
#include "kernels/gemm_ref.h"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <vector>

namespace fb {
namespace {

TEST(KernelsRef, S8GemmHandWorked) {
  // A = [[1, -2, 3]], B = [[4, 5, 6], [-128, 127, -1]]
  std::vector<int8_t> A = {1, -2, 3};
  std::vector<int8_t> B = {4, 5, 6, -128, 127, -1};
  std::vector<int32_t> C(2);
  gemm_s8s8s32_ref(A.data(), B.data(), C.data(), 1, 2, 3);
  EXPECT_EQ(C[0], 1 * 4 - 2 * 5 + 3 * 6);
  EXPECT_EQ(C[1], -128 - 254 - 3);
}

TEST(KernelsRef, S4GemmHandWorkedOddK) {
  // K = 3: row 0 holds (7, -8, -1), row 1 holds (-3, 2, 0); the unused nibble is garbage.
  std::vector<int8_t> A = {2, 3, -5};
  std::vector<uint8_t> B4 = {uint8_t(0x07 | 0x80), uint8_t(0x0F | 0xA0), uint8_t(0x0D | 0x20), uint8_t(0x00 | 0x50)};
  std::vector<int32_t> C(2);
  gemm_s8s4s32_ref(A.data(), B4.data(), C.data(), 1, 2, 3);
  EXPECT_EQ(C[0], 2 * 7 + 3 * -8 + -5 * -1);
  EXPECT_EQ(C[1], 2 * -3 + 3 * 2);
}

TEST(KernelsRef, S4GemmMatchesS8OfUnpackedWeights) {
  const long M = 5, N = 7, K = 13;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> a_dist(-128, 127), w_dist(-8, 7);
  std::vector<int8_t> A(M * K), B(N * K);
  for (auto& v : A) v = int8_t(a_dist(rng));
  for (auto& v : B) v = int8_t(w_dist(rng));
  std::vector<uint8_t> B4(N * int4_row_bytes(K), 0);
  for (long n = 0; n < N; ++n)
    for (long k = 0; k < K; ++k)
      B4[n * int4_row_bytes(K) + k / 2] |= uint8_t((B[n * K + k] & 0xF) << (k % 2 ? 4 : 0));
  std::vector<int32_t> C8(M * N), C4(M * N);
  gemm_s8s8s32_ref(A.data(), B.data(), C8.data(), M, N, K);
  gemm_s8s4s32_ref(A.data(), B4.data(), C4.data(), M, N, K);
  EXPECT_EQ(C8, C4);
}

TEST(KernelsRef, DequantizePerTokenPerChannelWithBias) {
  std::vector<int32_t> C = {10, -20, 30, 40};
  std::vector<float> sa = {0.5f, 2.0f}, sb = {0.25f, 1.0f}, bias = {1.0f, -1.0f};
  std::vector<float> Y(4);
  dequantize_s32_ref(C.data(), 2, 2, sa.data(), 2, sb.data(), 2, bias.data(), Y.data());
  EXPECT_FLOAT_EQ(Y[0], 10 * 0.5f * 0.25f + 1);
  EXPECT_FLOAT_EQ(Y[1], -20 * 0.5f * 1.0f - 1);
  EXPECT_FLOAT_EQ(Y[2], 30 * 2.0f * 0.25f + 1);
  EXPECT_FLOAT_EQ(Y[3], 40 * 2.0f * 1.0f - 1);
}

TEST(KernelsRef, DequantizePerTensorNoBias) {
  std::vector<int32_t> C = {3, -4};
  float sa = 0.5f, sb = 4.0f;
  std::vector<float> Y(2);
  dequantize_s32_ref(C.data(), 1, 2, &sa, 1, &sb, 1, nullptr, Y.data());
  EXPECT_FLOAT_EQ(Y[0], 6.0f);
  EXPECT_FLOAT_EQ(Y[1], -8.0f);
}

TEST(KernelsRef, DequantizeRejectsWrongScaleCount) {
  std::vector<int32_t> C(6);
  std::vector<float> s(3, 1.0f), Y(6);
  EXPECT_THROW(dequantize_s32_ref(C.data(), 2, 3, s.data(), 3, s.data(), 3, nullptr, Y.data()), std::invalid_argument);
}

}  // namespace
}  // namespace fb

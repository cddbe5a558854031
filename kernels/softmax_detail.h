// Internal to kernels/softmax.cpp: the constants of its exp, shared by the reference and the
// AVX-512 kernel (kernels/softmax_avx512.cpp) so both evaluate the same formula.
#pragma once

namespace fb::softmax_detail {

inline constexpr float kExpLo = -87.3f;  // exp(−87.3) ≈ 1.2e−38: still a normal float, 2ⁿ stays valid
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;       // ln 2 = hi + lo, hi exact in few bits
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                   4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
inline constexpr int kLanes = 16;

void softmax_row_avx512(float* x, long n, float scale);

}  // namespace fb::softmax_detail

#include "kernels/gemm_ref.h"

#include <stdexcept>
#include <string>

namespace fb {

namespace {

void check_scale_count(const char* what, long count, long full) {
  if (count != 1 && count != full)
    throw std::invalid_argument(std::string("kernels/gemm_ref: ") + what + " has " + std::to_string(count) +
                                " scales; expected 1 (per-tensor) or " + std::to_string(full));
}

}  // namespace

void gemm_s8s8s32_ref(const int8_t* A, const int8_t* B, int32_t* C, long M, long N, long K) {
  for (long m = 0; m < M; ++m)
    for (long n = 0; n < N; ++n) {
      int32_t acc = 0;
      for (long k = 0; k < K; ++k) acc += int32_t(A[m * K + k]) * int32_t(B[n * K + k]);
      C[m * N + n] = acc;
    }
}

void gemm_s8s4s32_ref(const int8_t* A, const uint8_t* B4, int32_t* C, long M, long N, long K) {
  const long stride = int4_row_bytes(K);
  for (long m = 0; m < M; ++m)
    for (long n = 0; n < N; ++n) {
      const uint8_t* row = B4 + n * stride;
      int32_t acc = 0;
      for (long k = 0; k < K; ++k) acc += int32_t(A[m * K + k]) * int4_at(row, k);
      C[m * N + n] = acc;
    }
}

void dequantize_s32_ref(const int32_t* C, long M, long N, const float* sa, long n_sa, const float* sb, long n_sb,
                        const float* bias, float* Y) {
  check_scale_count("activation scale (sa)", n_sa, M);
  check_scale_count("weight scale (sb)", n_sb, N);
  for (long m = 0; m < M; ++m) {
    const float a_scale = sa[n_sa == 1 ? 0 : m];
    for (long n = 0; n < N; ++n) {
      float y = float(C[m * N + n]) * a_scale * sb[n_sb == 1 ? 0 : n];
      if (bias) y += bias[n];
      Y[m * N + n] = y;
    }
  }
}

}  // namespace fb

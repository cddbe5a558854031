// Operands and checks shared by every GEMM backend, so all backends of a job multiply
// the same seeded matrices and are verified the same way.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace fb {

// rows×cols row-major, uniform in [-1, 1), from a seed (activations use seed, weights seed+1).
inline std::vector<float> random_matrix(long rows, long cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> m(static_cast<size_t>(rows * cols));
  for (auto& x : m) x = dist(rng);
  return m;
}

// max |C − A·Bᵀ| / max |A·Bᵀ| over up to `max_rows` evenly spread rows, reference in double
// (a full reference product would cost more than the benchmark at LLM shapes).
inline double sampled_gemm_error(const float* A, const float* B, const float* C, long M, long N, long K,
                                 long max_rows = 16) {
  double max_err = 0, max_ref = 0;
  long step = std::max(1L, M / max_rows);
  for (long m = 0; m < M; m += step)
    for (long n = 0; n < N; ++n) {
      double ref = 0;
      for (long k = 0; k < K; ++k) ref += static_cast<double>(A[m * K + k]) * B[n * K + k];
      max_err = std::max(max_err, std::fabs(ref - C[m * N + n]));
      max_ref = std::max(max_ref, std::fabs(ref));
    }
  return max_ref > 0 ? max_err / max_ref : max_err;
}

}  // namespace fb

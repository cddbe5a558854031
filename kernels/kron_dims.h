// FlatQuant's Kronecker factor sizes (official get_decompose_dim, docs/methods.md §2.2): the one
// rule the method (methods/flatquant/kron.cpp), the CPU kernels and their benchmarks
// (kernels/fused_quant.cpp) and the GPU sweep (kernels/cuda/shapes.h) all use, so a benchmark
// times the transform the method deploys. Header-only, C++17, no dependencies: the device
// machine's standalone CUDA build includes it too.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace fb {

// The smallest a ≥ ceil(√n) with a² − n = b² a perfect square; returns (a − b, a + b): n1·n2 = n,
// n1 ≤ n2, as square as a difference of squares allows (4096 → 64×64, 11008 → 86×128, 172 → 2×86). Throws for
// n ≡ 2 (mod 4), which has no such split (the official loop would not terminate).
inline std::pair<long, long> flatquant_kron_dims(long n) {
  if (n <= 0) throw std::invalid_argument("Kronecker split: dimension must be positive, got " + std::to_string(n));
  // n = a² − b² = (a − b)(a + b) needs two factors of equal parity: impossible for n ≡ 2 (mod 4).
  if (n % 4 == 2)
    throw std::invalid_argument("Kronecker split: " + std::to_string(n) +
                                " ≡ 2 (mod 4) has no factorisation (a − b)(a + b); FlatQuant cannot split it");
  long a = 0;
  while (a * a < n) ++a;
  for (;; ++a) {
    long rest = a * a - n, b = 0;
    while (b * b < rest) ++b;
    if (b * b == rest) return {a - b, a + b};
  }
}

}  // namespace fb

#include "methods/flatquant/kron.h"

namespace fb::flatquant {

std::pair<int, int> decompose_dim(int n) {
  if (n <= 0) throw std::invalid_argument("decompose_dim: dimension must be positive, got " + std::to_string(n));
  // n = a² − b² = (a − b)(a + b) needs two factors of equal parity: impossible for n ≡ 2 (mod 4),
  // where the official loop never ends.
  if (n % 4 == 2)
    throw std::invalid_argument("decompose_dim: " + std::to_string(n) +
                                " ≡ 2 (mod 4) has no factorisation (a − b)(a + b); FlatQuant cannot split it");
  long a = 0;
  while (a * a < n) ++a;
  for (;; ++a) {
    long rest = a * a - n, b = 0;
    while (b * b < rest) ++b;
    if (b * b == rest) return {static_cast<int>(a - b), static_cast<int>(a + b)};
  }
}

}  // namespace fb::flatquant

#include "methods/flatquant/kron.h"

#include "kernels/kron_dims.h"

namespace fb::flatquant {

std::pair<int, int> decompose_dim(int n) {
  const auto [n1, n2] = flatquant_kron_dims(n);
  return {static_cast<int>(n1), static_cast<int>(n2)};
}

}  // namespace fb::flatquant

// Linear-layer shapes of the architectures the GPU sweep covers (the same table as the
// CPU `gemm` evaluator's layers_of): hidden size d, MLP width h, heads, key/value heads.
#pragma once

#include "kernels/kron_dims.h"

#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fb::cuda {

struct ArchDims {
  const char* name;
  long d, h, heads, kv_heads;
  bool gated;  // LLaMA SwiGLU: gate and up share a shape
};

inline constexpr ArchDims kGpuArchs[] = {
    {"opt-6.7b", 4096, 16384, 32, 32, false},  {"opt-13b", 5120, 20480, 40, 40, false},
    {"opt-30b", 7168, 28672, 56, 56, false},   {"opt-66b", 9216, 36864, 72, 72, false},
    {"llama-2-7b", 4096, 11008, 32, 32, true}, {"llama-2-70b", 8192, 28672, 64, 8, true},
    {"llama-3-8b", 4096, 14336, 32, 8, true},
};

// (N, K) → the roles that have that shape, e.g. (4096, 4096) → "q,k,v,o".
using LinearShapes = std::map<std::pair<long, long>, std::string>;

inline const ArchDims& arch_by_name(const std::string& name) {
  std::string known;
  for (const auto& a : kGpuArchs) {
    if (name == a.name) return a;
    known += std::string(known.empty() ? "" : ", ") + a.name;
  }
  throw std::invalid_argument("unknown model '" + name + "' (known: " + known + ")");
}

inline LinearShapes linear_shapes(const ArchDims& a) {
  LinearShapes s;
  auto add = [&](long n, long k, const std::string& role) {
    auto& r = s[{n, k}];
    r += (r.empty() ? "" : ",") + role;
  };
  const long kv = a.d * a.kv_heads / a.heads;
  add(a.d, a.d, "q");
  add(kv, a.d, "k");
  add(kv, a.d, "v");
  add(a.d, a.d, "o");
  if (a.gated) {
    add(a.h, a.d, "gate");
    add(a.h, a.d, "up");
    add(a.d, a.h, "down");
  } else {
    add(a.h, a.d, "fc1");
    add(a.d, a.h, "fc2");
  }
  return s;
}

// FlatQuant's split of K (kernels/kron_dims.h, what the method deploys), or {0, 0} when K has
// none or its larger factor exceeds 128 (the fused Kronecker kernel's limit).
inline std::pair<int, int> kron_factors(long k) {
  if (k <= 0 || k % 4 == 2) return {0, 0};
  const auto [n1, n2] = flatquant_kron_dims(k);
  return n2 <= 128 ? std::pair<int, int>{int(n1), int(n2)} : std::pair<int, int>{0, 0};
}

}  // namespace fb::cuda

// Helpers shared by the FlatQuant tests: Gaussian matrices and a random transformer block.
#pragma once

#include "methods/flatquant/block.h"

#include <random>

namespace fb::flatquant::test {

inline MatD random_mat(long r, long c, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> n(0.0, scale);
  MatD m(r, c);
  for (long i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

// Norm gains near 1 and weights of scale 0.3 for `shape` (GQA when n_kv_heads < n_heads).
inline FpBlock random_fp_block(const BlockShape& shape, std::mt19937_64& rng) {
  const long d = shape.dim, h = shape.hidden, kv = long(shape.n_kv_heads) * shape.head_dim();
  FpBlock fp;
  fp.attn_gamma = (VecD::Random(d).array() * 0.3 + 1).matrix();
  fp.mlp_gamma = (VecD::Random(d).array() * 0.3 + 1).matrix();
  fp.wq = random_mat(d, d, rng, 0.3);
  fp.wk = random_mat(kv, d, rng, 0.3);
  fp.wv = random_mat(kv, d, rng, 0.3);
  fp.wo = random_mat(d, d, rng, 0.3);
  fp.wgate = random_mat(h, d, rng, 0.3);
  fp.wup = random_mat(h, d, rng, 0.3);
  fp.wdown = random_mat(d, h, rng, 0.3);
  return fp;
}

}  // namespace fb::flatquant::test

// Trainable tensors of a FlatQuant block and the factors of its transforms.
//
// Each square factor is stored as in the official code (trans_utils.py, SVD form):
//   A = U·diag(σ)·Vᵀ,  U = Cayley(M_u), V = Cayley(M_v),  Cayley(M) = (I − S/2)⁻¹(I + S/2),
//   S = tril(M) − tril(M)ᵀ   (PyTorch's orthogonal(orthogonal_map="cayley", use_trivialization=False)),
// with the closed-form inverse-transpose A⁻ᵀ = U·diag(1/σ)·Vᵀ. The `direct` variant
// (--direct_inv) learns A itself and inverts it in double.
#pragma once

#include "methods/flatquant/kron.h"

#include <random>
#include <vector>

namespace fb::flatquant {

// Learning-rate group (official: transforms and d at lr, clipping parameters at 10·lr).
enum class Group { transform, diag, wclip, aclip };

struct Param {
  MatD v, g;  // value and gradient, same shape
  Group group = Group::transform;
  void init(MatD value, Group grp) {
    v = std::move(value);
    g = MatD::Zero(v.rows(), v.cols());
    group = grp;
  }
  void zero_grad() { g.setZero(); }
};

// Q·diag(sign(diag R)) of the QR decomposition of a Gaussian n×n matrix (official get_random_orthg).
MatD random_orthogonal(int n, std::mt19937_64& rng);

// Cayley map of the official parametrisation; `b_inv` receives (I − S/2)⁻¹ for the backward pass.
MatD cayley(const MatD& M, MatD* b_inv = nullptr);
// Gradient w.r.t. M given the gradient gQ w.r.t. Q = Cayley(M).
MatD cayley_backward(const MatD& Q, const MatD& b_inv, const MatD& gQ);

// One square factor of a transform.
struct Factor {
  bool direct = false;
  Param mu, mv, sigma;  // SVD form (sigma is n×1)
  Param a;              // direct form
  // Products of the last materialise(): the matrix, its inverse-transpose, and gradient
  // accumulators for both (filled by the block's backward pass, consumed by backward()).
  MatD mat, inv_t, g_mat, g_inv_t;
  MatD u, v, bu_inv, bv_inv;

  void init(int n, bool direct_inv, std::mt19937_64& rng);
  int size() const { return direct ? static_cast<int>(a.v.rows()) : static_cast<int>(sigma.v.rows()); }
  void materialise();  // computes mat, inv_t and zeroes g_mat, g_inv_t
  // mat and inv_t from `owner`'s materialise() (same parameter values), g_mat and g_inv_t zeroed:
  // what a window of a batch needs for its activation side (methods/flatquant/calibrate.cpp).
  void take_materialised(const Factor& owner);
  void backward();     // turns g_mat, g_inv_t into parameter gradients
  std::vector<Param*> params();
};

}  // namespace fb::flatquant

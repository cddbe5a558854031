#include "methods/flatquant/params.h"

#include <Eigen/LU>
#include <Eigen/QR>

namespace fb::flatquant {

MatD random_orthogonal(int n, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  MatD h(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) h(i, j) = normal(rng);
  Eigen::HouseholderQR<MatD> qr(h);
  MatD q = qr.householderQ();
  MatD r = qr.matrixQR().triangularView<Eigen::Upper>();
  for (int j = 0; j < n; ++j)
    if (r(j, j) < 0) q.col(j) *= -1.0;
  return q;
}

static MatD skew_of(const MatD& M) {
  MatD lower = M.triangularView<Eigen::Lower>();
  return lower - lower.transpose();
}

MatD cayley(const MatD& M, MatD* b_inv) {
  const long n = M.rows();
  MatD S = skew_of(M);
  MatD I = MatD::Identity(n, n);
  MatD inv = (I - 0.5 * S).partialPivLu().inverse();
  if (b_inv) *b_inv = inv;
  return inv * (I + 0.5 * S);
}

// dQ = ½·B⁻¹·dS·(Q + I) with B = I − S/2, so gS = ½·B⁻ᵀ·gQ·(Q + I)ᵀ; S = L − Lᵀ with
// L = tril(M) gives gM = tril(gS − gSᵀ) (the diagonal cancels).
MatD cayley_backward(const MatD& Q, const MatD& b_inv, const MatD& gQ) {
  MatD I = MatD::Identity(Q.rows(), Q.cols());
  MatD gS = 0.5 * b_inv.transpose() * gQ * (Q + I).transpose();
  MatD gM = (gS - gS.transpose()).triangularView<Eigen::Lower>();
  return gM;
}

void Factor::init(int n, bool direct_inv, std::mt19937_64& rng) {
  direct = direct_inv;
  if (direct) {
    a.init(random_orthogonal(n, rng), Group::transform);
    return;
  }
  // The official code stores the random orthogonal Q0 as the Cayley pre-parameter M itself
  // (its right-inverse is not implemented), so the effective U is Cayley(Q0), not Q0.
  mu.init(random_orthogonal(n, rng), Group::transform);
  mv.init(random_orthogonal(n, rng), Group::transform);
  sigma.init(MatD::Ones(n, 1), Group::transform);
}

void Factor::materialise() {
  if (direct) {
    mat = a.v;
    inv_t = a.v.partialPivLu().inverse().transpose();
  } else {
    u = cayley(mu.v, &bu_inv);
    v = cayley(mv.v, &bv_inv);
    VecD s = sigma.v.col(0);
    mat = u * s.asDiagonal() * v.transpose();
    inv_t = u * s.cwiseInverse().asDiagonal() * v.transpose();
  }
  g_mat = MatD::Zero(mat.rows(), mat.cols());
  g_inv_t = MatD::Zero(mat.rows(), mat.cols());
}

void Factor::take_materialised(const Factor& owner) {
  mat = owner.mat;
  inv_t = owner.inv_t;
  g_mat.setZero(mat.rows(), mat.cols());
  g_inv_t.setZero(mat.rows(), mat.cols());
}

void Factor::backward() {
  if (direct) {
    // inv_t = (A⁻¹)ᵀ: gA = −inv_t·g_inv_tᵀ·inv_t.
    a.g += g_mat - inv_t * g_inv_t.transpose() * inv_t;
    return;
  }
  VecD s = sigma.v.col(0), s_inv = s.cwiseInverse();
  MatD gu = g_mat * v * s.asDiagonal() + g_inv_t * v * s_inv.asDiagonal();
  MatD gv = g_mat.transpose() * u * s.asDiagonal() + g_inv_t.transpose() * u * s_inv.asDiagonal();
  VecD d_mat = (u.transpose() * g_mat * v).diagonal();
  VecD d_inv = (u.transpose() * g_inv_t * v).diagonal();
  sigma.g.col(0) += d_mat - d_inv.cwiseProduct(s_inv.cwiseAbs2());
  mu.g += cayley_backward(u, bu_inv, gu);
  mv.g += cayley_backward(v, bv_inv, gv);
}

std::vector<Param*> Factor::params() {
  if (direct) return {&a};
  return {&mu, &mv, &sigma};
}

}  // namespace fb::flatquant

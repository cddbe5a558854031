// Kronecker-factored transforms, docs/methods.md §2.2: x·(A⊗B) applied as Aᵀ·reshape(x)·B,
// never as a dense K×K matrix. Templated on the scalar so calibration (double) and the
// deployed operators (float) share one definition.
#pragma once

#include "kernels/kron_apply.h"

#include <Eigen/Core>

#include <stdexcept>
#include <string>
#include <utility>

namespace fb::flatquant {

template <class S>
using MatX = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using VecX = Eigen::Matrix<S, Eigen::Dynamic, 1>;
using MatD = MatX<double>;
using VecD = Eigen::VectorXd;

// Official get_decompose_dim (kernels/kron_dims.h, shared with the kernels' benchmarks):
// n1·n2 = n, n1 ≤ n2, as square as possible; throws for n ≡ 2 (mod 4).
std::pair<int, int> decompose_dim(int n);

// kron_apply (y = x·(A⊗B), any scalar) is kernels/kron_apply.h, shared with models/op_plan.cpp.


// Backward of y = x·(A⊗B): gx = gy·(A⊗B)ᵀ (overwritten when gx != null), gA and gB
// accumulated (when non-null).
template <class S>
void kron_backward(const MatX<S>& x, const MatX<S>& A, const MatX<S>& B, const MatX<S>& gy, MatX<S>* gx, MatX<S>* gA,
                   MatX<S>* gB) {
  using CMap = Eigen::Map<const MatX<S>>;
  const long T = x.rows(), n1 = A.rows(), n2 = B.rows(), K = n1 * n2;
  MatX<S> gz(T * n1, n2);  // gradient of Z_t = X_t·B, stacked like x
  MatX<S> z;
  if (gA) z = CMap(x.data(), T * n1, n2) * B;
  for (long t = 0; t < T; ++t) {
    CMap gyt(gy.data() + t * K, n1, n2);
    gz.middleRows(t * n1, n1).noalias() = A * gyt;
    if (gA) gA->noalias() += z.middleRows(t * n1, n1) * gyt.transpose();
  }
  if (gB) gB->noalias() += CMap(x.data(), T * n1, n2).transpose() * gz;
  if (gx) {
    gx->resize(T, K);
    Eigen::Map<MatX<S>>(gx->data(), T * n1, n2).noalias() = gz * B.transpose();
  }
}

// The explicit K×K Kronecker product (tests and tiny sizes only).
template <class S>
MatX<S> kron_dense(const MatX<S>& A, const MatX<S>& B) {
  MatX<S> out(A.rows() * B.rows(), A.cols() * B.cols());
  for (long i = 0; i < A.rows(); ++i)
    for (long j = 0; j < A.cols(); ++j) out.block(i * B.rows(), j * B.cols(), B.rows(), B.cols()) = A(i, j) * B;
  return out;
}

}  // namespace fb::flatquant

// The Kronecker-factored transform x·(A⊗B) of FlatQuant (docs/methods.md §2.2), applied as
// Aᵀ·reshape(x)·B, never as a dense K×K matrix; templated on the scalar so calibration (double),
// the deployed operator (float) and the CPU execution of its plan (models/op_plan.cpp) share it.
#pragma once

#include <Eigen/Core>

#include <stdexcept>
#include <string>

namespace fb {

template <class S>
using KronMat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// y = x·(A⊗B) for every row of x (T×K, K = n1·n2, element k = i·n2 + j ↦ X[i, j]).
template <class S>
void kron_apply(const KronMat<S>& x, const KronMat<S>& A, const KronMat<S>& B, KronMat<S>& y) {
  using Map = Eigen::Map<KronMat<S>>;
  using CMap = Eigen::Map<const KronMat<S>>;
  const long T = x.rows(), n1 = A.rows(), n2 = B.rows(), K = n1 * n2;
  if (x.cols() != K || A.cols() != n1 || B.cols() != n2)
    throw std::invalid_argument("kron_apply: x has " + std::to_string(x.cols()) + " columns, factors give " +
                                std::to_string(K));
  KronMat<S> z = CMap(x.data(), T * n1, n2) * B;  // every token's X·B in one GEMM
  y.resize(T, K);
  for (long t = 0; t < T; ++t) Map(y.data() + t * K, n1, n2).noalias() = A.transpose() * CMap(z.data() + t * K, n1, n2);
}

}  // namespace fb

#include "methods/common/gptq.h"

#include <Eigen/Cholesky>

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace fb {

namespace {

// Upper Cholesky factor of H⁻¹ (GPTQ's Hinv): rows of it drive the error propagation.
bool inverse_cholesky_upper(const Eigen::MatrixXd& H, Eigen::MatrixXd& U) {
  Eigen::LLT<Eigen::MatrixXd> llt(H);
  if (llt.info() != Eigen::Success) return false;
  Eigen::MatrixXd Hinv = llt.solve(Eigen::MatrixXd::Identity(H.rows(), H.cols()));
  Eigen::LLT<Eigen::MatrixXd> llt_inv(Hinv);
  if (llt_inv.info() != Eigen::Success) return false;
  U = llt_inv.matrixU();
  return U.allFinite();
}

}  // namespace

QuantizedWeight gptq_quantize(const Mat& W_in, const Eigen::MatrixXd& xtx, long tokens, QuantSpec spec,
                              const GptqOptions& opt, GptqInfo* info) {
  const int N = int(W_in.rows()), K = int(W_in.cols());
  if (xtx.rows() != K || xtx.cols() != K)
    throw std::invalid_argument(fmt::format("gptq: Hessian is {}×{}, weight has {} input columns", xtx.rows(),
                                            xtx.cols(), K));
  if (tokens <= 0) throw std::invalid_argument("gptq: no calibration tokens");
  if (opt.block <= 0) throw std::invalid_argument(fmt::format("gptq: block size must be > 0, got {}", opt.block));

  // Scales from the full weight, fixed for the whole loop.
  QuantizedWeight q = quantize_weight_rtn(W_in, spec, opt.mse_clip);
  spec = q.spec;
  const int qmin = spec.qmin(), qmax = spec.qmax(), off = spec.storage_offset();

  Eigen::MatrixXd H = xtx * (2.0 / double(tokens));
  Eigen::MatrixXd W = W_in.cast<double>();
  int dead = 0;
  for (int k = 0; k < K; ++k)
    if (H(k, k) == 0) {
      H(k, k) = 1;
      W.col(k).setZero();
      ++dead;
    }

  std::vector<int> perm(K);
  std::iota(perm.begin(), perm.end(), 0);
  if (opt.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return H(a, a) > H(b, b); });
  Eigen::MatrixXd Hp(K, K), Wp(N, K);
  for (int i = 0; i < K; ++i) {
    Wp.col(i) = W.col(perm[i]);
    for (int j = 0; j < K; ++j) Hp(i, j) = H(perm[i], perm[j]);
  }

  // Dampening; retried ×10 when H is not numerically positive definite.
  const double mean_diag = Hp.diagonal().mean();
  double damp = opt.damp;
  Eigen::MatrixXd U;
  for (int attempt = 0;; ++attempt) {
    Eigen::MatrixXd Hd = Hp;
    Hd.diagonal().array() += damp * mean_diag;
    if (inverse_cholesky_upper(Hd, U)) break;
    if (attempt == 6) throw std::runtime_error("gptq: Hessian is not positive definite even with damping " +
                                               std::to_string(damp));
    damp *= 10;
  }

  for (int i1 = 0; i1 < K; i1 += opt.block) {
    const int i2 = std::min(K, i1 + opt.block), count = i2 - i1;
    Eigen::MatrixXd Err(N, count);
    for (int i = 0; i < count; ++i) {
      const int col = i1 + i, orig = perm[col];
      const double d = U(col, col);
      for (int n = 0; n < N; ++n) {
        const int g = q.params.index(n, orig);
        const float s = q.params.scale[g], z = q.params.zero[g];
        const float code = quantize_code(float(Wp(n, col)), s, z, qmin, qmax);
        q.codes[size_t(n) * K + orig] = int8_t(int(code) + off);
        Err(n, i) = (Wp(n, col) - double(s * (code - z))) / d;
      }
      // Spread this column's error over the rest of the block.
      Wp.block(0, col + 1, N, i2 - col - 1).noalias() -= Err.col(i) * U.row(col).segment(col + 1, i2 - col - 1);
    }
    // Lazy batch update of every later column.
    if (i2 < K) Wp.rightCols(K - i2).noalias() -= Err * U.block(i1, i2, count, K - i2);
  }
  if (info) *info = GptqInfo{dead, damp};
  return q;
}

}  // namespace fb

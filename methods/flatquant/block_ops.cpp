#include "methods/flatquant/block_ops.h"

#include "kernels/blas_gemm.h"
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace fb::flatquant {

template <class S>
void rmsnorm_forward(const MatX<S>& x, const VecX<S>& gamma, double eps, MatX<S>& y, VecX<S>& rstd) {
  const long D = x.cols();
  y.resize(x.rows(), D);
  rstd.resize(x.rows());
  for (long t = 0; t < x.rows(); ++t) {
    rstd(t) = 1.0 / std::sqrt(x.row(t).squaredNorm() / D + eps);
    y.row(t) = (x.row(t) * rstd(t)).cwiseProduct(gamma.transpose());
  }
}

// y = x·r·γ with r = (mean(x²) + eps)^(−1/2): gx = r·(γ⊙gy) − x·r³/D·Σ(γ⊙gy⊙x).
template <class S>
void rmsnorm_backward(const MatX<S>& x, const VecX<S>& gamma, const VecX<S>& rstd, const MatX<S>& gy, MatX<S>& gx) {
  const long D = x.cols();
  for (long t = 0; t < x.rows(); ++t) {
    Eigen::Matrix<S, 1, Eigen::Dynamic> gg = gy.row(t).cwiseProduct(gamma.transpose());
    const S r = rstd(t), dot = gg.dot(x.row(t));
    gx.row(t) += r * gg - x.row(t) * (r * r * r * dot / D);
  }
}

template <class S>
void rope_apply(MatX<S>& x, int T, int head_dim, double theta, bool interleaved, bool inverse) {
  const long C = x.cols();
  const int half = head_dim / 2;
  // cos / sin of every (position, frequency) once per call, in double as the reference computes them.
  std::vector<double> cos_t(size_t(T) * half), sin_t(size_t(T) * half);
  for (int pos = 0; pos < T; ++pos)
    for (int i = 0; i < half; ++i) {
      const double angle = pos * std::pow(theta, -2.0 * i / head_dim) * (inverse ? -1.0 : 1.0);
      cos_t[size_t(pos) * half + i] = std::cos(angle), sin_t[size_t(pos) * half + i] = std::sin(angle);
    }
  for (long row = 0; row < x.rows(); ++row) {
    const double* c = &cos_t[size_t(row % T) * half];
    const double* sn = &sin_t[size_t(row % T) * half];
    for (long h0 = 0; h0 < C; h0 += head_dim)
      for (int i = 0; i < half; ++i) {
        long a = h0 + (interleaved ? 2 * i : i), b = h0 + (interleaved ? 2 * i + 1 : i + half);
        double xa = x(row, a), xb = x(row, b);
        x(row, a) = S(xa * c[i] - xb * sn[i]);
        x(row, b) = S(xa * sn[i] + xb * c[i]);
      }
  }
}

namespace {
template <class S>
void check_heads(const MatX<S>& q, const MatX<S>& k, int n_heads, int n_kv_heads) {
  if (n_heads % n_kv_heads != 0 || q.cols() % n_heads != 0 || k.cols() != q.cols() / n_heads * n_kv_heads)
    throw std::invalid_argument("flatquant attention: q has " + std::to_string(q.cols()) + " columns, k " +
                                std::to_string(k.cols()) + ", heads " + std::to_string(n_heads) + "/" +
                                std::to_string(n_kv_heads));
}
}  // namespace

// Query rows per causal chunk: chunk c multiplies against keys 0..(c+1)·64 only, so the products
// skip most of what lies above the diagonal (56% of the full work at T = 512).
constexpr long kCausalChunk = 64;

// Both passes run one (window, kv head) pair per task, on OpenMP's threads: a pair owns its rows
// of out / gk / gv and every query head of its group, so no two tasks write the same entry. The
// products are BLAS GEMMs over causal chunks of query rows (BLAS picks the machine's vector
// width at run time, where this file's own loops get SSE2 only); the softmax and its backward
// touch the causal triangle row by row and zero the rest of each chunk's rows, so the products
// add nothing from above the diagonal. Entries of `probs` right of a chunk are never written.
template <class S>
void attention_forward(const MatX<S>& q, const MatX<S>& k, const MatX<S>& v, int T, int n_heads, int n_kv_heads, MatX<S>& out,
                       MatX<S>& probs) {
  check_heads(q, k, n_heads, n_kv_heads);
  const long hd = q.cols() / n_heads, B = q.rows() / T, group = n_heads / n_kv_heads;
  const S scale = S(1.0 / std::sqrt(static_cast<double>(hd)));
  out.resize(q.rows(), q.cols());
  probs.resize(B * n_heads * T, T);
#pragma omp parallel for schedule(static) if (B * n_kv_heads > 1)
  for (long task = 0; task < B * n_kv_heads; ++task) {
    const long b = task / n_kv_heads, kvh = task % n_kv_heads;
    for (long h = kvh * group; h < (kvh + 1) * group; ++h)
      for (long r0 = 0; r0 < T; r0 += kCausalChunk) {
        const long rows = std::min(kCausalChunk, T - r0), width = r0 + rows;  // keys 0..width−1 are visible
        auto P = probs.block((b * n_heads + h) * T + r0, 0, rows, width);
        gemm_overwrite(&q(b * T + r0, h * hd), q.cols(), &k(b * T, kvh * hd), k.cols(), true, P.data(), T, rows,
                       width, hd);  // P = q_chunk · k_visibleᵀ
        for (long i = 0; i < rows; ++i) {
          if constexpr (std::is_same_v<S, float>) {
            softmax_row(&P(i, 0), r0 + i + 1, scale);  // vectorised at run time (kernels/softmax.h)
          } else {
            auto row = P.row(i).head(r0 + i + 1);
            row = ((row.array() - row.maxCoeff()) * scale).exp().matrix();
            row /= row.sum();
          }
          P.row(i).tail(rows - i - 1).setZero();
        }
        gemm_overwrite(P.data(), T, &v(b * T, kvh * hd), v.cols(), false, &out(b * T + r0, h * hd), out.cols(), rows,
                       hd, width);  // out_chunk = P · v_visible
      }
  }
}

template <class S>
void attention_backward(const MatX<S>& q, const MatX<S>& k, const MatX<S>& v, const MatX<S>& probs, const MatX<S>& gout, int T,
                        int n_heads, int n_kv_heads, MatX<S>& gq, MatX<S>& gk, MatX<S>& gv) {
  const long hd = q.cols() / n_heads, B = q.rows() / T, group = n_heads / n_kv_heads;
  const S scale = S(1.0 / std::sqrt(static_cast<double>(hd)));
  gq.resize(q.rows(), q.cols());
  gk.setZero(k.rows(), k.cols());
  gv.setZero(v.rows(), v.cols());
#pragma omp parallel for schedule(static) if (B * n_kv_heads > 1)
  for (long task = 0; task < B * n_kv_heads; ++task) {
    const long b = task / n_kv_heads, kvh = task % n_kv_heads;
    MatX<S> gS;
    for (long h = kvh * group; h < (kvh + 1) * group; ++h)
      for (long r0 = 0; r0 < T; r0 += kCausalChunk) {
        const long rows = std::min(kCausalChunk, T - r0), width = r0 + rows;
        auto P = probs.block((b * n_heads + h) * T + r0, 0, rows, width);
        auto go = gout.block(b * T + r0, h * hd, rows, hd);
        gv.block(b * T, kvh * hd, width, hd).noalias() += P.transpose() * go;
        // softmax backward: gS = P ⊙ (gP − rowsum(gP ⊙ P)), gP = go·vᵀ, on the causal triangle.
        gS.resize(rows, width);
        gemm_overwrite(&gout(b * T + r0, h * hd), gout.cols(), &v(b * T, kvh * hd), v.cols(), true, gS.data(), width,
                       rows, width, hd);  // gP = go · v_visibleᵀ
        for (long i = 0; i < rows; ++i) {
          auto g = gS.row(i).head(r0 + i + 1);
          const auto p = P.row(i).head(r0 + i + 1);
          g = g.cwiseProduct(p);
          g -= p * g.sum();
          g *= scale;
          gS.row(i).tail(rows - i - 1).setZero();
        }
        gemm_overwrite(gS.data(), width, &k(b * T, kvh * hd), k.cols(), false, &gq(b * T + r0, h * hd), gq.cols(), rows,
                       hd, width);  // gq_chunk = gS · k_visible
        gk.block(b * T, kvh * hd, width, hd).noalias() += gS.transpose() * q.block(b * T + r0, h * hd, rows, hd);
      }
  }
}

template <class S>
void swiglu_forward(const MatX<S>& gate, const MatX<S>& up, MatX<S>& y) {
  y = gate.unaryExpr([](S g) { return S(g / (1 + std::exp(-g))); }).cwiseProduct(up);
}

// d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g))).
template <class S>
void swiglu_backward(const MatX<S>& gate, const MatX<S>& up, const MatX<S>& gy, MatX<S>& ggate, MatX<S>& gup) {
  ggate.resize(gate.rows(), gate.cols());
  gup.resize(up.rows(), up.cols());
  for (long i = 0; i < gate.size(); ++i) {
    double g = gate.data()[i], s = 1.0 / (1.0 + std::exp(-g));
    gup.data()[i] = gy.data()[i] * g * s;
    ggate.data()[i] = gy.data()[i] * up.data()[i] * s * (1 + g * (1 - s));
  }
}

template <class S>
void per_head_apply(const MatX<S>& x, const MatX<S>& M, MatX<S>& y) {
  const long hd = M.rows(), rows = x.size() / hd;
  y.resize(x.rows(), x.cols());
  Eigen::Map<MatX<S>>(y.data(), rows, hd).noalias() = Eigen::Map<const MatX<S>>(x.data(), rows, hd) * M;
}

template <class S>
void per_head_backward(const MatX<S>& x, const MatX<S>& M, const MatX<S>& gy, MatX<S>* gx, MatX<S>* gM) {
  const long hd = M.rows(), rows = x.size() / hd;
  Eigen::Map<const MatX<S>> xr(x.data(), rows, hd), gyr(gy.data(), rows, hd);
  if (gM) gM->noalias() += xr.transpose() * gyr;
  if (gx) {
    gx->resize(x.rows(), x.cols());
    Eigen::Map<MatX<S>>(gx->data(), rows, hd).noalias() = gyr * M.transpose();
  }
}

// Calibration runs in float, the finite-difference tests in double.
#define FB_FLATQUANT_BLOCK_OPS(S)                                                                             \
  template void rmsnorm_forward<S>(const MatX<S>&, const VecX<S>&, double, MatX<S>&, VecX<S>&);                 \
  template void rmsnorm_backward<S>(const MatX<S>&, const VecX<S>&, const VecX<S>&, const MatX<S>&, MatX<S>&);  \
  template void rope_apply<S>(MatX<S>&, int, int, double, bool, bool);                                          \
  template void attention_forward<S>(const MatX<S>&, const MatX<S>&, const MatX<S>&, int, int, int, MatX<S>&,   \
                                     MatX<S>&);                                                                 \
  template void attention_backward<S>(const MatX<S>&, const MatX<S>&, const MatX<S>&, const MatX<S>&,          \
                                      const MatX<S>&, int, int, int, MatX<S>&, MatX<S>&, MatX<S>&);             \
  template void swiglu_forward<S>(const MatX<S>&, const MatX<S>&, MatX<S>&);                                    \
  template void swiglu_backward<S>(const MatX<S>&, const MatX<S>&, const MatX<S>&, MatX<S>&, MatX<S>&);         \
  template void per_head_apply<S>(const MatX<S>&, const MatX<S>&, MatX<S>&);                                    \
  template void per_head_backward<S>(const MatX<S>&, const MatX<S>&, const MatX<S>&, MatX<S>*, MatX<S>*);
FB_FLATQUANT_BLOCK_OPS(float)
FB_FLATQUANT_BLOCK_OPS(double)
#undef FB_FLATQUANT_BLOCK_OPS

}  // namespace fb::flatquant

#include "methods/flatquant/block_ops.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace fb::flatquant {

void rmsnorm_forward(const MatD& x, const VecD& gamma, double eps, MatD& y, VecD& rstd) {
  const long D = x.cols();
  y.resize(x.rows(), D);
  rstd.resize(x.rows());
  for (long t = 0; t < x.rows(); ++t) {
    rstd(t) = 1.0 / std::sqrt(x.row(t).squaredNorm() / D + eps);
    y.row(t) = (x.row(t) * rstd(t)).cwiseProduct(gamma.transpose());
  }
}

// y = x·r·γ with r = (mean(x²) + eps)^(−1/2): gx = r·(γ⊙gy) − x·r³/D·Σ(γ⊙gy⊙x).
void rmsnorm_backward(const MatD& x, const VecD& gamma, const VecD& rstd, const MatD& gy, MatD& gx) {
  const long D = x.cols();
  for (long t = 0; t < x.rows(); ++t) {
    Eigen::RowVectorXd gg = gy.row(t).cwiseProduct(gamma.transpose());
    double r = rstd(t), dot = gg.dot(x.row(t));
    gx.row(t) += r * gg - x.row(t) * (r * r * r * dot / D);
  }
}

void rope_apply(MatD& x, int T, int head_dim, double theta, bool interleaved, bool inverse) {
  const long C = x.cols();
  const int half = head_dim / 2;
  for (long row = 0; row < x.rows(); ++row) {
    const double pos = static_cast<double>(row % T);
    for (long h0 = 0; h0 < C; h0 += head_dim) {
      for (int i = 0; i < half; ++i) {
        double freq = std::pow(theta, -2.0 * i / head_dim);
        double angle = pos * freq * (inverse ? -1.0 : 1.0);
        double c = std::cos(angle), s = std::sin(angle);
        long a = h0 + (interleaved ? 2 * i : i), b = h0 + (interleaved ? 2 * i + 1 : i + half);
        double xa = x(row, a), xb = x(row, b);
        x(row, a) = xa * c - xb * s;
        x(row, b) = xa * s + xb * c;
      }
    }
  }
}

namespace {
void check_heads(const MatD& q, const MatD& k, int n_heads, int n_kv_heads) {
  if (n_heads % n_kv_heads != 0 || q.cols() % n_heads != 0 || k.cols() != q.cols() / n_heads * n_kv_heads)
    throw std::invalid_argument("flatquant attention: q has " + std::to_string(q.cols()) + " columns, k " +
                                std::to_string(k.cols()) + ", heads " + std::to_string(n_heads) + "/" +
                                std::to_string(n_kv_heads));
}
}  // namespace

// Both passes run one (window, kv head) pair per task, on OpenMP's threads: a pair owns its rows
// of out / gk / gv and every query head of its group, so no two tasks write the same entry. The
// T×T products are full GEMMs (BLAS picks the machine's vector width at run time, where this
// file's own loops get SSE2 only); the softmax and its backward touch the causal triangle row
// by row and zero the rest of each row, so the full products add nothing from above it.
void attention_forward(const MatD& q, const MatD& k, const MatD& v, int T, int n_heads, int n_kv_heads, MatD& out,
                       MatD& probs) {
  check_heads(q, k, n_heads, n_kv_heads);
  const long hd = q.cols() / n_heads, B = q.rows() / T, group = n_heads / n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  out.resize(q.rows(), q.cols());
  probs.resize(B * n_heads * T, T);
#pragma omp parallel for schedule(static) if (B * n_kv_heads > 1)
  for (long task = 0; task < B * n_kv_heads; ++task) {
    const long b = task / n_kv_heads, kvh = task % n_kv_heads;
    auto kh = k.block(b * T, kvh * hd, T, hd);
    auto vh = v.block(b * T, kvh * hd, T, hd);
    for (long h = kvh * group; h < (kvh + 1) * group; ++h) {
      auto P = probs.middleRows((b * n_heads + h) * T, T);
      P.noalias() = q.block(b * T, h * hd, T, hd) * kh.transpose();
      for (long i = 0; i < T; ++i) {
        auto row = P.row(i).head(i + 1);
        row = ((row.array() - row.maxCoeff()) * scale).exp().matrix();
        row /= row.sum();
        P.row(i).tail(T - i - 1).setZero();
      }
      out.block(b * T, h * hd, T, hd).noalias() = P * vh;
    }
  }
}

void attention_backward(const MatD& q, const MatD& k, const MatD& v, const MatD& probs, const MatD& gout, int T,
                        int n_heads, int n_kv_heads, MatD& gq, MatD& gk, MatD& gv) {
  const long hd = q.cols() / n_heads, B = q.rows() / T, group = n_heads / n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  gq.resize(q.rows(), q.cols());
  gk.setZero(k.rows(), k.cols());
  gv.setZero(v.rows(), v.cols());
#pragma omp parallel for schedule(static) if (B * n_kv_heads > 1)
  for (long task = 0; task < B * n_kv_heads; ++task) {
    const long b = task / n_kv_heads, kvh = task % n_kv_heads;
    auto kh = k.block(b * T, kvh * hd, T, hd);
    auto vh = v.block(b * T, kvh * hd, T, hd);
    MatD gS(T, T);
    for (long h = kvh * group; h < (kvh + 1) * group; ++h) {
      auto P = probs.middleRows((b * n_heads + h) * T, T);
      auto go = gout.block(b * T, h * hd, T, hd);
      gv.block(b * T, kvh * hd, T, hd).noalias() += P.transpose() * go;
      // softmax backward: gS = P ⊙ (gP − rowsum(gP ⊙ P)), gP = go·vᵀ, on the causal triangle.
      gS.noalias() = go * vh.transpose();
      for (long i = 0; i < T; ++i) {
        auto g = gS.row(i).head(i + 1);
        const auto p = P.row(i).head(i + 1);
        g = g.cwiseProduct(p);
        g -= p * g.sum();
        g *= scale;
        gS.row(i).tail(T - i - 1).setZero();
      }
      gq.block(b * T, h * hd, T, hd).noalias() = gS * kh;
      gk.block(b * T, kvh * hd, T, hd).noalias() += gS.transpose() * q.block(b * T, h * hd, T, hd);
    }
  }
}

void swiglu_forward(const MatD& gate, const MatD& up, MatD& y) {
  y = gate.unaryExpr([](double g) { return g / (1.0 + std::exp(-g)); }).cwiseProduct(up);
}

// d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g))).
void swiglu_backward(const MatD& gate, const MatD& up, const MatD& gy, MatD& ggate, MatD& gup) {
  ggate.resize(gate.rows(), gate.cols());
  gup.resize(up.rows(), up.cols());
  for (long i = 0; i < gate.size(); ++i) {
    double g = gate.data()[i], s = 1.0 / (1.0 + std::exp(-g));
    gup.data()[i] = gy.data()[i] * g * s;
    ggate.data()[i] = gy.data()[i] * up.data()[i] * s * (1 + g * (1 - s));
  }
}

void per_head_apply(const MatD& x, const MatD& M, MatD& y) {
  const long hd = M.rows(), rows = x.size() / hd;
  y.resize(x.rows(), x.cols());
  Eigen::Map<MatD>(y.data(), rows, hd).noalias() = Eigen::Map<const MatD>(x.data(), rows, hd) * M;
}

void per_head_backward(const MatD& x, const MatD& M, const MatD& gy, MatD* gx, MatD* gM) {
  const long hd = M.rows(), rows = x.size() / hd;
  Eigen::Map<const MatD> xr(x.data(), rows, hd), gyr(gy.data(), rows, hd);
  if (gM) gM->noalias() += xr.transpose() * gyr;
  if (gx) {
    gx->resize(x.rows(), x.cols());
    Eigen::Map<MatD>(gx->data(), rows, hd).noalias() = gyr * M.transpose();
  }
}

}  // namespace fb::flatquant

#include "models/reference_forward.h"

#include <cmath>
#include <vector>

namespace fb {
namespace {

using Row = std::vector<double>;

// y = x·Wᵀ + b, one output channel at a time.
Mat linear(const LinearSite& s, const Mat& x) {
  Mat y(x.rows(), s.out_features());
  if (s.op) {
    s.op->forward(x, y);
    return y;
  }
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    for (int n = 0; n < s.out_features(); ++n) {
      double acc = s.b.size() ? s.b[n] : 0.0;
      for (int kk = 0; kk < s.in_features(); ++kk) acc += double(x(t, kk)) * double(s.W(n, kk));
      y(t, n) = static_cast<float>(acc);
    }
  return y;
}

Mat norm(const Norm& n, const Mat& x, double eps) {
  Mat y(x.rows(), x.cols());
  const double d = static_cast<double>(x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    double mean = 0, sq = 0;
    for (Eigen::Index i = 0; i < x.cols(); ++i) mean += x(t, i);
    mean /= d;
    const bool layer_norm = n.beta.size() > 0;
    for (Eigen::Index i = 0; i < x.cols(); ++i) {
      const double c = layer_norm ? x(t, i) - mean : x(t, i);
      sq += c * c;
    }
    const double inv = 1.0 / std::sqrt(sq / d + eps);
    for (Eigen::Index i = 0; i < x.cols(); ++i)
      y(t, i) = layer_norm ? static_cast<float>((x(t, i) - mean) * inv * n.gamma[i] + n.beta[i])
                           : static_cast<float>(x(t, i) * inv * n.gamma[i]);
  }
  return y;
}

// Interleaved-pair rotation of every head, position t (the checkpoint's frequencies, if rescaled).
void rope(Mat& m, int hd, double theta, const std::vector<float>& inv_freq) {
  for (Eigen::Index t = 0; t < m.rows(); ++t)
    for (Eigen::Index base = 0; base < m.cols(); base += hd)
      for (int j = 0; j < hd / 2; ++j) {
        const double freq = inv_freq.empty() ? std::pow(theta, -double(2 * j) / hd) : double(inv_freq[size_t(j)]);
        const double angle = double(t) * freq;
        const double a = m(t, base + 2 * j), b = m(t, base + 2 * j + 1);
        m(t, base + 2 * j) = static_cast<float>(a * std::cos(angle) - b * std::sin(angle));
        m(t, base + 2 * j + 1) = static_cast<float>(a * std::sin(angle) + b * std::cos(angle));
      }
}

Mat attention(const ModelConfig& cfg, const Mat& q, const Mat& k, const Mat& v) {
  const int hd = cfg.head_dim(), group = cfg.n_heads / cfg.n_kv_heads;
  const Eigen::Index T = q.rows();
  Mat out = Mat::Zero(T, q.cols());
  for (int h = 0; h < cfg.n_heads; ++h) {
    const int qo = h * hd, ko = (h / group) * hd;
    for (Eigen::Index t = 0; t < T; ++t) {
      Row score(t + 1);
      double mx = -1e300;
      for (Eigen::Index s = 0; s <= t; ++s) {
        double dot = 0;
        for (int i = 0; i < hd; ++i) dot += double(q(t, qo + i)) * k(s, ko + i);
        score[s] = dot / std::sqrt(double(hd));
        mx = std::max(mx, score[s]);
      }
      double sum = 0;
      for (double& e : score) sum += (e = std::exp(e - mx));
      for (int i = 0; i < hd; ++i) {
        double acc = 0;
        for (Eigen::Index s = 0; s <= t; ++s) acc += score[s] / sum * v(s, ko + i);
        out(t, qo + i) = static_cast<float>(acc);
      }
    }
  }
  return out;
}

}  // namespace

Mat reference_forward(const Model& m, std::span<const int> tokens) {
  const ModelConfig& cfg = m.cfg;
  const bool llama = cfg.arch == Arch::llama;
  const Eigen::Index T = static_cast<Eigen::Index>(tokens.size());
  Mat x(T, cfg.dim);
  for (Eigen::Index t = 0; t < T; ++t)
    for (int i = 0; i < cfg.dim; ++i)
      x(t, i) = m.tok_embedding(tokens[t], i) + (llama ? 0.f : m.pos_embedding(t + 2, i));

  for (const Block& b : m.blocks) {
    Mat h = norm(b.attn_norm, x, cfg.norm_eps);
    Mat q = linear(b.q, h), k = linear(b.k, h), v = linear(b.v, h);
    if (llama) {
      rope(q, cfg.head_dim(), cfg.rope_theta, cfg.rope_inv_freq);
      rope(k, cfg.head_dim(), cfg.rope_theta, cfg.rope_inv_freq);
    }
    x += linear(b.o, attention(cfg, q, k, v));
    h = norm(b.mlp_norm, x, cfg.norm_eps);
    Mat act;
    if (llama) {
      Mat g = linear(b.gate, h), u = linear(b.up, h);
      act = Mat(g.rows(), g.cols());
      for (Eigen::Index i = 0; i < g.size(); ++i) {
        const double gi = g.data()[i];
        act.data()[i] = static_cast<float>(gi / (1.0 + std::exp(-gi)) * u.data()[i]);
      }
      x += linear(b.down, act);
    } else {
      act = linear(b.fc1, h);
      for (Eigen::Index i = 0; i < act.size(); ++i) act.data()[i] = std::max(0.0f, act.data()[i]);
      x += linear(b.fc2, act);
    }
  }
  Mat h = norm(m.final_norm, x, cfg.norm_eps);
  const Mat& out = m.output_matrix();
  Mat logits(T, out.rows());
  for (Eigen::Index t = 0; t < T; ++t)
    for (Eigen::Index n = 0; n < out.rows(); ++n) {
      double acc = 0;
      for (int i = 0; i < cfg.dim; ++i) acc += double(h(t, i)) * out(n, i);
      logits(t, n) = static_cast<float>(acc);
    }
  return logits;
}

}  // namespace fb

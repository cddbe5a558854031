#include "models/synthetic.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

namespace fb {
namespace {

struct Shape {
  Arch arch;
  int dim, hidden, layers, heads, kv_heads, vocab, ctx;
  float theta;
  bool tied;
};

// Published configurations (Hugging Face config.json of each model).
const std::map<std::string, Shape>& shapes() {
  static const std::map<std::string, Shape> s = {
      {"opt-tiny", {Arch::opt, 64, 256, 2, 4, 4, 256, 256, 10000.f, true}},
      {"opt-125m", {Arch::opt, 768, 3072, 12, 12, 12, 50272, 2048, 10000.f, true}},
      {"opt-1.3b", {Arch::opt, 2048, 8192, 24, 32, 32, 50272, 2048, 10000.f, true}},
      {"opt-6.7b", {Arch::opt, 4096, 16384, 32, 32, 32, 50272, 2048, 10000.f, true}},
      {"opt-13b", {Arch::opt, 5120, 20480, 40, 40, 40, 50272, 2048, 10000.f, true}},
      {"opt-30b", {Arch::opt, 7168, 28672, 48, 56, 56, 50272, 2048, 10000.f, true}},
      {"opt-66b", {Arch::opt, 9216, 36864, 64, 72, 72, 50272, 2048, 10000.f, true}},
      {"llama-tiny", {Arch::llama, 64, 176, 2, 4, 2, 256, 256, 10000.f, false}},
      {"llama-2-7b", {Arch::llama, 4096, 11008, 32, 32, 32, 32000, 4096, 10000.f, false}},
      {"llama-2-13b", {Arch::llama, 5120, 13824, 40, 40, 40, 32000, 4096, 10000.f, false}},
      {"llama-2-70b", {Arch::llama, 8192, 28672, 80, 64, 8, 32000, 4096, 10000.f, false}},
      {"llama-3-8b", {Arch::llama, 4096, 14336, 32, 32, 8, 128256, 8192, 500000.f, false}},
      {"llama-3-70b", {Arch::llama, 8192, 28672, 80, 64, 8, 128256, 8192, 500000.f, false}},
  };
  return s;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Approximately N(0,1) from one hash: the sum of four 16-bit uniforms (Irwin–Hall),
// centred and scaled to unit variance. Counter-based, so any element can be drawn in any
// order (parallel generation stays deterministic).
float gaussian_at(uint64_t stream, uint64_t index) {
  const uint64_t r = splitmix64(stream ^ splitmix64(index));
  const float sum = float(r & 0xFFFF) + float((r >> 16) & 0xFFFF) + float((r >> 32) & 0xFFFF) + float(r >> 48);
  constexpr float kMean = 2.0f * 65535.0f, kStd = 65536.0f / 1.7320508f;  // 4·U(0,1): var 1/3
  return (sum - kMean) / kStd;
}

class Generator {
 public:
  explicit Generator(uint64_t seed) : seed_(seed) {}
  // A fresh matrix of N(0, std²) entries; each tensor gets its own stream.
  Mat matrix(Eigen::Index rows, Eigen::Index cols, float std) {
    const uint64_t stream = next_stream();
    Mat m(rows, cols);
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
    for (Eigen::Index r = 0; r < rows; ++r)
      for (Eigen::Index c = 0; c < cols; ++c) m(r, c) = std * gaussian_at(stream, uint64_t(r * cols + c));
    return m;
  }
  Vec vector(Eigen::Index n, float std, float mean = 0.f) {
    Mat m = matrix(1, n, std);
    return (m.row(0).transpose().array() + mean).matrix();
  }

 private:
  uint64_t next_stream() { return splitmix64(seed_ * 0x100000001B3ull + ++counter_); }
  uint64_t seed_, counter_ = 0;
};

LinearSite make_site(Generator& g, int layer, Role role, int n, int k, float gain, bool bias) {
  LinearSite s;
  s.id = {layer, role};
  s.W = g.matrix(n, k, gain / std::sqrt(float(k)));
  if (bias) s.b = g.vector(n, 0.02f);
  return s;
}

Norm make_norm(Generator& g, int dim, bool layer_norm, const std::vector<int>& outliers, float scale) {
  Norm n;
  n.gamma = Vec::Ones(dim);
  for (int c : outliers) n.gamma[c] = scale;
  if (layer_norm) n.beta = g.vector(dim, 0.02f);
  return n;
}

}  // namespace

std::vector<std::string> synthetic_arch_names() {
  std::vector<std::string> out;
  for (const auto& [name, s] : shapes()) out.push_back(name);
  return out;
}

ModelConfig synthetic_config(const std::string& arch) {
  auto it = shapes().find(arch);
  if (it == shapes().end()) {
    std::string known;
    for (const auto& n : synthetic_arch_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("synthetic model: unknown arch '" + arch + "' (known: " + known + ")");
  }
  const Shape& s = it->second;
  ModelConfig c;
  c.name = arch;
  c.arch = s.arch;
  c.dim = s.dim;
  c.hidden_dim = s.hidden;
  c.n_layers = s.layers;
  c.n_heads = s.heads;
  c.n_kv_heads = s.kv_heads;
  c.vocab_size = s.vocab;
  c.max_seq_len = s.ctx;
  c.rope_theta = s.theta;
  c.tied_classifier = s.tied;
  c.norm_eps = 1e-5f;
  c.synthetic = true;
  return c;
}

std::vector<int> synthetic_outlier_channels(int dim, const SyntheticOptions& opt) {
  const int n = std::clamp(opt.outlier_channels, 0, dim);
  std::vector<int> all(dim);
  for (int i = 0; i < dim; ++i) all[i] = i;
  // Partial Fisher–Yates shuffle driven by the seed: the first n entries are the outliers.
  for (int i = 0; i < n; ++i) {
    const int j = i + int(splitmix64(opt.seed ^ (0xC0FFEEull + i)) % uint64_t(dim - i));
    std::swap(all[i], all[j]);
  }
  std::vector<int> out(all.begin(), all.begin() + n);
  std::sort(out.begin(), out.end());
  return out;
}

Model make_synthetic_model(ModelConfig cfg, const SyntheticOptions& opt) {
  if (opt.layers > 0) cfg.n_layers = opt.layers;
  if (opt.vocab > 0) cfg.vocab_size = opt.vocab;
  if (opt.max_seq_len > 0) cfg.max_seq_len = opt.max_seq_len;
  if (cfg.dim % cfg.n_heads || cfg.n_heads % cfg.n_kv_heads || cfg.head_dim() % 2)
    throw std::invalid_argument("synthetic model: inconsistent head shapes for " + cfg.name);
  cfg.synthetic = true;

  Generator g(opt.seed);
  const bool opt_arch = cfg.arch == Arch::opt;
  const int kv_dim = cfg.n_kv_heads * cfg.head_dim();
  const float residual_gain = 1.0f / std::sqrt(2.0f * cfg.n_layers);
  const std::vector<int> outliers = synthetic_outlier_channels(cfg.dim, opt);

  Model m;
  m.cfg = cfg;
  // A tied embedding is also the classifier: 1/√dim keeps logits O(1) (pre-norm blocks do
  // not care about the residual stream's scale).
  const float emb_std = cfg.tied_classifier ? 1.0f / std::sqrt(float(cfg.dim)) : 1.0f;
  m.tok_embedding = g.matrix(cfg.vocab_size, cfg.dim, emb_std);
  if (opt_arch) m.pos_embedding = g.matrix(cfg.max_seq_len + 2, cfg.dim, 0.5f * emb_std);
  for (int l = 0; l < cfg.n_layers; ++l) {
    Block b;
    b.attn_norm = make_norm(g, cfg.dim, opt_arch, outliers, opt.outlier_scale);
    b.mlp_norm = make_norm(g, cfg.dim, opt_arch, outliers, opt.outlier_scale);
    b.q = make_site(g, l, Role::q, cfg.dim, cfg.dim, 1.f, opt_arch);
    b.k = make_site(g, l, Role::k, kv_dim, cfg.dim, 1.f, opt_arch);
    b.v = make_site(g, l, Role::v, kv_dim, cfg.dim, 1.f, opt_arch);
    b.o = make_site(g, l, Role::o, cfg.dim, cfg.dim, residual_gain, opt_arch);
    if (opt_arch) {
      b.fc1 = make_site(g, l, Role::fc1, cfg.hidden_dim, cfg.dim, 1.f, true);
      b.fc2 = make_site(g, l, Role::fc2, cfg.dim, cfg.hidden_dim, residual_gain, true);
    } else {
      b.gate = make_site(g, l, Role::gate, cfg.hidden_dim, cfg.dim, 1.f, false);
      b.up = make_site(g, l, Role::up, cfg.hidden_dim, cfg.dim, 1.f, false);
      b.down = make_site(g, l, Role::down, cfg.dim, cfg.hidden_dim, residual_gain, false);
    }
    m.blocks.push_back(std::move(b));
  }
  m.final_norm = make_norm(g, cfg.dim, opt_arch, {}, 1.f);
  if (!cfg.tied_classifier) m.classifier = g.matrix(cfg.vocab_size, cfg.dim, 1.0f / std::sqrt(float(cfg.dim)));
  return m;
}

}  // namespace fb

// The transformer forward pass: a whole window of T tokens at a time, as matrix work.
//
// Linear layers are T×K · Kᵀ×N products (Eigen → OpenBLAS). Attention runs per head in
// models/forward_kernels (row by row over the causal triangle, vectorised for the CPU).
// Heads are spread over OpenMP threads for large windows; when the caller already runs
// windows in parallel (the perplexity evaluator), the nested region stays serial.
//
// Numerics follow the references the tests compare against: RMSNorm / RoPE / SwiGLU as
// llama2.c's run.c writes them (interleaved RoPE pairs, powf/cosf/sinf in float), OPT as
// Hugging Face's OPTDecoder does it (pre-LayerNorm, positions offset by 2, ReLU MLP).
#include "models/model.h"

#include "core/blas_threads.h"

#include "models/forward_kernels.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

extern "C" {  // OpenBLAS's thread control (cblas.h declares it too, but clashes with Eigen's BLAS header)
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace fb {

const char* role_name(Role r) {
  switch (r) {
    case Role::q: return "q";
    case Role::k: return "k";
    case Role::v: return "v";
    case Role::o: return "o";
    case Role::gate: return "gate";
    case Role::up: return "up";
    case Role::down: return "down";
    case Role::fc1: return "fc1";
    case Role::fc2: return "fc2";
  }
  return "?";
}

const char* arch_name(Arch a) { return a == Arch::llama ? "llama" : "opt"; }

void LinearSite::forward(const Mat& x, Mat& y) const {
  if (op) {
    op->forward(x, y);
    return;
  }
  y.noalias() = x * W.transpose();
  if (b.size()) y.rowwise() += b.transpose();
}

namespace {

Mat apply_norm(const Norm& n, const Mat& x, float eps) {
  Mat out(x.rows(), x.cols());
  const bool layer_norm = n.beta.size() > 0;
  const float inv_n = 1.0f / static_cast<float>(x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    auto row = x.row(t).array();
    if (layer_norm) {
      const float mean = row.sum() * inv_n;
      const float var = (row - mean).square().sum() * inv_n;
      const float inv_std = 1.0f / std::sqrt(var + eps);
      out.row(t).array() = (row - mean) * inv_std * n.gamma.transpose().array() + n.beta.transpose().array();
    } else {
      const float ms = row.square().sum() * inv_n + eps;
      const float inv_rms = 1.0f / std::sqrt(ms);
      out.row(t).array() = n.gamma.transpose().array() * (row * inv_rms);
    }
  }
  return out;
}

// cos/sin of every (position, pair) exactly as run.c computes them (float powf/cosf/sinf);
// a checkpoint's rescaled frequencies (cfg.rope_inv_freq) replace run.c's where present.
struct RopeTable {
  Mat cos, sin;  // T × hd/2
  RopeTable(int T, int hd, float theta, const std::vector<float>& inv_freq = {}) : cos(T, hd / 2), sin(T, hd / 2) {
    for (int j = 0; j < hd / 2; ++j) {
      const float freq = inv_freq.empty() ? 1.0f / std::pow(theta, static_cast<float>(2 * j) / static_cast<float>(hd))
                                          : inv_freq[static_cast<size_t>(j)];
      for (int t = 0; t < T; ++t) {
        const float angle = static_cast<float>(t) * freq;
        cos(t, j) = std::cos(angle);
        sin(t, j) = std::sin(angle);
      }
    }
  }
};

// llama2.c's rotary embedding: consecutive pairs (2j, 2j+1) of every head are rotated.
void apply_rope(Mat& m, int hd, const RopeTable& rope) {
  const int half = hd / 2;
  const Eigen::Index n_heads = m.cols() / hd;
  for (Eigen::Index t = 0; t < m.rows(); ++t) {
    float* row = m.row(t).data();
    for (Eigen::Index h = 0; h < n_heads; ++h) {
      float* head = row + h * hd;
      for (int j = 0; j < half; ++j) {
        const float c = rope.cos(t, j), s = rope.sin(t, j);
        const float a = head[2 * j], b = head[2 * j + 1];
        head[2 * j] = a * c - b * s;
        head[2 * j + 1] = a * s + b * c;
      }
    }
  }
}

// Causal multi-head (grouped-query) attention over the window; returns T × (n_heads·hd).
// Heads are independent: threaded only when the window is large enough to pay for it.
Mat attention(const ModelConfig& cfg, const Mat& q, const Mat& k, const Mat& v) {
  const int hd = cfg.head_dim();
  const int group = cfg.n_heads / cfg.n_kv_heads;
  const int T = static_cast<int>(q.rows());
  Mat out(q.rows(), q.cols());
  const bool worth_threads = double(T) * T * hd * cfg.n_heads > double(1L << 26);
#pragma omp parallel if (worth_threads)
  {
    std::vector<float> scratch(static_cast<size_t>(attention_scratch_floats(T, hd)));
#pragma omp for schedule(static)
    for (int h = 0; h < cfg.n_heads; ++h) {
      const int kvh = h / group;
      AttentionHeadArgs a;
      a.q = q.data() + h * hd;
      a.k = k.data() + kvh * hd;
      a.v = v.data() + kvh * hd;
      a.out = out.data() + h * hd;
      a.ldq = q.cols();
      a.ldk = k.cols();
      a.ldv = v.cols();
      a.ldo = out.cols();
      a.T = T;
      a.head_dim = hd;
      a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
      a.scratch = scratch.data();
      causal_attention_head(a);
    }
  }
  return out;
}

}  // namespace

void check_window(const ModelConfig& cfg, std::span<const int> tokens) {
  if (tokens.empty()) throw std::invalid_argument("Model::forward: empty token window");
  for (int t : tokens)
    if (t < 0 || t >= cfg.vocab_size)
      throw std::out_of_range("Model::forward: token id " + std::to_string(t) + " outside vocabulary of " +
                              std::to_string(cfg.vocab_size));
  if (cfg.arch == Arch::opt && static_cast<long>(tokens.size()) > cfg.max_seq_len)
    throw std::out_of_range("Model::forward: window of " + std::to_string(tokens.size()) +
                            " tokens exceeds OPT's learned positions (" + std::to_string(cfg.max_seq_len) + ")");
  if (cfg.max_exact_window > 0 && static_cast<long>(tokens.size()) > cfg.max_exact_window)
    throw std::out_of_range("Model::forward: window of " + std::to_string(tokens.size()) + " tokens exceeds " +
                            std::to_string(cfg.max_exact_window) + ", the longest computed exactly: " +
                            cfg.max_exact_window_reason + "; use a shorter seqlen");
}

namespace {

// OpenBLAS threads its GEMMs whenever they are not tiny; for windows of small models the
// thread hand-offs cost more than they save (and much more on a loaded machine). A forward
// pass whose largest product is below this many multiply-adds runs BLAS single-threaded.
constexpr double kBlasThreadingMinMacs = double(1 << 24);

// Sets OpenBLAS to one thread for the scope, when the work is small and nobody else
// manages threads (inside an OpenMP region the caller already does, e.g. ppl's windows).
class SmallWorkBlasGuard {
 public:
  explicit SmallWorkBlasGuard(double largest_gemm_macs) {
#ifdef _OPENMP
    if (omp_in_parallel()) return;
#endif
    if (largest_gemm_macs < kBlasThreadingMinMacs) single_.emplace(1);
  }

 private:
  std::optional<BlasThreadsFor> single_;
};

}  // namespace

// Runs one linear site, letting calibration observe its input first.
static void run_site(const Model& m, const LinearSite& s, const Mat& x, Mat& y) {
  if (m.site_hook) m.site_hook(s.id, x);
  s.forward(x, y);
}

void rope_tables(const ModelConfig& cfg, int T, std::vector<float>& cos, std::vector<float>& sin) {
  const RopeTable rope(T, cfg.head_dim(), cfg.rope_theta, cfg.rope_inv_freq);
  cos.assign(rope.cos.data(), rope.cos.data() + rope.cos.size());
  sin.assign(rope.sin.data(), rope.sin.data() + rope.sin.size());
}

Mat Model::forward(std::span<const int> tokens) const {
  check_window(cfg, tokens);
  const int T = static_cast<int>(tokens.size());
  const bool llama = cfg.arch == Arch::llama;
  const SmallWorkBlasGuard blas_threads(double(T) * cfg.dim * std::max(cfg.hidden_dim, cfg.vocab_size));

  Mat x(T, cfg.dim);
  for (int t = 0; t < T; ++t) {
    x.row(t) = tok_embedding.row(tokens[t]);
    if (!llama) x.row(t) += pos_embedding.row(t + 2);  // OPT's learned positions start at offset 2
  }
  const RopeTable rope = llama ? RopeTable(T, cfg.head_dim(), cfg.rope_theta, cfg.rope_inv_freq) : RopeTable(0, 0, 1.f);

  Mat h, q, k, v, a, b;
  for (int l = 0; l < cfg.n_layers; ++l) {
    const Block& blk = blocks[l];
    // Attention sub-layer.
    h = apply_norm(blk.attn_norm, x, cfg.norm_eps);
    run_site(*this, blk.q, h, q);
    run_site(*this, blk.k, h, k);
    run_site(*this, blk.v, h, v);
    if (llama) {
      apply_rope(q, cfg.head_dim(), rope);
      apply_rope(k, cfg.head_dim(), rope);
    }
    if (attention_hook) attention_hook(l, q, k, v);
    h = attention(cfg, q, k, v);
    run_site(*this, blk.o, h, a);
    x += a;
    // MLP sub-layer.
    h = apply_norm(blk.mlp_norm, x, cfg.norm_eps);
    if (llama) {
      run_site(*this, blk.gate, h, a);
      run_site(*this, blk.up, h, b);
      silu_multiply(a.data(), b.data(), a.size());
      run_site(*this, blk.down, a, b);
    } else {
      run_site(*this, blk.fc1, h, a);
      a = a.cwiseMax(0.0f);
      run_site(*this, blk.fc2, a, b);
    }
    x += b;
  }
  h = apply_norm(final_norm, x, cfg.norm_eps);
  Mat logits;
  logits.noalias() = h * output_matrix().transpose();
  return logits;
}

std::vector<LinearSite*> Model::sites() {
  std::vector<LinearSite*> out;
  for (Block& b : blocks) {
    for (LinearSite* s : {&b.q, &b.k, &b.v, &b.o}) out.push_back(s);
    if (cfg.arch == Arch::llama)
      for (LinearSite* s : {&b.gate, &b.up, &b.down}) out.push_back(s);
    else
      for (LinearSite* s : {&b.fc1, &b.fc2}) out.push_back(s);
  }
  return out;
}

std::vector<const LinearSite*> Model::sites() const {
  auto mut = const_cast<Model*>(this)->sites();
  return {mut.begin(), mut.end()};
}

LinearSite& Model::site(const SiteId& id) {
  if (id.layer < 0 || id.layer >= static_cast<int>(blocks.size()))
    throw std::out_of_range("Model::site: layer " + std::to_string(id.layer) + " out of range");
  const bool llama_role = id.role == Role::gate || id.role == Role::up || id.role == Role::down;
  const bool opt_role = id.role == Role::fc1 || id.role == Role::fc2;
  if ((cfg.arch == Arch::llama && opt_role) || (cfg.arch == Arch::opt && llama_role))
    throw std::out_of_range(std::string("Model::site: role ") + role_name(id.role) + " does not exist in " +
                            arch_name(cfg.arch) + " models");
  Block& b = blocks[id.layer];
  switch (id.role) {
    case Role::q: return b.q;
    case Role::k: return b.k;
    case Role::v: return b.v;
    case Role::o: return b.o;
    case Role::gate: return b.gate;
    case Role::up: return b.up;
    case Role::down: return b.down;
    case Role::fc1: return b.fc1;
    case Role::fc2: return b.fc2;
  }
  throw std::logic_error("Model::site: unknown role");
}

bool attention_hook_is_pure(const AttentionHook& hook) {
  return !hook || hook.target<PureAttentionHook>() != nullptr;
}

AttentionHook chain_attention_hooks(AttentionHook prev, AttentionHook next, bool next_is_pure) {
  if (!prev) return next_is_pure ? AttentionHook(PureAttentionHook{{}, std::move(next)}) : next;
  if (next_is_pure && attention_hook_is_pure(prev)) return PureAttentionHook{std::move(prev), std::move(next)};
  if (!next) return prev;
  return SerialAttentionHooks{std::move(prev), std::move(next)};
}

namespace {
KvFootprint kv_footprint_after(const AttentionHook& hook, const ModelConfig& cfg, KvFootprint before) {
  if (!hook) return before;
  if (auto* op = hook.target<AttentionOpHook>()) return op->op->kv_footprint(cfg, before);
  if (auto* pure = hook.target<PureAttentionHook>())
    return kv_footprint_after(pure->second, cfg, kv_footprint_after(pure->first, cfg, before));
  if (auto* serial = hook.target<SerialAttentionHooks>())
    return kv_footprint_after(serial->second, cfg, kv_footprint_after(serial->first, cfg, before));
  return before;
}
}  // namespace

KvFootprint attention_kv_footprint(const AttentionHook& hook, const ModelConfig& cfg) {
  return kv_footprint_after(hook, cfg, KvFootprint{});
}

namespace {
bool append_plan(const AttentionHook& hook, int layer, AttentionPlan& out) {
  if (!hook) return true;
  if (auto* op = hook.target<AttentionOpHook>()) {
    std::optional<AttentionPlan> p = op->op->plan(layer);
    if (!p) return false;
    out.insert(out.end(), p->begin(), p->end());
    return true;
  }
  if (auto* pure = hook.target<PureAttentionHook>())
    return append_plan(pure->first, layer, out) && append_plan(pure->second, layer, out);
  if (auto* serial = hook.target<SerialAttentionHooks>())
    return append_plan(serial->first, layer, out) && append_plan(serial->second, layer, out);
  return false;
}
}  // namespace

std::optional<AttentionPlan> attention_plan(const AttentionHook& hook, int layer) {
  AttentionPlan plan;
  if (!append_plan(hook, layer, plan)) return std::nullopt;
  return plan;
}

Norm* Model::norm_before(const SiteId& id) {
  if (id.layer < 0 || id.layer >= static_cast<int>(blocks.size())) return nullptr;
  Block& b = blocks[id.layer];
  switch (id.role) {
    case Role::q:
    case Role::k:
    case Role::v: return &b.attn_norm;
    case Role::gate:
    case Role::up:
    case Role::fc1: return &b.mlp_norm;
    default: return nullptr;
  }
}

long Model::parameter_count() const {
  long n = tok_embedding.size() + pos_embedding.size() + classifier.size();
  n += final_norm.gamma.size() + final_norm.beta.size();
  for (const Block& b : blocks) n += b.attn_norm.gamma.size() + b.attn_norm.beta.size() + b.mlp_norm.gamma.size() + b.mlp_norm.beta.size();
  for (const LinearSite* s : sites()) n += s->W.size() + s->b.size();
  return n;
}

}  // namespace fb

// The transformer runtime's data model: one struct covers LLaMA-style and OPT decoders.
//
// Every linear layer is a *site* (layer index + role). A site holds its fp32 weight
// and, optionally, an operator that replaces the dense product: methods install
// operators (fake-quant, real-quant, flatten + quantize, ...) and fold scales into
// norms and weights, but never rewrite the forward pass. Hooks let calibration code
// observe each site's input and the attention tensors (KV-cache quantization and
// FlatQuant's per-head transforms use the attention hook).
#pragma once

#include <Eigen/Core>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace fb {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXf;

enum class Arch { llama, opt };
enum class Role { q, k, v, o, gate, up, down, fc1, fc2 };

const char* role_name(Role r);
const char* arch_name(Arch a);

struct SiteId {
  int layer = 0;
  Role role = Role::q;
};

// Replaces y = x·Wᵀ + b for one site. x is T×K (tokens × input channels), y is T×N.
class LinearOp {
 public:
  virtual ~LinearOp() = default;
  virtual void forward(const Mat& x, Mat& y) const = 0;
  virtual std::string describe() const = 0;  // e.g. "fake-quant W4 per-channel / A4 per-token"
};

struct LinearSite {
  SiteId id;
  Mat W;   // N×K, PyTorch layout (row n = output channel)
  Vec b;   // size N, or size 0 when the layer has no bias
  std::shared_ptr<const LinearOp> op;  // null: dense fp32 x·Wᵀ + b

  int in_features() const { return static_cast<int>(W.cols()); }
  int out_features() const { return static_cast<int>(W.rows()); }
  void forward(const Mat& x, Mat& y) const;  // runs op if set, else the dense product
};

// RMSNorm (beta empty) or LayerNorm (beta present).
struct Norm {
  Vec gamma;
  Vec beta;
};

struct Block {
  Norm attn_norm;   // LLaMA input_layernorm / OPT self_attn_layer_norm
  Norm mlp_norm;    // LLaMA post_attention_layernorm / OPT final_layer_norm
  LinearSite q, k, v, o;
  LinearSite gate, up, down;  // LLaMA SwiGLU: down(silu(gate(x)) * up(x))
  LinearSite fc1, fc2;        // OPT: fc2(relu(fc1(x)))
};

struct ModelConfig {
  std::string name;
  Arch arch = Arch::llama;
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0;
  int vocab_size = 0, max_seq_len = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.f;
  bool tied_classifier = false;
  bool synthetic = false;  // weights generated from a seed (never for accuracy claims)
  int head_dim() const { return dim / n_heads; }
};

// Seen by calibration: the input activations of a site for one window (T×K).
using SiteHook = std::function<void(const SiteId&, const Mat& x)>;

// Called inside attention after RoPE, before scores: q is T×(n_heads·hd), k and v are
// T×(n_kv_heads·hd). May modify them in place (KV-cache quantization, per-head transforms).
using AttentionHook = std::function<void(int layer, Mat& q, Mat& k, Mat& v)>;

// An attention hook known to be a pure function of its arguments (no state shared between
// calls, so forwards may run on several threads): `first` then `second`, each empty or pure
// itself. Wrap a callable in it only when that holds; any other hook makes forwards serial.
struct PureAttentionHook {
  AttentionHook first, second;
  void operator()(int layer, Mat& q, Mat& k, Mat& v) const {
    if (first) first(layer, q, k, v);
    if (second) second(layer, q, k, v);
  }
};
// True for an empty hook or a PureAttentionHook (whose parts were checked when it was built).
bool attention_hook_is_pure(const AttentionHook& hook);
// `next` run after `prev`: pure when both are (next_is_pure says so for `next`), else a plain chain.
AttentionHook chain_attention_hooks(AttentionHook prev, AttentionHook next, bool next_is_pure);

struct Model {
  ModelConfig cfg;
  Mat tok_embedding;  // vocab × dim
  Mat pos_embedding;  // OPT learned positions ((max_seq_len + 2) × dim, offset 2); empty for LLaMA
  std::vector<Block> blocks;
  Norm final_norm;
  Mat classifier;     // vocab × dim; empty when tied to tok_embedding

  SiteHook site_hook;            // optional
  AttentionHook attention_hook;  // optional

  // Logits (T × vocab) for one window of tokens, run as matrix work over the window.
  Mat forward(std::span<const int> tokens) const;

  // Every linear site in execution order (q k v o then gate up down / fc1 fc2, per layer).
  std::vector<LinearSite*> sites();
  std::vector<const LinearSite*> sites() const;
  // The norm whose output feeds a site (attn_norm for q/k/v, mlp_norm for gate/up/fc1), or null.
  Norm* norm_before(const SiteId& id);
  LinearSite& site(const SiteId& id);

  const Mat& output_matrix() const { return classifier.size() ? classifier : tok_embedding; }
  long parameter_count() const;
};

}  // namespace fb

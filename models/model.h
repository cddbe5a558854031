// The transformer runtime's data model: one struct covers LLaMA-style and OPT decoders.
//
// Every linear layer is a *site* (layer index + role). A site holds its fp32 weight
// and, optionally, an operator that replaces the dense product: methods install
// operators (fake-quant, real-quant, flatten + quantize, ...) and fold scales into
// norms and weights, but never rewrite the forward pass. Hooks let calibration code
// observe each site's input and the attention tensors (KV-cache quantization and
// FlatQuant's per-head transforms use the attention hook).
#pragma once

#include "core/tensor.h"
#include "models/op_plan.h"

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace fb {


enum class Arch { llama, opt };
enum class Role { q, k, v, o, gate, up, down, fc1, fc2 };

const char* role_name(Role r);
const char* arch_name(Arch a);

struct SiteId {
  int layer = 0;
  Role role = Role::q;
};

// What one linear operator stores and consumes (memory accounting, methods/common/memory.h).
struct OpFootprint {
  long weight_values = 0;       // weight elements held (after any flatten/padding)
  int w_bits = 16;              // bits per stored weight value; 16 = floating point
  long packed_bytes = -1;       // exact bytes of the codes when the operator holds them packed; -1 = compute from bits
  long scale_values = 0;        // floating-point scales and zero points of weights (and static activation scales)
  long extra_float_values = 0;  // other floating-point parameters the operator keeps (bias, transforms, ...)
  int a_bits = 16;              // bits of the input activations it consumes
  int a_width = 0;              // input channels it consumes (K, or the flattened K)
};

// Replaces y = x·Wᵀ + b for one site. x is T×K (tokens × input channels), y is T×N.
class LinearOp {
 public:
  virtual ~LinearOp() = default;
  virtual void forward(const Mat& x, Mat& y) const = 0;
  virtual std::string describe() const = 0;  // e.g. "fake-quant W4 per-channel / A4 per-token"
  // What the operator stores: pure, so no operator can leave the memory accounting guessing.
  virtual OpFootprint footprint() const = 0;
  // The rows whose XᵀX GPTQ minimises this operator's weight error over, from the site's input x:
  // x itself (the GPTQ repo's float inputs), unless the operator transforms its input before the
  // GEMM (FlatQuant: Q_a(x·T), as the official gptq_fwrd hooks the inner linear).
  virtual Mat hessian_rows(const Mat& x) const { return x; }
  // The operator as steps any execution backend runs (models/op_plan.h; pointers into this
  // operator, valid while it lives), or none where it has no such form (integer GEMMs).
  virtual std::optional<LinearPlan> plan() const { return std::nullopt; }
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
  // RoPE inverse frequency of each pair (head_dim/2) when a checkpoint rescales them (Hugging
  // Face rope_scaling "llama3" / "linear"); empty: 1 / rope_theta^(2j/head_dim).
  std::vector<float> rope_inv_freq;
  // Longest window the runtime computes exactly (0: no limit) and why: e.g. a sliding_window,
  // beyond which the checkpoint's attention masks keys that full causal attention keeps.
  int max_exact_window = 0;
  std::string max_exact_window_reason;
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
// `first` then `second` where one of them is not pure (forwards stay serial).
struct SerialAttentionHooks {
  AttentionHook first, second;
  void operator()(int layer, Mat& q, Mat& k, Mat& v) const {
    first(layer, q, k, v);
    second(layer, q, k, v);
  }
};
// True for an empty hook or a PureAttentionHook (whose parts were checked when it was built).
bool attention_hook_is_pure(const AttentionHook& hook);
// `next` run after `prev`: pure when both are (next_is_pure says so for `next`), else a SerialAttentionHooks.
AttentionHook chain_attention_hooks(AttentionHook prev, AttentionHook next, bool next_is_pure);

// What the KV cache holds per token once the attention hooks have run, over all layers.
struct KvFootprint {
  int k_bits = 16, v_bits = 16;  // bits per cached K / V value (16: floating point)
  long k_scale_values = 0;       // floating-point scales / zero points cached per token with K (all layers)
  long v_scale_values = 0;       // ... with V
  long parameter_values = 0;     // floating-point parameters the hooks hold (e.g. per-head transforms)
};

// A hook a method deploys (KV-cache quantizer, per-head transforms): the edit and the cache it
// leaves are one interface, so the memory accounting cannot miss a hook that changes the cache.
// Install it as an AttentionHook through AttentionOpHook.
class AttentionOp {
 public:
  virtual ~AttentionOp() = default;
  virtual void apply(int layer, Mat& q, Mat& k, Mat& v) const = 0;
  // The cache after this hook, given the cache the hooks before it leave (`before`).
  virtual KvFootprint kv_footprint(const ModelConfig& cfg, const KvFootprint& before) const = 0;
  // Its edits of one layer as steps any execution backend runs (models/op_plan.h), or none.
  virtual std::optional<AttentionPlan> plan(int layer) const { return std::nullopt; }
};
struct AttentionOpHook {
  std::shared_ptr<const AttentionOp> op;
  void operator()(int layer, Mat& q, Mat& k, Mat& v) const { op->apply(layer, q, k, v); }
};
// The cache a model's hook leaves: AttentionOps say, chains are walked in order, and any other
// callable (observers, test probes) stores nothing and leaves the cache as it was.
KvFootprint attention_kv_footprint(const AttentionHook& hook, const ModelConfig& cfg);
// The steps of a model's hook at one layer, chains walked in order (empty: no hook), or none when
// a part is not an AttentionOp with a plan (observers, test probes, opaque edits).
std::optional<AttentionPlan> attention_plan(const AttentionHook& hook, int layer);

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

// Throws what Model::forward throws for a window it cannot run exactly: an empty one, a token
// outside the vocabulary, more tokens than OPT's learned positions or than the checkpoint's
// exact window (every backend checks a window with it).
void check_window(const ModelConfig& cfg, std::span<const int> tokens);

// cos and sin of every (position < T, pair) that LLaMA-style attention rotates by, T × head_dim/2
// row-major, exactly as Model::forward computes them (another backend uploads these).
void rope_tables(const ModelConfig& cfg, int T, std::vector<float>& cos, std::vector<float>& sin);

}  // namespace fb

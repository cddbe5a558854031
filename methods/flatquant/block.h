// One LLaMA decoder block as FlatQuant calibrates it (official flatquant/model_tools/
// llama_utils.py + flat_linear.py, training mode), in double precision:
//   attention: h = RMSNorm(x); x̃ = (h⊙d_qkv)·(P1⊗P2); q,k,v = Q_a(x̃)·Q_w(clip((W⊘d)·P⁻ᵀ))ᵀ
//              (v's weight also gets P_v on its output side); RoPE; q ← q·P_k⁻ᵀ, k ← k·P_k per
//              head; K and V fake-quantized per token per head; causal GQA attention;
//              o-input ← P_oᵀ·A across heads; o = Q_a(·)·Q_w(clip(W_o·(P_o⊗P_v)⁻ᵀ))ᵀ
//   MLP:       the same Kronecker pattern on the up/gate input and on the down input
//              (d_down multiplies silu(gate)⊙up).
// The forward keeps every intermediate the hand-written backward needs (llm.c style; see
// block_ops.h for why).
#pragma once

#include "methods/flatquant/fake_quant.h"
#include "methods/flatquant/params.h"
#include "models/model.h"

#include <array>
#include <random>
#include <vector>

namespace fb::flatquant {

struct BlockShape {
  int dim = 0, hidden = 0, n_heads = 0, n_kv_heads = 0;
  double norm_eps = 1e-5, rope_theta = 10000;
  bool rope_interleaved = true;  // llama2.c convention; false = Hugging Face rotate_half
  int head_dim() const { return dim / n_heads; }
};

// The block's original weights (PyTorch layout, N×K) and norm gains.
struct FpBlock {
  VecD attn_gamma, mlp_gamma;
  MatD wq, wk, wv, wo, wgate, wup, wdown;
};

// Per-channel running max |x| of the three Kronecker-transform inputs over the
// full-precision forward (official ln_smax / up_smax / down_smax, start value 1e-5).
struct InputStats {
  VecD qkv, upgate, down;
};

// The shape and the float64 weights of a runtime model's block, as calibration reads them (the
// runtime rotates llama2.c pairs, HF weights being permuted on load, so RoPE is interleaved).
BlockShape block_shape_of(const ModelConfig& c);
FpBlock fp_block_of(const Block& b);

// The original block on B windows of T tokens (x: (B·T)×dim); updates *stats when given.
MatD fp_block_forward(const BlockShape& shape, const FpBlock& fp, const MatD& x, int T, InputStats* stats);

struct QuantSettings {
  QuantSpec w{4, true}, a{4, true}, q{16, true}, k{4, false}, v{4, false};
  bool lwc = true, lac = true, add_diag = true, direct_inv = false;
  bool quantize = true;  // false: transforms only, every quantizer the identity (official set_quantizer_state)
  bool linear_transforms() const { return w.enabled() || a.enabled(); }
  bool k_transform() const { return k.enabled() || q.enabled(); }
  bool v_transform() const { return v.enabled() || linear_transforms(); }
};

struct KronTransform {
  Factor left, right;
  Param diag;  // K×1 per-channel scaling d; empty without PS
  bool has_diag() const { return diag.v.size() > 0; }
};

// LWC (one logit pair per output row) and LAC (one scalar logit pair) of one linear.
struct LinearClip {
  Param wmax, wmin, amax, amin;
};

struct BlockParams {
  KronTransform qkv, upgate, down;
  Factor o_heads, v_head, k_head;  // heads×heads, head_dim×head_dim, head_dim×head_dim
  LinearClip q, k, v, o, gate, up, dn;
  LinearClip q_cache, k_cache, v_cache;  // only amax/amin used (LAC of the cache quantizers)
  std::vector<Param*> all();             // every initialised parameter
  std::vector<Factor*> factors();        // every initialised factor
  long count();                          // number of scalars
};

// Official initialisation: random orthogonal factors, σ = 1, clipping logits 4.0, and d
// from `diag_alpha` (sq_style: d_k = max(max_n|W[n,k]|^(1−α) / max_t|x[t,k]|^α, 1e-5)) or 1.
BlockParams init_block_params(const BlockShape& shape, const FpBlock& fp, const InputStats& stats,
                              const QuantSettings& settings, bool sq_style_diag, double diag_alpha,
                              std::mt19937_64& rng);

// The weight side of one linear, kept for the backward pass.
struct WeightPath {
  MatD w_in, w_t, w_c, w_o, w_q;  // W⊘d, transformed, clipped, output-transformed, fake-quantized
};

// The quantized block's training forward and backward in the scalar S: float for calibration
// (CalibOptions::fp32), double for the finite-difference tests and the reference run. The
// parameters, the weight path (transform, LWC, weight fake-quant) and their gradients stay in
// double either way; activations, attention and their gradients are in S.
template <class S>
class QuantBlockT {
 public:
  using Mat = MatX<S>;
  // The weight side of the seven linears and its gradients w.r.t. each fake-quantized weight,
  // indexed by Site.
  enum Site : int { kQ, kK, kV, kO, kGate, kUp, kDown, kSites };
  using Weights = std::array<WeightPath, kSites>;
  using WeightGrads = std::array<MatD, kSites>;

  QuantBlockT(const BlockShape& shape, const FpBlock& fp, BlockParams& params, const QuantSettings& settings);
  // Block output for x ((B·T)×dim); materialises the factors and keeps the intermediates.
  Mat forward(const Mat& x, int T);
  // Accumulates parameter gradients for the upstream gradient of the last forward's output.
  void backward(const Mat& g_out);

  // Windows of one batch share the weight side, which does not depend on the window
  // (methods/flatquant/calibrate.cpp): once `owner` has run prepare_weights() and the
  // factors here hold its materialised values, forward() reads owner's weights, and
  // backward() accumulates only the activation side, leaving the weight side's input in
  // weight_grads() and the factors' g_mat / g_inv_t unconsumed, for the owner's
  // weights_backward() over the sum of every window's.
  void share_weights(const QuantBlockT& owner) { weights_ = &owner.own_; }
  void prepare_weights();                       // materialises the factors, computes the weight side
  void weights_backward(const WeightGrads& g);  // its backward, then the factors' (Factor::backward)
  const WeightGrads& weight_grads() const { return g_w_; }

 private:
  bool shares_weights() const { return weights_ != &own_; }
  // What weight_forward / weight_backward take for one site: its weight, input transform and
  // inverse factors, clipping, output-side factor, and where the factors' gradients go.
  struct SiteArgs {
    const MatD* w;
    KronTransform* tr;
    const MatD *inv_l, *inv_r;
    LinearClip* clip;
    const MatD* out_head;
    MatD *g_inv_l, *g_inv_r, *g_out_head;
  };
  SiteArgs site_args(Site site);
  struct ActSide {  // a Kronecker-transformed activation feeding one or more linears
    Mat x, x_d, x_t;
  };
  void transform_input(const Mat& x, KronTransform& tr, ActSide& side);
  void transform_input_backward(KronTransform& tr, const ActSide& side, const Mat& g_xt, Mat* g_x);
  void weight_forward(const MatD& w, KronTransform* tr, const MatD* inv_l, const MatD* inv_r, LinearClip& clip,
                      const MatD* out_head, WeightPath& p);
  void weight_backward(const MatD& w, KronTransform* tr, const MatD* inv_l, const MatD* inv_r, LinearClip& clip,
                       const MatD* out_head, const WeightPath& p, const MatD& g_wq, MatD* g_inv_l, MatD* g_inv_r,
                       MatD* g_out_head);
  // y = Q_a(x)·Ŵᵀ for one linear; keeps Q_a(x) in xq.
  void linear_forward(const Mat& x, LinearClip& clip, const WeightPath& p, Mat& xq, Mat& y);
  // Accumulates into g_x (the quantizer input) and returns the gradient w.r.t. Ŵ.
  MatD linear_backward(const Mat& x, LinearClip& clip, const WeightPath& p, const Mat& xq, const Mat& g_y, Mat& g_x);
  const double* lac(Param& p) const { return p.v.size() ? p.v.data() : nullptr; }
  double* lac_grad(Param& p) const { return p.v.size() ? p.g.data() : nullptr; }

  const BlockShape& shape_;
  const FpBlock& fp_;
  BlockParams& p_;
  const QuantSettings& s_;
  QuantSpec w_, a_, q_, k_, v_;  // the settings' specs, or 16-bit when !s_.quantize
  int T_ = 0;
  Mat x_, h1_, h2_, x2_, att_, a2_, probs_, xq_o_;
  VecX<S> rstd1_, rstd2_;
  ActSide qkv_in_, ug_in_, dn_in_, o_in_;
  Mat xq_q_, xq_k_, xq_v_, xq_g_, xq_u_, xq_d_;
  Mat q_lin_, k_lin_, v_lin_, q_rot_, k_rot_, q2_, k2_, q3_, k3_, v3_, gate_, up_;
  Weights own_;
  const Weights* weights_ = &own_;
  WeightGrads g_w_;
  Mat eye_hd_;
};
using QuantBlock = QuantBlockT<double>;

}  // namespace fb::flatquant

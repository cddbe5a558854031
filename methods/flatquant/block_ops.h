// Forward and hand-written backward passes of the operators in one LLaMA decoder block,
// for FlatQuant's block-wise calibration, in the scalar S: float for calibration (fast), double
// for the finite-difference tests (instantiated for both in block_ops.cpp).
//
// Why llm.c-style explicit backward functions rather than a reverse-mode tape:
//  * the graph is fixed (one decoder block, the same ~40 ops every step), so a tape's
//    generality buys nothing while its bookkeeping (node allocation, dynamic dispatch,
//    keeping every intermediate alive) costs time and memory on every one of the
//    epochs × steps × layers iterations;
//  * every gradient rule is a short function next to its forward, checked against finite
//    differences in tests/flatquant_backward_test.cpp — a wrong rule fails its own test
//    instead of hiding inside a generic engine;
//  * the quantizers need non-standard rules (straight-through rounding, torch's tie
//    conventions for max/min, a non-detached scale) that a tape would need as custom
//    nodes anyway.
// The price is that the block's backward (methods/flatquant/block.cpp) must mirror its
// forward by hand; the whole-block gradient is also checked against finite differences.
//
// Layout: activations are (B·T)×C row-major matrices, B windows of T tokens, causal
// attention inside each window.
#pragma once

#include "methods/flatquant/kron.h"

namespace fb::flatquant {

// y = x / rms(x) ⊙ γ; `rstd` receives 1/rms per row.
template <class S>
void rmsnorm_forward(const MatX<S>& x, const VecX<S>& gamma, double eps, MatX<S>& y, VecX<S>& rstd);
// Accumulates the input gradient into gx.
template <class S>
void rmsnorm_backward(const MatX<S>& x, const VecX<S>& gamma, const VecX<S>& rstd, const MatX<S>& gy, MatX<S>& gx);

// Rotary embedding applied in place to every head of x ((B·T)×(H·hd)), positions 0..T−1
// inside each window. interleaved: rotate pairs (2i, 2i+1) (llama2.c); otherwise pairs
// (i, i + hd/2) (Hugging Face rotate_half). inverse = rotate by −angle (the backward pass).
template <class S>
void rope_apply(MatX<S>& x, int T, int head_dim, double theta, bool interleaved, bool inverse);

// Causal multi-head attention with grouped KV heads (query head h uses kv head h / (H/KVH)),
// scores scaled by 1/sqrt(hd). `probs` caches the softmax ((B·H)·T × T) for the backward.
template <class S>
void attention_forward(const MatX<S>& q, const MatX<S>& k, const MatX<S>& v, int T, int n_heads, int n_kv_heads, MatX<S>& out,
                       MatX<S>& probs);
// Overwrites gq, gk, gv.
template <class S>
void attention_backward(const MatX<S>& q, const MatX<S>& k, const MatX<S>& v, const MatX<S>& probs, const MatX<S>& gout, int T,
                        int n_heads, int n_kv_heads, MatX<S>& gq, MatX<S>& gk, MatX<S>& gv);

// y = silu(gate) ⊙ up.
template <class S>
void swiglu_forward(const MatX<S>& gate, const MatX<S>& up, MatX<S>& y);
template <class S>
void swiglu_backward(const MatX<S>& gate, const MatX<S>& up, const MatX<S>& gy, MatX<S>& ggate, MatX<S>& gup);

// x·M for every head block of hd columns (M: hd×hd); backward accumulates gM, overwrites gx.
template <class S>
void per_head_apply(const MatX<S>& x, const MatX<S>& M, MatX<S>& y);
template <class S>
void per_head_backward(const MatX<S>& x, const MatX<S>& M, const MatX<S>& gy, MatX<S>* gx, MatX<S>* gM);

}  // namespace fb::flatquant

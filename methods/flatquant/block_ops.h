// Forward and hand-written backward passes of the operators in one LLaMA decoder block,
// for FlatQuant's block-wise calibration (double precision throughout).
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
void rmsnorm_forward(const MatD& x, const VecD& gamma, double eps, MatD& y, VecD& rstd);
// Accumulates the input gradient into gx.
void rmsnorm_backward(const MatD& x, const VecD& gamma, const VecD& rstd, const MatD& gy, MatD& gx);

// Rotary embedding applied in place to every head of x ((B·T)×(H·hd)), positions 0..T−1
// inside each window. interleaved: rotate pairs (2i, 2i+1) (llama2.c); otherwise pairs
// (i, i + hd/2) (Hugging Face rotate_half). inverse = rotate by −angle (the backward pass).
void rope_apply(MatD& x, int T, int head_dim, double theta, bool interleaved, bool inverse);

// Causal multi-head attention with grouped KV heads (query head h uses kv head h / (H/KVH)),
// scores scaled by 1/sqrt(hd). `probs` caches the softmax ((B·H)·T × T) for the backward.
void attention_forward(const MatD& q, const MatD& k, const MatD& v, int T, int n_heads, int n_kv_heads, MatD& out,
                       MatD& probs);
// Overwrites gq, gk, gv.
void attention_backward(const MatD& q, const MatD& k, const MatD& v, const MatD& probs, const MatD& gout, int T,
                        int n_heads, int n_kv_heads, MatD& gq, MatD& gk, MatD& gv);

// y = silu(gate) ⊙ up.
void swiglu_forward(const MatD& gate, const MatD& up, MatD& y);
void swiglu_backward(const MatD& gate, const MatD& up, const MatD& gy, MatD& ggate, MatD& gup);

// x·M for every head block of hd columns (M: hd×hd); backward accumulates gM, overwrites gx.
void per_head_apply(const MatD& x, const MatD& M, MatD& y);
void per_head_backward(const MatD& x, const MatD& M, const MatD& gy, MatD* gx, MatD* gM);

}  // namespace fb::flatquant

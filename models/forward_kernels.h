// Vectorised kernels of the forward pass that BLAS does not cover: causal attention for
// one head over a whole window, and the SwiGLU activation.
//
// Attention runs row by row: scores against the visible keys, softmax, weighted sum of
// values — the T×T score matrix is never formed. Plain loops on GCC/Clang vector types
// (keys transposed so the score loop runs over contiguous memory, a polynomial exp). The
// same source (forward_kernels_impl.inc) is compiled twice — generic and with AVX2+FMA
// (forward_kernels_avx2.cpp) — and the CPU picks at run time, so the build needs no
// -march flag. Neither copy includes Eigen or any standard template, so the two copies
// cannot clash at link time. models/reference_forward.cpp is the plain reference.
#pragma once

namespace fb {

struct AttentionHeadArgs {
  const float* q;  // q[t·ldq + i], i < head_dim: this head's queries (RoPE applied)
  const float* k;  // k[s·ldk + i]: the keys of the head's KV group
  const float* v;  // v[s·ldv + i]
  float* out;      // out[t·ldo + i]
  long ldq, ldk, ldv, ldo;
  int T, head_dim;
  float scale;     // 1/√head_dim
  float* scratch;  // at least attention_scratch_floats(T, head_dim) floats
};

long attention_scratch_floats(int T, int head_dim);

// out[t] = Σ_{s≤t} softmax_s(scale · q[t]·k[s]) v[s], for every t < T.
void causal_attention_head(const AttentionHeadArgs& a);

// gate[i] = silu(gate[i]) · up[i] = gate[i] / (1 + e^{-gate[i]}) · up[i], for i < n.
void silu_multiply(float* gate, const float* up, long n);

// Which copy runs on this CPU ("avx2" or "generic"), for provenance.
const char* forward_kernels_isa();

namespace kernel_detail {
void causal_attention_head_generic(const AttentionHeadArgs& a);
void causal_attention_head_avx2(const AttentionHeadArgs& a);
void silu_multiply_generic(float* gate, const float* up, long n);
void silu_multiply_avx2(float* gate, const float* up, long n);
}  // namespace kernel_detail

}  // namespace fb

// Causal attention for one head over a whole window, row by row: scores against the
// visible keys, softmax, weighted sum of values — the T×T score matrix is never formed.
//
// Plain loops written for the auto-vectoriser (keys transposed so the score loop runs
// over contiguous memory, 8 partial sums for reductions, a polynomial exp). The same
// source is compiled twice — generic and with AVX2+FMA (attention_kernel_avx2.cpp) — and
// the CPU picks at run time, so the build needs no -march flag. Neither copy includes
// Eigen or any standard template, so the two copies cannot clash at link time.
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

// Which copy runs on this CPU ("avx2" or "generic"), for provenance.
const char* attention_kernel_isa();

namespace attention_detail {
void causal_attention_head_generic(const AttentionHeadArgs& a);
void causal_attention_head_avx2(const AttentionHeadArgs& a);
}  // namespace attention_detail

}  // namespace fb

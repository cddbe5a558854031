#include "models/forward_kernels.h"

namespace fb {
namespace {
#include "models/forward_kernels_impl.inc"

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}
}  // namespace

namespace kernel_detail {
void causal_attention_head_generic(const AttentionHeadArgs& a) { causal_attention_head_impl(a); }
void silu_multiply_generic(float* gate, const float* up, long n) { silu_multiply_impl(gate, up, n); }
}  // namespace kernel_detail

long attention_scratch_floats(int T, int head_dim) { return (2L * head_dim + 1) * ((T + 7L) & ~7L) + head_dim; }

void causal_attention_head(const AttentionHeadArgs& a) {
  if (cpu_has_avx2_fma()) return kernel_detail::causal_attention_head_avx2(a);
  kernel_detail::causal_attention_head_generic(a);
}

void silu_multiply(float* gate, const float* up, long n) {
  if (cpu_has_avx2_fma()) return kernel_detail::silu_multiply_avx2(gate, up, n);
  kernel_detail::silu_multiply_generic(gate, up, n);
}

const char* forward_kernels_isa() { return cpu_has_avx2_fma() ? "avx2" : "generic"; }

}  // namespace fb

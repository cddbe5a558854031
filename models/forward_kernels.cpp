#include "models/attention_kernel.h"

namespace fb {
namespace {
#include "models/attention_kernel_impl.inc"
}  // namespace

namespace attention_detail {
void causal_attention_head_generic(const AttentionHeadArgs& a) { causal_attention_head_impl(a); }
}  // namespace attention_detail

long attention_scratch_floats(int T, int head_dim) { return (2L * head_dim + 1) * ((T + 7L) & ~7L) + head_dim; }

namespace {
bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}
}  // namespace

void causal_attention_head(const AttentionHeadArgs& a) {
#if defined(__x86_64__) || defined(__i386__)
  if (cpu_has_avx2_fma()) return attention_detail::causal_attention_head_avx2(a);
#endif
  attention_detail::causal_attention_head_generic(a);
}

const char* attention_kernel_isa() { return cpu_has_avx2_fma() ? "avx2" : "generic"; }

}  // namespace fb

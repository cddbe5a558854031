// The AVX2+FMA copy of the attention kernel (flags set in models/CMakeLists.txt).
#include "models/attention_kernel.h"

namespace fb {
namespace {
#include "models/attention_kernel_impl.inc"
}  // namespace

namespace attention_detail {
#if defined(__x86_64__) || defined(__i386__)
void causal_attention_head_avx2(const AttentionHeadArgs& a) { causal_attention_head_impl(a); }
#else
void causal_attention_head_avx2(const AttentionHeadArgs& a) { causal_attention_head_generic(a); }
#endif
}  // namespace attention_detail

}  // namespace fb

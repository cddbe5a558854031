// The AVX2+FMA copy of the forward kernels (flags set in models/CMakeLists.txt; only
// called when the CPU reports AVX2 and FMA).
#include "models/forward_kernels.h"

namespace fb {
namespace {
#include "models/forward_kernels_impl.inc"
}  // namespace

namespace kernel_detail {
void causal_attention_head_avx2(const AttentionHeadArgs& a) { causal_attention_head_impl(a); }
void silu_multiply_avx2(float* gate, const float* up, long n) { silu_multiply_impl(gate, up, n); }
}  // namespace kernel_detail

}  // namespace fb

// The softmax of one attention row, p_i = exp((x_i − max)·scale) / Σ exp(…), as FlatQuant's
// calibration block computes it (methods/flatquant/block_ops.cpp attention_forward): the one
// place its fp32 training spends most of a step in scalar code, since the library is built for
// baseline x86-64. A reference and an AVX-512 kernel give bit-identical rows, so a calibration
// does not depend on which of them ran:
//   exp: x clamped to [−87.3, 0] (every argument here is ≤ 0), n = nearbyint(x·log₂e),
//        r = x − n·ln2 (two fmas, Cody–Waite split), a degree-6 polynomial in r by fmas
//        (Cephes' expf coefficients), times 2ⁿ built from the exponent bits;
//   sum: 16 partial sums, lane l adding elements l, l+16, … in order, then lanes 0…15 in order;
//   p_i = e_i / sum (correctly rounded division in both).
// Max error of exp against the double exp: 2 ulp on [−87.3, 0] (tests/kernels_softmax_test.cpp).
#pragma once

namespace fb {

void softmax_row_ref(float* x, long n, float scale);
void softmax_row(float* x, long n, float scale);  // the AVX-512 kernel where the CPU has it

float exp_nonpositive_ref(float x);  // the element formula above, for x ≤ 0
bool softmax_fast_path();

}  // namespace fb

// The AVX-512 softmax row of kernels/softmax.h, operation for operation the reference
// (built with -ffp-contract=off, so only the fmas written here are fused).
#include "kernels/avx512_lanes.h"
#include "kernels/softmax_detail.h"

#include <immintrin.h>

namespace fb::softmax_detail {
namespace {

using avx512::lane_mask;

__m512 exp_nonpositive(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpLo)), _mm512_setzero_ps());
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Hi), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kPoly[i]));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
}

}  // namespace

void softmax_row_avx512(float* x, long n, float scale) {
  if (n <= 0) return;
  __m512 vmax = _mm512_set1_ps(x[0]);
  for (long i = 0; i < n; i += kLanes) {  // masked load: a partial last chunk must not read past the row
    const __mmask16 m = lane_mask(n - i);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
  }
  alignas(64) float lanes[kLanes];
  _mm512_store_ps(lanes, vmax);
  float max = lanes[0];
  for (float l : lanes) max = l > max ? l : max;
  const __m512 vm = _mm512_set1_ps(max), vs = _mm512_set1_ps(scale);
  __m512 sum = _mm512_setzero_ps();
  for (long i = 0; i < n; i += kLanes) {
    const __mmask16 m = lane_mask(n - i);
    const __m512 e = exp_nonpositive(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), vs));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  _mm512_store_ps(lanes, sum);
  float total = 0;
  for (float l : lanes) total += l;
  const __m512 vt = _mm512_set1_ps(total);
  for (long i = 0; i < n; i += kLanes) {
    const __mmask16 m = lane_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), vt));
  }
}

}  // namespace fb::softmax_detail

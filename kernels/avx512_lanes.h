// Lane masks for AVX-512 loops over rows whose length is not a multiple of 16. Only for the
// files built with AVX-512 flags (kernels/*_avx512.cpp).
#pragma once

#include <immintrin.h>

namespace fb::avx512 {

// The first min(max(left, 0), 16) lanes.
inline __attribute__((always_inline)) __mmask16 lane_mask(long left) {
  return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}

}  // namespace fb::avx512

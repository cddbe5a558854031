// Helpers shared by the integer GEMM backends (kernels/gemm_backends_int.cpp,
// kernels/gemm_onednn.cpp, kernels/fused_quant_backends.cpp): operand quantization for the
// benchmark problems, not a quantization method (those live in kernels/quant.h).
#pragma once

#include <cstdint>
#include <vector>

namespace fb {

// Symmetric per-row quantization: scale = absmax / (2^(bits−1) − 1), codes round half to even.
struct SymmetricRows {
  std::vector<int8_t> codes;  // rows × cols
  std::vector<float> scales;  // one per row
};
SymmetricRows quantize_rows_symmetric(const std::vector<float>& X, long rows, long cols, int bits);
std::vector<float> dequantize_rows(const SymmetricRows& q, long rows, long cols);

// 0 → every core, else the count given.
int resolve_threads(int threads);

}  // namespace fb

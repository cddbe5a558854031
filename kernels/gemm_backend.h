// GEMM backends the `gemm` evaluator can time: one registration line per backend,
// a row of a traits table in the ggml manner.
//
// Every backend follows the CUTLASS profiler's phases: prepare (allocate and quantize
// operands for a shape, outside the timed region) → verify (compare with the fp32
// reference product on the same inputs, within the backend's tolerance) → run (the
// timed call). Operands come from one seeded generator so every backend of a job
// multiplies the same matrices.
#pragma once

#include "core/registry.h"
#include "kernels/gemm_dtype.h"

#include <functional>
#include <memory>
#include <string>

namespace fb {

struct GemmShape {
  long m = 0, n = 0, k = 0;  // C[M×N] = A[M×K] · B[N×K]ᵀ  (activations × weightsᵀ)
};

// One prepared problem: owns its operands; run() is what is timed.
class GemmProblem {
 public:
  virtual ~GemmProblem() = default;
  virtual void run() = 0;
  // Max |C − C_ref| / max |C_ref| against the fp32 product of the unquantized inputs
  // (quantized backends compare with the fp32 product of their dequantized operands).
  virtual double verify() = 0;
  virtual double tolerance() const { return 1e-4; }
};

struct GemmBackendInfo {
  std::string name;   // e.g. "openblas_fp32", "ours_s8", "onednn_s8"
  std::string dtype;  // a gemm_dtype:: spelling: its kGemmDtypes row holds its bits, math and report class
  std::string help;
  bool is_fp32_baseline = false;  // candidates for the "fastest fp32" ratio denominator
  std::function<bool()> available;  // e.g. needs AVX-512 VNNI; false → skipped with a note
  std::function<std::unique_ptr<GemmProblem>(const GemmShape&, uint64_t seed, int threads)> prepare;
};

#define FB_REGISTER_GEMM_BACKEND(...) FB_REGISTER_IN(::fb::GemmBackendInfo, __VA_ARGS__)

}  // namespace fb

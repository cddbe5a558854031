// The GEMM dtypes a backend records, one row each, in the manner of ggml's type_traits: every
// fact about a dtype (bits, math precision, the report's precision class) lives in its row, so
// a report looks it up instead of guessing from substrings of the name.
//
// Header-only and free of project dependencies: kernels/cuda (built standalone with only the
// CUDA toolkit, C++17) names its dtypes from this table too.
#pragma once

#include <string_view>

namespace fb {

struct GemmDtypeTraits {
  std::string_view name;          // as GemmBackendInfo::dtype and GemmRecord::dtype spell it
  int activation_bits;            // bits of one A (activation) element as the kernel reads it
  int weight_bits;                // bits of one stored B (weight) element; 0: the op has no weights
  std::string_view math;          // precision the multiply (or the op) runs in: fp32 | fp16 | fp8 | int8
  std::string_view accumulator;   // fp32 | int32 | "" (not a GEMM: nothing is accumulated)
  std::string_view report_class;  // the column Table 5 and the latency plot group it in
  bool is_gemm;                   // false: an activation quantize op timed beside the GEMMs
};

// Table 5's precision columns, in its order; report_class is one of these.
inline constexpr std::string_view kPrecisionClasses[] = {"fp32", "fp16",    "fp8",      "int8",
                                                         "int4", "flatten", "flatten_staggered", "transform"};

inline constexpr GemmDtypeTraits kGemmDtypes[] = {
    // name                      A   W   math    accumulator report class         GEMM
    {"fp32",                     32, 32, "fp32", "fp32",     "fp32",              true},
    {"fp16",                     16, 16, "fp16", "fp32",     "fp16",              true},   // cublasGemmEx
    {"fp8e4m3",                  8,  8,  "fp8",  "fp32",     "fp8",               true},   // cuBLASLt e4m3
    {"s8s8s32",                  8,  8,  "int8", "int32",    "int8",              true},
    {"s8s8_fp16out",             8,  8,  "int8", "int32",    "int8",              true},   // ours_s8 on the GPU
    {"w4a8",                     8,  4,  "int8", "int32",    "int4",              true},   // int4 weights widened to int8
    // FlattenQuant's gather + scale + per-tensor INT8 quantize of the activations (the paper's equal split)
    {"flatten_quant",            8,  0,  "fp32", "",         "flatten",           false},
    // the same with staggered copies (a flatbench extension, not Table 5's op)
    {"flatten_quant_staggered",  8,  0,  "fp32", "",         "flatten_staggered", false},
    // FlatQuant's Kronecker transform P1ᵀ·X·P2 + per-token INT8 quantize (CPU, GPU spelling)
    {"kron_quant",               8,  0,  "fp32", "",         "transform",         false},
    {"kron_quant_int8",          8,  0,  "fp32", "",         "transform",         false},
};

// The row of `name`, or nullptr: an unknown dtype is never guessed from its spelling.
constexpr const GemmDtypeTraits* find_gemm_dtype(std::string_view name) {
  for (const GemmDtypeTraits& d : kGemmDtypes)
    if (d.name == name) return &d;
  return nullptr;
}

// Whether `name` has a row. Compares names only: a pointer tested against null is not a
// constant expression under GCC's -fsanitize=address, which the test command builds with.
constexpr bool has_gemm_dtype(std::string_view name) {
  for (const GemmDtypeTraits& d : kGemmDtypes)
    if (d.name == name) return true;
  return false;
}

// The dtype spellings, for registration lines and the CUDA sweep: a typo is a compile error.
namespace gemm_dtype {
inline constexpr const char* kFp32 = "fp32";
inline constexpr const char* kFp16 = "fp16";
inline constexpr const char* kFp8E4M3 = "fp8e4m3";
inline constexpr const char* kS8S8S32 = "s8s8s32";
inline constexpr const char* kS8S8Fp16Out = "s8s8_fp16out";
inline constexpr const char* kW4A8 = "w4a8";
inline constexpr const char* kFlattenQuant = "flatten_quant";
inline constexpr const char* kFlattenQuantStaggered = "flatten_quant_staggered";
inline constexpr const char* kKronQuant = "kron_quant";
inline constexpr const char* kKronQuantInt8 = "kron_quant_int8";
}  // namespace gemm_dtype

// Every spelling above has its row (checked when this header compiles).
static_assert(has_gemm_dtype(gemm_dtype::kFp32) && has_gemm_dtype(gemm_dtype::kFp16) &&
              has_gemm_dtype(gemm_dtype::kFp8E4M3) && has_gemm_dtype(gemm_dtype::kS8S8S32) &&
              has_gemm_dtype(gemm_dtype::kS8S8Fp16Out) && has_gemm_dtype(gemm_dtype::kW4A8) &&
              has_gemm_dtype(gemm_dtype::kFlattenQuant) && has_gemm_dtype(gemm_dtype::kFlattenQuantStaggered) &&
              has_gemm_dtype(gemm_dtype::kKronQuant) && has_gemm_dtype(gemm_dtype::kKronQuantInt8),
              "a gemm_dtype spelling without a kGemmDtypes row");

}  // namespace fb

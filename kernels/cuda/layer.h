// Decoder-layer latency on the GPU (`flatbench-gpu layer`): one OPT-style pre-LN layer
// (LayerNorm → QKV → causal attention → out-proj → residual → LayerNorm → fc1 → ReLU →
// fc2 → residual) with synthetic weights, prefill of M tokens, in three variants:
//   fp16          cuBLAS fp16 linears
//   w8a8_flatten  FlattenQuant: flatten + per-tensor int8 quantize before every linear,
//                 our wgmma INT8 GEMM on the flattened K (per-channel weight scales)
//   w4a8_flatten  the same with int4 weights (our W4A8 GEMM)
// Attention (QKᵀ, causal softmax, PV) is the same fp16 cuBLAS path in all three, as the
// papers keep it (KV not quantized). Biases are omitted in all three.
#pragma once

#include "core/results.h"
#include "kernels/gemm_dtype.h"

#include <string>
#include <vector>

namespace fb::cuda {

struct LayerOptions {
  std::vector<long> tokens;
  int max_reps = 20;
  double budget_ms = 200;
  double flatten_ratio = 0.0625;
  uint64_t seed = 1;
};

// The layer's variants, one row each: the name its rows' backend carries ("layer_<name>") and the
// dtype of its linear layers' GEMMs (kernels/gemm_dtype.h). The first is the baseline of the ratios.
struct LayerVariant {
  const char* name;
  bool quantized;       // flatten + per-tensor quantized activations into the integer GEMMs
  bool int4_weights;    // W4A8 (int4 weights widened to int8) rather than W8A8
  const char* linear_dtype;
};
inline constexpr LayerVariant kLayerVariants[] = {
    {"fp16", false, false, gemm_dtype::kFp16},
    {"w8a8_flatten", true, false, gemm_dtype::kS8S8Fp16Out},
    {"w4a8_flatten", true, true, gemm_dtype::kW4A8},
};

// One GemmRecord per (variant, tokens): backend "layer_<variant>", m = tokens, n = hidden,
// k = MLP width, gops over the layer's matrix operations, ratio_to_fp32 = fp16 / this.
std::vector<GemmRecord> run_layer_sweep(const std::string& model, const LayerOptions& opt,
                                        const std::string& device_name, json& notes);

}  // namespace fb::cuda

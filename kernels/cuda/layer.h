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

// One GemmRecord per (variant, tokens): backend "layer_<variant>", m = tokens, n = hidden,
// k = MLP width, gops over the layer's matrix operations, ratio_to_fp32 = fp16 / this.
std::vector<GemmRecord> run_layer_sweep(const std::string& model, const LayerOptions& opt,
                                        const std::string& device_name, json& notes);

}  // namespace fb::cuda

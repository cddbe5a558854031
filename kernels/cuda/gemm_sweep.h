// The GPU GEMM-latency sweep behind `flatbench-gpu gemm`: for every (tokens, N, K) it
// times the library baselines and our kernels on the same random operands and returns
// one GemmRecord per (backend, shape), ratio_to_fp32 holding the ratio to cuBLAS fp16.
#pragma once

#include "core/results.h"

#include <string>
#include <utility>
#include <vector>

namespace fb::cuda {

struct SweepOptions {
  std::vector<long> tokens;
  std::vector<std::pair<long, long>> nk;  // unique (N, K)
  int max_reps = 50;
  double budget_ms = 150;
  bool flush_l2 = false;
  double flatten_ratio = 0.0625;  // synthetic flatten plan: K·(1 + ratio) channels, padded to 32
  uint64_t seed = 1;
};

// Backend names, in the order they are timed.
inline const char* const kSweepBackends[] = {"cublas_fp16",        "cublaslt_s8s8s32",
                                             "cublaslt_fp8e4m3",   "ours_s8",
                                             "ours_w4a8",          "ours_flatten_quant",
                                             "ours_flatten_quant_staggered", "ours_kron_quant"};

// Runs the sweep; `notes` collects skipped backends and plan descriptions.
std::vector<GemmRecord> run_gemm_sweep(const SweepOptions& opt, const std::string& device_name, json& notes);

// Tuning aid (`flatbench-gpu probe`): prints our GEMMs' median time for each shape
// (M, N, K) under the heuristic's plan and under forced tile widths and split counts.
void run_gemm_probe(const std::vector<std::vector<long>>& mnk, bool flush_l2, int max_reps);

}  // namespace fb::cuda

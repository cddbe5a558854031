// Synthetic models: the published OPT / LLaMA shapes with weights generated from a seed.
// They serve latency, memory and method-mechanics studies — never accuracy claims — and
// every model built here has cfg.synthetic = true.
#pragma once

#include "models/model.h"

#include <cstdint>
#include <string>
#include <vector>

namespace fb {

struct SyntheticOptions {
  int layers = 2;               // override of the layer count (0 = the published count)
  uint64_t seed = 0;
  int outlier_channels = 0;     // hidden channels made large at every norm output
  float outlier_scale = 30.f;   // their magnitude relative to the other channels
  int vocab = 0;                // 0 = the published vocabulary size
  int max_seq_len = 0;          // 0 = the published context
};

// Published shapes: opt-125m … opt-66b, llama-2-7b/13b/70b, llama-3-8b/70b, plus
// opt-tiny / llama-tiny (a few thousand parameters, for fast tests of methods).
std::vector<std::string> synthetic_arch_names();
ModelConfig synthetic_config(const std::string& arch);  // throws std::invalid_argument

// Weights drawn deterministically from the seed, scaled so activations stay O(1):
// W ~ N(0, 1/K) (residual-writing o/down/fc2 additionally by 1/√(2L)), norm gains 1,
// small biases for OPT. The outlier profile multiplies the same few channels of every
// attention/MLP norm gain by outlier_scale, as LLM.int8()/SmoothQuant report for OPT.
Model make_synthetic_model(ModelConfig cfg, const SyntheticOptions& opt);

// The channels that make_synthetic_model chose as outliers (sorted), for tests.
std::vector<int> synthetic_outlier_channels(int dim, const SyntheticOptions& opt);

}  // namespace fb

// KV-cache quantization (methods.md §2.6 / §3.1): K (after RoPE) and V are fake-quantized per
// token per kv head (group = head_dim), asymmetric by default, through Model::attention_hook.
// The hook is a callable struct so the memory evaluator can read its settings back with
// std::function::target<KvQuantHook>() (looking through PureAttentionHook chains).
#pragma once

#include "kernels/quant.h"
#include "models/model.h"

namespace fb {

struct KvQuantHook {
  QuantSpec spec;       // bits, sym, clip; granularity is per_group with group = head_dim
  AttentionHook inner;  // an impure hook installed before, run first (pure ones chain outside, see install_kv_quant)

  void operator()(int layer, Mat& q, Mat& k, Mat& v) const;
};

// A spec for KV quantization at `bits` (asymmetric unless sym), grouped per head.
QuantSpec kv_quant_spec(int bits, int head_dim, bool sym = false, float clip = 1.0f);

// Installs KV quantization on the model, chaining any hook already there. bits ≥ 16: no-op.
void install_kv_quant(Model& m, int bits, bool sym = false, float clip = 1.0f);

// The KV bits a model's attention hook applies (16 when it has no KvQuantHook).
int installed_kv_bits(const Model& m);

}  // namespace fb

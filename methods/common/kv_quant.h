// KV-cache quantization (docs/methods.md §2.6 / §3.1): K (after RoPE) and V are fake-quantized per
// token per kv head (group = head_dim), asymmetric by default, through Model::attention_hook.
// The hook is an AttentionOp, so the memory accounting reads what it caches (kv_footprint).
#pragma once

#include "kernels/quant.h"
#include "models/model.h"

namespace fb {

class KvQuantHook final : public AttentionOp {
 public:
  explicit KvQuantHook(QuantSpec spec) : spec_(spec) {}
  void apply(int layer, Mat& q, Mat& k, Mat& v) const override;
  // Codes at spec.bits plus a scale (and a zero point when asymmetric) per token per kv head.
  KvFootprint kv_footprint(const ModelConfig& cfg, const KvFootprint& before) const override;
  std::optional<AttentionPlan> plan(int layer) const override;
  const QuantSpec& spec() const { return spec_; }

 private:
  QuantSpec spec_;  // bits, sym, clip; granularity is per_group with group = head_dim
};

// A spec for KV quantization at `bits` (asymmetric unless sym), grouped per head.
QuantSpec kv_quant_spec(int bits, int head_dim, bool sym = false, float clip = 1.0f);

// Installs KV quantization on the model, chaining any hook already there. bits ≥ 16: no-op.
void install_kv_quant(Model& m, int bits, bool sym = false, float clip = 1.0f);

// The bits of the model's KV cache (16: floating point; the wider of K and V when they differ).
int installed_kv_bits(const Model& m);

}  // namespace fb

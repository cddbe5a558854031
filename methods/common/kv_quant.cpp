#include "methods/common/kv_quant.h"
#include "methods/common/quant_linear.h"

#include <algorithm>
#include <memory>

namespace fb {

void KvQuantHook::apply(int, Mat&, Mat& k, Mat& v) const {
  fake_quantize_dynamic(k, spec_);
  fake_quantize_dynamic(v, spec_);
}

std::optional<AttentionPlan> KvQuantHook::plan(int) const {
  const PlanQuant q = plan_quant_of(spec_);
  return AttentionPlan{{AttentionStep::Tensor::k, nullptr, q}, {AttentionStep::Tensor::v, nullptr, q}};
}

KvFootprint KvQuantHook::kv_footprint(const ModelConfig& cfg, const KvFootprint& before) const {
  KvFootprint f = before;
  f.k_bits = f.v_bits = spec_.bits;
  const long groups = long(cfg.n_layers) * cfg.n_kv_heads;  // per layer, per kv head
  f.k_scale_values = f.v_scale_values = groups * (spec_.sym ? 1 : 2);
  return f;
}

QuantSpec kv_quant_spec(int bits, int head_dim, bool sym, float clip) {
  QuantSpec s;
  s.bits = bits;
  s.sym = sym;
  s.granularity = Granularity::per_group;
  s.group = head_dim;
  s.clip = clip;
  s.validate();
  return s;
}

void install_kv_quant(Model& m, int bits, bool sym, float clip) {
  if (bits >= 16) return;
  // Fake quantization of the matrices it is given, nothing else: pure, so after a pure hook the
  // chain stays pure (PPL windows keep running in parallel); after any other hook it runs serially.
  AttentionOpHook kv{std::make_shared<KvQuantHook>(kv_quant_spec(bits, m.cfg.head_dim(), sym, clip))};
  m.attention_hook = chain_attention_hooks(std::move(m.attention_hook), std::move(kv), true);
}

int installed_kv_bits(const Model& m) {
  const KvFootprint kv = attention_kv_footprint(m.attention_hook, m.cfg);
  return std::max(kv.k_bits, kv.v_bits);
}

}  // namespace fb

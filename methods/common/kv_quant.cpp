#include "methods/common/kv_quant.h"

namespace fb {

void KvQuantHook::operator()(int layer, Mat& q, Mat& k, Mat& v) const {
  if (inner) inner(layer, q, k, v);
  fake_quantize_dynamic(k, spec);
  fake_quantize_dynamic(v, spec);
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
  KvQuantHook kv{kv_quant_spec(bits, m.cfg.head_dim(), sym, clip), {}};
  // Fake quantization of the matrices it is given, nothing else: pure, so after a pure hook the
  // chain stays pure (PPL windows keep running in parallel); after any other hook it chains inside.
  if (attention_hook_is_pure(m.attention_hook)) {
    m.attention_hook = chain_attention_hooks(std::move(m.attention_hook), std::move(kv), true);
  } else {
    kv.inner = std::move(m.attention_hook);
    m.attention_hook = std::move(kv);
  }
}

namespace {
const KvQuantHook* find_kv_hook(const AttentionHook& h) {
  if (auto* kv = h.target<KvQuantHook>()) return kv;
  if (auto* pure = h.target<PureAttentionHook>()) {
    if (const KvQuantHook* kv = find_kv_hook(pure->second)) return kv;
    return find_kv_hook(pure->first);
  }
  return nullptr;
}
}  // namespace

int installed_kv_bits(const Model& m) {
  const KvQuantHook* kv = m.attention_hook ? find_kv_hook(m.attention_hook) : nullptr;
  return kv ? kv->spec.bits : 16;
}

}  // namespace fb

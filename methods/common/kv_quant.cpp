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
  m.attention_hook = KvQuantHook{kv_quant_spec(bits, m.cfg.head_dim(), sym, clip), m.attention_hook};
}

int installed_kv_bits(const Model& m) {
  if (auto* h = m.attention_hook.target<KvQuantHook>()) return h->spec.bits;
  return 16;
}

}  // namespace fb

#include "methods/common/memory.h"

#include <algorithm>
#include <cmath>

namespace fb {

OpFootprint site_footprint(const LinearSite& s) {
  if (s.op) return s.op->footprint();
  OpFootprint f;
  f.weight_values = s.W.size();
  f.extra_float_values = s.b.size();
  f.a_width = s.in_features();
  return f;
}

double footprint_weight_bytes(const OpFootprint& f, double float_bytes) {
  if (f.w_bits >= 16) return double(f.weight_values) * float_bytes;
  if (f.packed_bytes >= 0) return double(f.packed_bytes);
  return std::ceil(double(f.weight_values) * f.w_bits / 8.0);
}

namespace {

double norm_values(const Norm& n) { return double(n.gamma.size() + n.beta.size()); }

// Parameters that no method quantizes: embeddings, learned positions, norms, classifier.
double other_weight_values(const Model& m) {
  double v = double(m.tok_embedding.size() + m.pos_embedding.size() + m.classifier.size());
  v += norm_values(m.final_norm);
  for (const Block& b : m.blocks) v += norm_values(b.attn_norm) + norm_values(b.mlp_norm);
  return v;
}

}  // namespace

double kv_bytes_per_token(const ModelConfig& c, const KvFootprint& kv, double float_bytes) {
  const double values = double(c.n_layers) * c.n_kv_heads * c.head_dim();  // of K, and of V
  auto code_bytes = [&](int bits) { return bits >= 16 ? values * float_bytes : values * bits / 8.0; };
  return code_bytes(kv.k_bits) + code_bytes(kv.v_bits) + double(kv.k_scale_values + kv.v_scale_values) * float_bytes;
}

MemoryReport memory_report(const Model& m, const MemoryOptions& opt) {
  MemoryReport r;
  const double tokens = double(opt.batch) * double(opt.seqlen);
  double peak_activation = 0;
  for (const LinearSite* s : m.sites()) {
    OpFootprint f = site_footprint(*s);
    r.linear_weight_bytes += footprint_weight_bytes(f, opt.float_bytes);
    r.scale_bytes += double(f.scale_values + f.extra_float_values) * opt.float_bytes;
    // The input of a linear is the activation a quantized deployment materialises: codes plus
    // one scale per token when quantized, floating point otherwise.
    double per_token = f.a_bits >= 16 ? f.a_width * opt.float_bytes
                                      : std::ceil(f.a_width * f.a_bits / 8.0) + opt.float_bytes;
    peak_activation = std::max(peak_activation, per_token * tokens);
  }
  r.other_weight_bytes = other_weight_values(m) * opt.float_bytes;
  r.activation_bytes = peak_activation;

  const KvFootprint kv = attention_kv_footprint(m.attention_hook, m.cfg);
  r.scale_bytes += double(kv.parameter_values) * opt.float_bytes;
  r.kv_cache_bytes = tokens * kv_bytes_per_token(m.cfg, kv, opt.float_bytes);
  return r;
}

}  // namespace fb

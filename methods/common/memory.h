// Memory accounting (FlattenQuant Table 6 terms): weights as stored (packed codes or floating
// point), their scales, activations at batch × seqlen, and the KV cache.
//
// Every linear operator reports what it stores (LinearOp::footprint) and every deployed attention
// hook what it leaves in the KV cache (AttentionOp::kv_footprint, models/model.h); a site without
// an operator counts as floating-point weights, a model without such hooks as a floating-point cache.
// Floating-point tensors are counted at `float_bytes` each (2: the fp16 deployment the papers
// compare against), quantized codes at their bit width.
#pragma once

#include "models/model.h"

#include <string>
#include <vector>

namespace fb {

struct MemoryOptions {
  long batch = 1;
  long seqlen = 2048;
  double float_bytes = 2;  // bytes per floating-point value (fp16 deployment)
};

struct MemoryReport {
  double linear_weight_bytes = 0;  // quantized or fp weights of the linear sites, as stored
  double scale_bytes = 0;          // scales / zero points / extra per-operator and attention-hook parameters
  double other_weight_bytes = 0;   // embeddings, positions, norms, classifier (never quantized)
  double activation_bytes = 0;     // largest linear input at batch × seqlen, at its stored width (+ per-token scales)
  double kv_cache_bytes = 0;       // K and V of every layer at batch × seqlen (+ their cached scales when quantized)
  double total() const { return linear_weight_bytes + scale_bytes + other_weight_bytes + activation_bytes + kv_cache_bytes; }
};

// The footprint of a site: its operator's report, or fp weights (+ bias) when it has none.
OpFootprint site_footprint(const LinearSite& s);
double footprint_weight_bytes(const OpFootprint& f, double float_bytes);

// Bytes of K and V (and their cached scales) one token adds to the cache of every layer.
double kv_bytes_per_token(const ModelConfig& c, const KvFootprint& kv, double float_bytes);

// The KV cache is the one the model's attention hook leaves (attention_kv_footprint).
MemoryReport memory_report(const Model& m, const MemoryOptions& opt);

}  // namespace fb

// Memory accounting (FlattenQuant Table 6 terms): weights as stored (packed codes or floating
// point), their scales, activations at batch × seqlen, and the KV cache.
//
// Operators that quantize a site implement ReportsFootprint so the accounting sees what they
// store; a site whose operator does not (or that has none) counts as floating-point weights.
// Floating-point tensors are counted at `float_bytes` each (2: the fp16 deployment the papers
// compare against), quantized codes at their bit width.
#pragma once

#include "models/model.h"

#include <string>
#include <vector>

namespace fb {

// What one quantized operator stores and consumes.
struct OpFootprint {
  long weight_values = 0;       // weight elements held (after any flatten/padding)
  int w_bits = 16;              // bits per stored weight value; 16 = floating point
  long packed_bytes = -1;       // exact bytes of the codes when the operator holds them packed; -1 = compute from bits
  long scale_values = 0;        // floating-point scales and zero points of weights (and static activation scales)
  long extra_float_values = 0;  // other floating-point parameters the operator keeps (bias, transforms, ...)
  int a_bits = 16;              // bits of the input activations it consumes
  int a_width = 0;              // input channels it consumes (K, or the flattened K)
};

class ReportsFootprint {
 public:
  virtual ~ReportsFootprint() = default;
  virtual OpFootprint footprint() const = 0;
};

struct MemoryOptions {
  long batch = 1;
  long seqlen = 2048;
  double float_bytes = 2;  // bytes per floating-point value (fp16 deployment)
  int kv_bits = 16;        // 16 = KV cache in floating point
};

struct MemoryReport {
  double linear_weight_bytes = 0;  // quantized or fp weights of the linear sites, as stored
  double scale_bytes = 0;          // scales / zero points / extra per-operator parameters
  double other_weight_bytes = 0;   // embeddings, positions, norms, classifier (never quantized)
  double activation_bytes = 0;     // largest linear input at batch × seqlen, at its stored width (+ per-token scales)
  double kv_cache_bytes = 0;       // K and V of every layer at batch × seqlen (+ per-head scales when quantized)
  double total() const { return linear_weight_bytes + scale_bytes + other_weight_bytes + activation_bytes + kv_cache_bytes; }
};

// The footprint of a site: its operator's report, or fp weights (+ bias) when it has none.
OpFootprint site_footprint(const LinearSite& s);
double footprint_weight_bytes(const OpFootprint& f, double float_bytes);

MemoryReport memory_report(const Model& m, const MemoryOptions& opt);

}  // namespace fb

// memory: the memory terms of the prepared model (FlattenQuant Table 6) — linear weights as
// stored (packed codes or floating point), scales, other parameters, the largest linear input
// at batch × seqlen, and the KV cache — in bytes. Floating-point tensors count float_bytes each.
#include "harness/evaluator.h"
#include "methods/common/memory.h"

#include <stdexcept>

namespace fb {
namespace {

void run_memory(EvalContext& ctx, JobResult& result) {
  if (!ctx.model) throw std::logic_error("memory evaluator needs a model");
  MemoryOptions opt;
  opt.batch = param_int(ctx.params, "batch");
  opt.seqlen = param_int(ctx.params, "seqlen");
  opt.float_bytes = param_float(ctx.params, "float_bytes");
  if (opt.batch <= 0 || opt.seqlen <= 0 || opt.float_bytes <= 0)
    throw std::invalid_argument("memory evaluator: batch, seqlen and float_bytes must be positive");
  MemoryReport r = memory_report(*ctx.model, opt);
  result.add("mem_linear_weights", r.linear_weight_bytes, "bytes");
  result.add("mem_scales", r.scale_bytes, "bytes");
  result.add("mem_other_weights", r.other_weight_bytes, "bytes");
  result.add("mem_activations", r.activation_bytes, "bytes");
  result.add("mem_kv_cache", r.kv_cache_bytes, "bytes");
  result.add("mem_total", r.total(), "bytes");
  const KvFootprint kv = attention_kv_footprint(ctx.model->attention_hook, ctx.model->cfg);
  result.info["memory_k_bits"] = kv.k_bits;
  result.info["memory_v_bits"] = kv.v_bits;
}

}  // namespace

FB_REGISTER_EVALUATOR(EvaluatorInfo{
    "memory",
    "memory terms of the prepared model in bytes: weights as stored, scales, activations and KV cache at batch × seqlen",
    {{"batch", ParamType::Int, 1, "sequences held at once", {}, {}, at_least(1)},
     {"seqlen", ParamType::Int, 2048, "tokens per sequence", {}, {}, at_least(1)},
     {"float_bytes", ParamType::Float, 2.0, "bytes per floating-point value (2: fp16 deployment)", {}, {}, between(0.125, 8)}},
    true,
    run_memory});

}  // namespace fb

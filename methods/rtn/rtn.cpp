// rtn: round-to-nearest weights and/or activations at any granularity (docs/methods.md §3.1), with
// GPTQ as an alternative weight quantizer and optional KV-cache quantization.
#include "methods/common/recipe.h"
#include "methods/method.h"

namespace fb {
namespace {

void apply_rtn(Model& m, MethodContext& ctx, JobResult& result) {
  apply_recipe(m, ctx, recipe_from_params(ctx.params, ctx.seed), result);
}

}  // namespace

FB_REGISTER_METHOD(MethodInfo{"rtn", "round-to-nearest WxAy (per-channel/tensor/group weights, per-token/tensor activations), "
                                     "optional GPTQ weights and KV-cache quantization",
                              quant_param_schema(), apply_rtn});

}  // namespace fb

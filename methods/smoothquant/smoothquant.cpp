// smoothquant: SmoothQuant (Xiao et al., ICML 2023; docs/methods.md §3.2). Migrates activation
// outliers into the weights with per-channel scales s = m^α / w^(1−α) folded into the norm
// before q/k/v and gate/up (OPT: fc1), then quantizes like rtn. Levels: o1 = per-token dynamic,
// o2 = per-tensor dynamic, o3 = per-tensor static activations; weights per-tensor by default.
#include "methods/common/recipe.h"
#include "methods/common/smoothing.h"
#include "methods/method.h"

#include <map>

namespace fb {
namespace {

ParamSchema smoothquant_schema() {
  ParamSchema schema;
  for (ParamSpec spec : quant_param_schema()) {
    if (spec.name == "a_granularity" || spec.name == "a_static") continue;  // set by `level`
    if (spec.name == "w_bits" || spec.name == "a_bits") spec.default_value = 8;
    if (spec.name == "w_granularity") spec.default_value = "per_tensor";
    schema.push_back(std::move(spec));
  }
  schema.push_back({"alpha", ParamType::Float, 0.5, "migration strength α (0.5 OPT, 0.85 LLaMA-2 in the paper's scripts)", {}, {}, between(0, 1)});
  schema.push_back({"level", ParamType::String, "o1",
                    "activation quantization: o1 per-token dynamic, o2 per-tensor dynamic, o3 per-tensor static",
                    {"o1", "o2", "o3"}});
  return schema;
}

QuantRecipe smoothquant_recipe(const json& params, uint64_t seed) {
  json p = params;
  const std::string level = param_string(params, "level");
  p["a_granularity"] = level == "o1" ? "per_token" : "per_tensor";
  p["a_static"] = level == "o3";
  return recipe_from_params(p, seed);
}

void apply_smoothquant(Model& m, MethodContext& ctx, JobResult& result) {
  const QuantRecipe r = smoothquant_recipe(ctx.params, ctx.seed);
  const float alpha = float(param_float(ctx.params, "alpha"));
  auto windows = calibration_windows(m, ctx.tokenizer, ctx.data_dir, r.calib);
  CollectOptions opt;
  opt.max_rows = r.calib.max_rows;
  SiteStatsMap stats = collect_site_stats(m, windows, opt, &ctx.progress);
  std::vector<SmoothResult> smoothed = smooth_model(m, stats, alpha);

  const size_t first_site = result.sites.size();
  apply_recipe(m, ctx, r, result, std::move(stats), std::move(windows));

  std::map<std::pair<int, std::string>, float> max_scale;  // (layer, role) → max s_k, for the site records
  for (const SmoothResult& s : smoothed)
    for (Role role : s.group.roles) max_scale[{s.group.layer, role_name(role)}] = s.scales.maxCoeff();
  for (size_t i = first_site; i < result.sites.size(); ++i) {
    auto it = max_scale.find({result.sites[i].layer, result.sites[i].role});
    if (it != max_scale.end()) result.sites[i].extra["smooth_max_scale"] = it->second;
  }
  result.info["alpha"] = alpha;
  result.info["level"] = param_string(ctx.params, "level");
}

}  // namespace

FB_REGISTER_METHOD(MethodInfo{"smoothquant", "SmoothQuant: α-migration folded into the norms, then W/A quantization (levels o1/o2/o3)",
                              smoothquant_schema(), apply_smoothquant});

}  // namespace fb

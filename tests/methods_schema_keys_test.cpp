// Guards the job keys of flattenquant: a job key holds every parameter with its default, so a
// refactor of the schema (it builds on quant_param_schema) must keep each parameter's name,
// type, default, choices, role and range exactly as they were.
#include "core/params.h"
#include "core/registry.h"
#include "harness/store.h"
#include "harness/runner.h"
#include "methods/method.h"
#include "reports/nightly.h"

#include <gtest/gtest.h>

#include <set>

namespace fb {
namespace {

// Everything of a parameter that reaches a job key or the config checks, keyed by name.
json schema_as_json(const ParamSchema& schema) {
  json out = json::object();
  for (const ParamSpec& s : schema)
    out[s.name] = {{"type", param_type_name(s.type)}, {"default", s.default_value}, {"choices", s.choices},
                   {"role", int(s.role)},             {"range", s.range.describe()}};
  return out;
}

const ParamSchema& method_schema(const std::string& name) {
  const MethodInfo* info = Registry<MethodInfo>::instance().find(name);
  if (!info) throw std::runtime_error("method not registered: " + name);
  return info->params;
}

const char* kFlattenQuantSchema = R"json(
{
  "a_dynamic": {"choices": [], "default": false, "range": "", "role": 0, "type": "boolean"},
  "alpha": {"choices": [], "default": 0.5, "range": "0..1", "role": 0, "type": "number"},
  "beta": {"choices": [], "default": 0.5, "range": "≥ 0", "role": 0, "type": "number"},
  "beta_ref": {"choices": ["max", "median"], "default": "max", "range": "", "role": 0, "type": "string"},
  "bits_mode": {"choices": ["kl", "int8", "int4", "none"], "default": "kl", "range": "", "role": 0, "type": "string"},
  "calib_dataset": {"choices": [], "default": "wikitext2-valid", "range": "", "role": 2, "type": "string"},
  "calib_rows": {"choices": [], "default": 1024, "range": "≥ 1", "role": 0, "type": "integer"},
  "calib_samples": {"choices": [], "default": 32, "range": "≥ 1", "role": 0, "type": "integer"},
  "calib_seqlen": {"choices": [], "default": 256, "range": "≥ 2", "role": 0, "type": "integer"},
  "check_windows": {"choices": [], "default": 2, "range": "≥ 0", "role": 0, "type": "integer"},
  "gamma": {"choices": [], "default": 0.05, "range": "", "role": 0, "type": "number"},
  "gptq_act_order": {"choices": [], "default": false, "range": "", "role": 0, "type": "boolean"},
  "gptq_block": {"choices": [], "default": 128, "range": "≥ 1", "role": 0, "type": "integer"},
  "gptq_damp": {"choices": [], "default": 0.01, "range": "0..1", "role": 0, "type": "number"},
  "kl_bins": {"choices": [], "default": 2048, "range": "≥ 16", "role": 0, "type": "integer"},
  "kl_mode": {"choices": ["abs", "signed", "input_weight", "output"], "default": "abs", "range": "", "role": 0, "type": "string"},
  "kv_bits": {"choices": [], "default": 16, "range": "2..8 or 16", "role": 0, "type": "integer"},
  "pad_to": {"choices": [], "default": 32, "range": "≥ 1", "role": 0, "type": "integer"},
  "percentile": {"choices": [], "default": 99.99, "range": "50..100", "role": 0, "type": "number"},
  "real_quant": {"choices": [], "default": false, "range": "", "role": 0, "type": "boolean"},
  "smooth": {"choices": [], "default": true, "range": "", "role": 0, "type": "boolean"},
  "smooth_sites": {"choices": ["norms", "all"], "default": "norms", "range": "", "role": 0, "type": "string"},
  "split": {"choices": ["equal", "staggered"], "default": "equal", "range": "", "role": 0, "type": "string"},
  "stat": {"choices": ["max", "percentile", "seq_mean_max"], "default": "percentile", "range": "", "role": 0, "type": "string"},
  "suppress": {"choices": [], "default": true, "range": "", "role": 0, "type": "boolean"},
  "w_granularity": {"choices": ["per_tensor", "per_channel"], "default": "per_tensor", "range": "", "role": 0, "type": "string"},
  "w_mse": {"choices": [], "default": false, "range": "", "role": 0, "type": "boolean"},
  "w_quantizer": {"choices": ["rtn", "gptq"], "default": "gptq", "range": "", "role": 0, "type": "string"}
}
)json";

const char* kFlattenQuantDefaults = R"json(
{
  "a_dynamic": false, "alpha": 0.5, "beta": 0.5, "beta_ref": "max", "bits_mode": "kl",
  "calib_dataset": "wikitext2-valid", "calib_rows": 1024, "calib_samples": 32, "calib_seqlen": 256,
  "check_windows": 2, "gamma": 0.05, "gptq_act_order": false, "gptq_block": 128, "gptq_damp": 0.01,
  "kl_bins": 2048, "kl_mode": "abs", "kv_bits": 16, "pad_to": 32, "percentile": 99.99, "real_quant": false,
  "smooth": true, "smooth_sites": "norms", "split": "equal", "stat": "percentile", "suppress": true,
  "w_granularity": "per_tensor", "w_mse": false, "w_quantizer": "gptq"
}
)json";

TEST(MethodSchemaKeys, FlattenQuantSchemaIsUnchanged) {
  EXPECT_EQ(schema_as_json(method_schema("flattenquant")).dump(1), json::parse(kFlattenQuantSchema).dump(1));
}

TEST(MethodSchemaKeys, FlattenQuantFilledDefaultsAreUnchanged) {
  EXPECT_EQ(fill_defaults(method_schema("flattenquant"), json::object()).dump(1),
            json::parse(kFlattenQuantDefaults).dump(1));
}

TEST(MethodSchemaKeys, FlattenQuantParametersAreUnique) {
  std::set<std::string> names;
  for (const ParamSpec& s : method_schema("flattenquant")) EXPECT_TRUE(names.insert(s.name).second) << s.name;
}

TEST(DefaultDbPath, EveryCommandDefaultsToTheOneConstant) {
  EXPECT_EQ(RunOptions{}.db_path, std::filesystem::path(kDefaultDbPath));
  EXPECT_EQ(NightlyOptions{}.db, std::filesystem::path(kDefaultDbPath));
}

}  // namespace
}  // namespace fb

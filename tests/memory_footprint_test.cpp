// The memory evaluator on every registered method: weight bytes and KV-cache bytes must be
// what the method's bit settings imply, so no operator or attention hook can be counted at
// full precision by forgetting to report its footprint.
#include "core/registry.h"
#include "methods/common/kv_quant.h"
#include "method_test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

namespace fb {
namespace {

// A low-bit setting of each method, cheap enough for a tiny model, and the KV-cache bits and
// grid it implies (k_bits, v_bits; 16: floating point).
struct LowBitSetting {
  json params;
  int k_bits = 16, v_bits = 16;
  bool kv_asym = true;
};

std::map<std::string, LowBitSetting> low_bit_settings() {
  const json calib = {{"calib_samples", 2}, {"calib_seqlen", 32}};
  json rtn = {{"w_bits", 4}, {"a_bits", 8}, {"kv_bits", 4}};
  json smoothquant = {{"w_bits", 8}, {"a_bits", 8}, {"kv_bits", 8}};
  json flattenquant = {{"bits_mode", "int4"}, {"kv_bits", 4}, {"check_windows", 0}, {"w_quantizer", "rtn"}};
  for (json* j : {&rtn, &smoothquant, &flattenquant}) j->update(calib);
  json flatquant = {{"w_bits", 4}, {"a_bits", 4}, {"k_bits", 4}, {"v_bits", 8}, {"epochs", 0},
                    {"nsamples", 2},  {"seqlen", 32}, {"cali_bsz", 1}};
  return {{"fp16", {json::object(), 16, 16}},
          {"rtn", {rtn, 4, 4}},
          {"smoothquant", {smoothquant, 8, 8}},
          {"flattenquant", {flattenquant, 4, 4}},
          {"flatquant", {flatquant, 4, 8}}};
}

// Weight codes at the bits each site was quantized to (its SiteRecord), over its stored
// input width (FlattenQuant's flattened and padded k_pad); sites without a record stay fp16.
double expected_weight_bytes(Model& m, const JobResult& r, double float_bytes) {
  std::map<std::pair<int, std::string>, const SiteRecord*> records;
  for (const SiteRecord& rec : r.sites) records[{rec.layer, rec.role}] = &rec;
  double bytes = 0;
  for (LinearSite* s : m.sites()) {
    auto it = records.find({s->id.layer, role_name(s->id.role)});
    const int bits = it == records.end() ? 16 : it->second->w_bits;
    const double k = it == records.end() ? s->in_features() : it->second->k_pad;
    bytes += bits >= 16 ? s->out_features() * k * float_bytes : s->out_features() * k * bits / 8.0;
  }
  return bytes;
}

// K and V of every layer at `tokens`: codes at their bits plus a scale and zero point per
// token per kv head for each quantized one (asymmetric grids).
double expected_kv_bytes(const ModelConfig& c, const LowBitSetting& s, double tokens, double float_bytes) {
  const double values = double(c.n_layers) * c.n_kv_heads * c.head_dim();
  const double groups = double(c.n_layers) * c.n_kv_heads;
  auto one = [&](int bits) {
    return bits >= 16 ? values * float_bytes : values * bits / 8.0 + groups * (s.kv_asym ? 2 : 1) * float_bytes;
  };
  return tokens * (one(s.k_bits) + one(s.v_bits));
}

TEST(MemoryFootprint, EveryRegisteredMethodCountsItsBits) {
  const auto settings = low_bit_settings();
  const std::vector<std::string> names = Registry<MethodInfo>::instance().names();
  ASSERT_FALSE(names.empty());
  const long batch = 2, seqlen = 64;
  const double float_bytes = 2;
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    auto it = settings.find(name);
    ASSERT_NE(it, settings.end()) << "a registered method without a low-bit setting in this test: add one";
    Model m = test::tiny_synthetic("llama-tiny", 7);
    const JobResult applied = test::run_method(name, m, nullptr, it->second.params);
    const JobResult mem = test::run_evaluator(
        "memory", m, nullptr, {{"batch", batch}, {"seqlen", seqlen}, {"float_bytes", float_bytes}});

    const double weights = expected_weight_bytes(m, applied, float_bytes);
    EXPECT_DOUBLE_EQ(test::metric(mem, "mem_linear_weights"), weights);
    EXPECT_DOUBLE_EQ(test::metric(mem, "mem_kv_cache"),
                     expected_kv_bytes(m.cfg, it->second, double(batch) * seqlen, float_bytes));
    EXPECT_EQ(mem.info["memory_k_bits"].get<int>(), it->second.k_bits);
    EXPECT_EQ(mem.info["memory_v_bits"].get<int>(), it->second.v_bits);
    if (name == "flatquant") {
      // The online Kronecker and per-head transforms are parameters the deployment stores.
      EXPECT_GE(test::metric(mem, "mem_scales"), test::metric(applied, "transform_params") * float_bytes);
    }
    if (name != "fp16") {
      Model fp = test::tiny_synthetic("llama-tiny", 7);
      EXPECT_LT(weights, expected_weight_bytes(fp, JobResult{}, float_bytes) / 1.5) << "low-bit weights must be smaller";
    }
  }
}

// A hook chained after a stateful one (which keeps forwards serial) is still accounted for.
TEST(MemoryFootprint, KvQuantAfterAnImpureHookIsCounted) {
  Model m = test::tiny_synthetic("llama-tiny", 3);
  m.attention_hook = [](int, Mat&, Mat&, Mat&) {};
  install_kv_quant(m, 4, /*sym=*/true);
  const KvFootprint kv = attention_kv_footprint(m.attention_hook, m.cfg);
  EXPECT_EQ(kv.k_bits, 4);
  EXPECT_EQ(kv.v_bits, 4);
  EXPECT_EQ(kv.k_scale_values, long(m.cfg.n_layers) * m.cfg.n_kv_heads);  // symmetric: scales only
  EXPECT_EQ(kv.v_scale_values, kv.k_scale_values);
}

}  // namespace
}  // namespace fb

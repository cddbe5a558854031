// The fp16 / rtn / smoothquant methods end to end through their registrations, the memory
// evaluator, and (with the real data) KV-cache quantization on stories260K perplexity.
#include "methods/common/memory.h"
#include "models/synthetic.h"
#include "method_test_util.h"

#include <gtest/gtest.h>

namespace fb {
namespace {

Model tiny(const std::string& arch, int outliers = 0) { return test::tiny_synthetic(arch, 11, outliers); }

const std::vector<int> kTokens = {5, 17, 99, 3, 250, 42, 42, 7, 128, 64, 1, 200};

double rel_diff(const Mat& a, const Mat& b) { return (a - b).cwiseAbs().maxCoeff() / a.cwiseAbs().maxCoeff(); }

json small_calib() { return {{"calib_samples", 4}, {"calib_seqlen", 32}}; }

json with(json a, const json& b) {
  a.update(b);
  return a;
}

TEST(MethodBaselines, Fp16ChangesNothingAndRecordsSites) {
  Model m = tiny("llama-tiny");
  const Mat ref = m.forward(kTokens);
  JobResult r = test::run_method("fp16", m, nullptr, json::object());
  EXPECT_EQ(rel_diff(ref, m.forward(kTokens)), 0.0);
  ASSERT_EQ(r.sites.size(), m.sites().size());
  EXPECT_EQ(r.sites[0].w_bits, 16);
  EXPECT_EQ(r.sites[0].flops, 2.0 * 64 * 64);
}

TEST(MethodBaselines, RtnErrorShrinksWithBits) {
  Model base = tiny("llama-tiny");
  const Mat ref = base.forward(kTokens);
  double prev = 0;
  for (int bits : {8, 6, 4, 3}) {
    Model m = base;
    JobResult r = test::run_method("rtn", m, nullptr, with(small_calib(), {{"w_bits", bits}, {"a_bits", bits}}));
    double err = rel_diff(ref, m.forward(kTokens));
    EXPECT_GT(err, prev) << bits;  // fewer bits, larger error
    EXPECT_LT(err, bits == 8 ? 0.02 : 1.0);
    prev = err;
    ASSERT_EQ(r.sites.size(), m.sites().size());
    for (const SiteRecord& s : r.sites) {
      EXPECT_EQ(s.w_bits, bits);
      EXPECT_EQ(s.a_bits, bits);
      EXPECT_GT(s.mse, 0);
    }
  }
}

TEST(MethodBaselines, RealQuantModelMatchesFakeQuantModel) {
  for (const char* arch : {"llama-tiny", "opt-tiny"})
    for (int bits : {8, 4}) {
      Model fake = tiny(arch), real = tiny(arch);
      json p = with(small_calib(), {{"w_bits", bits}, {"a_bits", 8}});
      test::run_method("rtn", fake, nullptr, p);
      JobResult rr = test::run_method("rtn", real, nullptr, with(p, {{"real_quant", true}}));
      EXPECT_NE(rr.sites[0].extra["op"].get<std::string>().find("real-quant"), std::string::npos);
      Mat a = fake.forward(kTokens), b = real.forward(kTokens);
      // Codes agree; only the epilogue's float rounding differs (amplified a little by later layers).
      EXPECT_LE(rel_diff(a, b), 1e-4) << arch << " W" << bits;
    }
}

TEST(MethodBaselines, SmoothQuantHelpsWithOutlierChannels) {
  // Per-tensor static W8A8 (SmoothQuant O3) on a model with outlier channels: migrating the
  // outliers into the weights must cut the error of plain RTN at the same setting.
  Model base = tiny("opt-tiny", 3);
  const Mat ref = base.forward(kTokens);
  json p = with(small_calib(), {{"w_bits", 8}, {"a_bits", 8}, {"w_granularity", "per_tensor"}});
  Model plain = base, smooth = base;
  test::run_method("rtn", plain, nullptr, with(p, {{"a_granularity", "per_tensor"}, {"a_static", true}}));
  JobResult r = test::run_method("smoothquant", smooth, nullptr, with(p, {{"level", "o3"}, {"alpha", 0.5}}));
  const double e_plain = rel_diff(ref, plain.forward(kTokens)), e_smooth = rel_diff(ref, smooth.forward(kTokens));
  EXPECT_LT(e_smooth, 0.5 * e_plain) << "plain " << e_plain << " smooth " << e_smooth;
  EXPECT_GT(r.sites[0].a_scale, 0);  // static per-tensor scale recorded
  EXPECT_TRUE(r.sites[0].extra.contains("smooth_max_scale"));
  EXPECT_FALSE(r.sites[3].extra.contains("smooth_max_scale"));  // o_proj is not smoothed
  EXPECT_EQ(r.info["level"], "o3");
}

TEST(MethodBaselines, GptqWeightQuantizerLowersSiteError) {
  Model rtn = tiny("llama-tiny"), gptq = tiny("llama-tiny");
  json p = with(small_calib(), {{"w_bits", 3}, {"a_bits", 16}});
  JobResult a = test::run_method("rtn", rtn, nullptr, p);
  JobResult b = test::run_method("rtn", gptq, nullptr, with(p, {{"w_quantizer", "gptq"}, {"gptq_block", 16}}));
  EXPECT_EQ(b.sites[0].extra["w_quantizer"], "gptq");
  EXPECT_LT(test::metric(b, "mean_site_mse"), test::metric(a, "mean_site_mse"));
}

TEST(MethodBaselines, BadParameterCombinationsAreRejected) {
  Model m = tiny("llama-tiny");
  EXPECT_THROW(test::run_method("rtn", m, nullptr, {{"a_bits", 8}, {"a_static", true}}), std::invalid_argument);
  EXPECT_THROW(test::run_method("rtn", m, nullptr, {{"w_bits", 1}}), std::invalid_argument);
  EXPECT_THROW(test::run_method("rtn", m, nullptr, {{"w_bits", 16}, {"real_quant", true}}), std::invalid_argument);
}

TEST(MethodBaselines, MemoryEvaluatorCountsPackedWeightsAndKv) {
  Model fp = tiny("llama-tiny"), q = tiny("llama-tiny");
  test::run_method("fp16", fp, nullptr, json::object());
  test::run_method("rtn", q, nullptr, with(small_calib(), {{"w_bits", 4}, {"a_bits", 8}, {"kv_bits", 4}, {"real_quant", true}}));
  json mp = {{"batch", 2}, {"seqlen", 100}};
  JobResult a = test::run_evaluator("memory", fp, nullptr, mp), b = test::run_evaluator("memory", q, nullptr, mp);

  long linear_params = 0, rows = 0;
  for (const LinearSite* s : fp.sites()) linear_params += s->W.size(), rows += s->out_features();
  EXPECT_EQ(test::metric(a, "mem_linear_weights"), 2.0 * linear_params);  // fp16
  EXPECT_EQ(test::metric(b, "mem_linear_weights"), 0.5 * linear_params);  // int4 packed (even K)
  EXPECT_EQ(test::metric(b, "mem_scales"), 2.0 * rows);                   // one fp16 scale per row
  EXPECT_EQ(test::metric(a, "mem_other_weights"), test::metric(b, "mem_other_weights"));
  const ModelConfig& c = fp.cfg;
  const double kv_values = 2.0 * 2 * 100 * c.n_layers * c.n_kv_heads * c.head_dim();
  EXPECT_EQ(test::metric(a, "mem_kv_cache"), kv_values * 2);
  EXPECT_EQ(test::metric(b, "mem_kv_cache"), kv_values / 2 + 2.0 * 2 * 100 * c.n_layers * c.n_kv_heads * 2 * 2);
  // Largest linear input: SwiGLU hidden (176) per token, fp16 vs int8 codes + one fp16 scale.
  EXPECT_EQ(test::metric(a, "mem_activations"), 200.0 * c.hidden_dim * 2);
  EXPECT_EQ(test::metric(b, "mem_activations"), 200.0 * (c.hidden_dim + 2));
}

TEST(MethodBaselines, Kv8KeepsStories260KPerplexity) {
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  FB_REQUIRE_DATA("wikitext2/wiki.test.raw");
  LoadedModel lm = test::load_stories260k();
  json ppl = {{"dataset", "wikitext2"}, {"seqlen", 256}, {"max_windows", 12}};
  const double base = test::metric(test::run_evaluator("ppl", lm.model, lm.tokenizer.get(), ppl), "ppl");
  Model kv8 = lm.model, kv4 = lm.model;
  test::run_method("rtn", kv8, lm.tokenizer.get(), {{"w_bits", 16}, {"kv_bits", 8}});
  test::run_method("rtn", kv4, lm.tokenizer.get(), {{"w_bits", 16}, {"kv_bits", 4}});
  const double p8 = test::metric(test::run_evaluator("ppl", kv8, lm.tokenizer.get(), ppl), "ppl");
  const double p4 = test::metric(test::run_evaluator("ppl", kv4, lm.tokenizer.get(), ppl), "ppl");
  EXPECT_LT(std::fabs(p8 / base - 1), 0.01) << "fp " << base << " kv8 " << p8;
  EXPECT_GT(p4, p8) << "4-bit KV should cost more than 8-bit";
}

}  // namespace
}  // namespace fb

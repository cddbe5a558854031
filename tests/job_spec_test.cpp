// The one job spec (core/job_spec.h): its canonical document, the key rule, the reader that
// refuses what is not a spec, and the upgrade of every shape an earlier flatbench stored.
#include "core/job_spec.h"
#include "harness/config.h"
#include "test_util.h"

#include <gtest/gtest.h>

namespace fb {
namespace {

JobSpec cpu_ppl_job() {
  JobSpec s;
  s.model = SpecPart{"stories260K", "llama2c", {{"path", "stories260K/stories260K.bin"}}};
  s.method = SpecPart{"rtn", "", {{"w_bits", 4}}};
  s.eval = SpecPart{"ppl", "", {{"dataset", "wikitext2"}}};
  s.data = {{"stories260K/stories260K.bin", "00112233445566778899aabbccddeeff"}};
  return s;
}

TEST(JobSpec, CanonicalDocumentHasEveryMemberAndNestedParameters) {
  const json doc = cpu_ppl_job().to_json();
  EXPECT_EQ(doc.dump(),
            R"({"backend":"cpu","data":{"stories260K/stories260K.bin":"00112233445566778899aabbccddeeff"},)"
            R"("eval":{"name":"ppl","params":{"dataset":"wikitext2"}},"method":{"name":"rtn","params":{"w_bits":4}},)"
            R"("model":{"format":"llama2c","name":"stories260K","params":{"path":"stories260K/stories260K.bin"}},)"
            R"("rep":0,"seed":0})");
  EXPECT_EQ(cpu_ppl_job().key(), hash_text(doc.dump()));
  EXPECT_EQ(JobSpec::from_json(doc).to_json(), doc) << "read and written back unchanged";
}

TEST(JobSpec, ReaderRefusesWhatIsNoSpecNamingTheMember) {
  auto error_of = [](const json& doc) { return test::error_of([&] { JobSpec::from_json(doc); }); };

  json doc = cpu_ppl_job().to_json();
  json extra = doc;
  extra["device"] = "cuda:0";
  EXPECT_NE(error_of(extra).find("'device' is not a member"), std::string::npos) << error_of(extra);
  json missing = doc;
  missing.erase("backend");
  EXPECT_NE(error_of(missing).find("'backend' is missing"), std::string::npos);
  json flat_model = doc;
  flat_model["model"] = {{"name", "m"}, {"format", "llama2c"}, {"path", "x.bin"}};
  EXPECT_NE(error_of(flat_model).find("'model.path' is not a member"), std::string::npos) << error_of(flat_model);
  json modelless = doc;
  modelless["model"].erase("format");
  EXPECT_NE(error_of(modelless).find("'model.format' must be a string"), std::string::npos);
  json seed = doc;
  seed["seed"] = 1.5;
  EXPECT_NE(error_of(seed).find("'seed' must be an integer"), std::string::npos);
}

// A CPU job as the config loader makes it and a GPU job as the GPU tool makes it are one type:
// the same members, the same key rule.
TEST(JobSpec, CpuAndGpuJobsShareShapeAndKeyRule) {
  test::TempDir dir;
  const auto path = dir / "g.yaml";
  test::put(path, "evaluations:\n  - name: gemm\n    layers_of: [opt-6.7b]\n    tokens: [16]\n");
  const Config cfg = load_config(path, dir.path);
  ASSERT_EQ(cfg.jobs.size(), 1u);
  const json cpu = cfg.jobs[0].spec.to_json();
  EXPECT_EQ(cfg.jobs[0].key, hash_text(cpu.dump()));

  JobSpec gpu;  // what app/flatbench_gpu.cu writes for one (shape set, backend)
  gpu.backend = "cuda";
  gpu.eval = SpecPart{"gemm", "", {{"backends", {"cublas_fp16"}}, {"layers_of", {"opt-6.7b"}}, {"tokens", {16}}}};
  gpu.seed = 1;
  const json g = gpu.to_json();
  std::vector<std::string> cpu_members, gpu_members;
  for (const auto& [k, v] : cpu.items()) cpu_members.push_back(k);
  for (const auto& [k, v] : g.items()) gpu_members.push_back(k);
  EXPECT_EQ(cpu_members, gpu_members);
  EXPECT_EQ(cpu["backend"], "cpu");
  EXPECT_TRUE(cpu["model"].is_null() && g["model"].is_null()) << "a GEMM job needs no model on either backend";
  EXPECT_EQ(cpu["eval"]["name"], g["eval"]["name"]);
  EXPECT_NE(gpu.key(), cfg.jobs[0].key) << "the backend is part of what a job is";
}

TEST(JobSpecUpgrade, FlatModelPartsNestAndMissingDataIsNull) {
  const json v1 = {{"model", {{"name", "m"}, {"format", "synthetic"}, {"arch", "opt-tiny"}}},
                   {"method", {{"name", "rtn"}, {"params", {{"w_bits", 4}}}}},
                   {"eval", {{"name", "ppl"}, {"params", json::object()}}},
                   {"seed", 3},
                   {"rep", 1}};
  const json up = upgrade_job_spec(v1, hash_text(v1.dump()));
  EXPECT_EQ(up["backend"], "cpu");
  EXPECT_EQ(up["model"], (json{{"name", "m"}, {"format", "synthetic"}, {"params", {{"arch", "opt-tiny"}}}}));
  EXPECT_TRUE(up["data"].is_null()) << "a row stored before fingerprints claims no file content";
  EXPECT_EQ(up["seed"], 3);
  EXPECT_EQ(up["rep"], 1);
  EXPECT_EQ(upgrade_job_spec(up, "any"), up) << "a canonical spec upgrades to itself";

  json v3 = v1;
  v3["data"] = {{"f.bin", "ab"}};
  EXPECT_EQ(upgrade_job_spec(v3, "k")["data"], v3["data"]);
}

TEST(JobSpecUpgrade, OldGpuRowsBecomeCudaJobsOfTheirEvaluation) {
  const json gemm = {{"model", {{"name", "opt-13b"}}},
                     {"method", {{"name", "ours_s8"}}},
                     {"eval", {{"name", "gemm"}, {"device", "cuda:NVIDIA H200"}, {"tokens", {1, 16}},
                               {"flush_l2", true}, {"max_reps", 30}}}};
  const json up = upgrade_job_spec(gemm, "gpu-gemm/opt-13b/ours_s8/0123456789abcdef0123456789abcdef");
  EXPECT_EQ(up["backend"], "cuda");
  EXPECT_TRUE(up["model"].is_null());
  EXPECT_TRUE(up["method"].is_null()) << "the GEMM backend is an evaluation parameter, not a method";
  EXPECT_EQ(up["eval"]["name"], "gemm");
  EXPECT_EQ(up["eval"]["params"]["backends"], json::array({"ours_s8"}));
  EXPECT_EQ(up["eval"]["params"]["layers_of"], json::array({"opt-13b"}));
  EXPECT_EQ(up["eval"]["params"]["reps"], 30);
  EXPECT_NO_THROW(JobSpec::from_json(up));

  const json layer = {{"model", {{"name", "opt-6.7b"}}},
                      {"method", {{"name", "fp16|w8a8_flatten|w4a8_flatten"}}},
                      {"eval", {{"name", "decoder_layer"}, {"device", "cuda:X"}, {"tokens", {256}}}}};
  const json ul = upgrade_job_spec(layer, "gpu-layer/opt-6.7b/0123");
  EXPECT_EQ(ul["model"]["format"], "synthetic");
  EXPECT_EQ(ul["eval"]["params"]["variants"], (json{"fp16", "w8a8_flatten", "w4a8_flatten"}));
  EXPECT_NE(JobSpec::from_json(up).key(), JobSpec::from_json(ul).key());
}

}  // namespace
}  // namespace fb

// Config parsing, validation errors (file:line:column + field + message) and sweep expansion.
#include "harness/config.h"
#include "test_util.h"

#include <fstream>
#include <set>

namespace fb {
namespace {

using test::TempDir;

std::filesystem::path write(const TempDir& dir, const std::string& name, const std::string& text) {
  auto p = dir / name;
  std::ofstream(p) << text;
  return p;
}

// Loads `text` as a config that must fail; returns the error.
ConfigError load_error(const std::string& text, const std::string& extra_file = "", const std::string& extra = "") {
  TempDir dir;
  if (!extra_file.empty()) write(dir, extra_file, extra);
  auto p = write(dir, "c.yaml", text);
  try {
    load_config(p, dir.path);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "config loaded but should have failed:\n" << text;
  return ConfigError("", 0, 0, "", "");
}

struct BadConfig {
  const char* name;
  const char* yaml;
  int line, column;
  const char* field;
  const char* message_part;
};

// Each malformed config with the error it must produce. Lines and columns are 1-based.
const BadConfig kBadConfigs[] = {
    {"unknown top-level key with suggestion", "evaluation:\n  - name: selftest\n", 1, 1, "evaluation",
     "did you mean 'evaluations'?"},
    {"unknown evaluation name", "evaluations:\n  - name: selftst\n", 2, 11, "evaluations[0].name",
     "unknown evaluation 'selftst'; did you mean 'selftest'?"},
    {"misspelt parameter", "evaluations:\n  - name: selftest\n    sleep_mss: 3\n", 3, 5, "evaluations[0].sleep_mss",
     "did you mean 'sleep_ms'?"},
    {"wrong scalar type", "evaluations:\n  - name: selftest\n    sleep_ms: fast\n", 3, 15, "evaluations[0].sleep_ms",
     "expects integer, got \"fast\""},
    {"wrong type inside a sweep list", "evaluations:\n  - name: selftest\n    metrics: [1, two, 3]\n", 3, 18,
     "evaluations[0].metrics", "expects integer"},
    {"empty grid", "evaluations:\n  - name: selftest\n    metrics: []\n", 3, 14, "evaluations[0].metrics",
     "empty list"},
    {"zip lists of unequal length",
     "evaluations:\n  - name: selftest\n    zip:\n      metrics: [1, 2]\n      value: [1.0, 2.0, 3.0]\n", 5, 14,
     "evaluations[0].zip.value", "equal lengths"},
    {"parameter both in zip and direct",
     "evaluations:\n  - name: selftest\n    metrics: 2\n    zip:\n      metrics: [1, 2]\n", 5, 7,
     "evaluations[0].zip.metrics", "given twice"},
    {"missing name", "evaluations:\n  - sleep_ms: 3\n", 2, 5, "evaluations[0]", "missing `name:`"},
    {"no evaluations", "name: empty\n", 1, 1, "evaluations", "nothing to measure"},
    {"YAML syntax error", "evaluations:\n  - name: selftest\n    metrics: [1, 2\n", 4, 1, "", "YAML syntax error"},
    {"bool given a number", "evaluations:\n  - name: selftest\n    fail: 3\n", 3, 11, "evaluations[0].fail",
     "expects boolean"},
    {"seeds not integers", "seeds: [a]\nevaluations:\n  - name: selftest\n", 1, 8, "seeds", "expected integers"},
    {"missing include", "include: nothere.yaml\nevaluations:\n  - name: selftest\n", 1, 10, "include",
     "included file not found"},
    {"shapes with two numbers", "evaluations:\n  - name: gemm\n    shapes: [[1, 2]]\n", 3, 13,
     "evaluations[0].shapes", "list of [M, N, K] shapes"},
    {"top level is a list", "- name: selftest\n", 1, 1, "", "must be a mapping"},
};

// gtest names each parameter by printing it; without this it dumps the struct's raw bytes.
void PrintTo(const BadConfig& c, std::ostream* os) { *os << c.name; }

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, NamesFileLineColumnFieldAndCause) {
  const BadConfig& c = GetParam();
  ConfigError e = load_error(c.yaml);
  EXPECT_NE(e.file.find("c.yaml"), std::string::npos) << e.what();
  EXPECT_EQ(e.line, c.line) << e.what();
  EXPECT_EQ(e.column, c.column) << e.what();
  EXPECT_EQ(e.field, c.field) << e.what();
  EXPECT_NE(e.message.find(c.message_part), std::string::npos) << "message: " << e.what();
}

INSTANTIATE_TEST_SUITE_P(Config, BadConfigTest, ::testing::ValuesIn(kBadConfigs),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (auto& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(Config, ErrorInIncludedFileNamesThatFile) {
  ConfigError e = load_error("include: base.yaml\n", "base.yaml", "evaluations:\n  - name: selftest\n    bogus: 1\n");
  EXPECT_NE(e.file.find("base.yaml"), std::string::npos) << e.what();
  EXPECT_EQ(e.line, 3);
}

TEST(Config, MissingModelFileIsReportedWithDataDir) {
  ConfigError e = load_error(
      "models:\n  - name: m\n    format: llama2c\n    path: nope/model.bin\n    tokenizer: nope/tok.model\n"
      "methods:\n  - name: fp16\nevaluations:\n  - name: ppl\n");
  EXPECT_EQ(e.line, 4) << e.what();
  EXPECT_NE(e.message.find("file not found"), std::string::npos) << e.what();
}

TEST(Config, ModelEvaluationWithoutModelsIsAnError) {
  ConfigError e = load_error("methods:\n  - name: fp16\nevaluations:\n  - name: ppl\n");
  EXPECT_EQ(e.field, "models");
}

TEST(Sweep, CartesianProductAndZip) {
  TempDir dir;
  auto p = write(dir, "c.yaml",
                 "seeds: [0, 1]\n"
                 "evaluations:\n"
                 "  - name: selftest\n"
                 "    metrics: [1, 2, 3]\n"
                 "    zip:\n"
                 "      value: [10, 20]\n"
                 "      sleep_ms: [0, 1]\n");
  Config cfg = load_config(p, dir.path);
  ASSERT_EQ(cfg.jobs.size(), 2u * 3u * 2u);
  std::set<std::pair<double, long>> zipped;
  for (const auto& j : cfg.jobs) {
    const auto& params = j.spec.eval.params;
    zipped.insert({params["value"].get<double>(), params["sleep_ms"].get<long>()});
    EXPECT_EQ(params["fail"], false) << "defaults are filled in";
  }
  EXPECT_EQ(zipped, (std::set<std::pair<double, long>>{{10.0, 0}, {20.0, 1}})) << "zip pairs values, never crosses them";
}

TEST(Sweep, KeysAreStableAndDistinct) {
  TempDir dir;
  const char* text = "evaluations:\n  - name: selftest\n    metrics: [1, 2]\n    value: [1, 2.5]\n";
  Config a = load_config(write(dir, "a.yaml", text), dir.path);
  // Same grid written differently (reordered keys, explicit default, float written as int) → same keys.
  Config b = load_config(write(dir, "b.yaml",
                               "evaluations:\n  - value: [1.0, 2.5]\n    fail: false\n    name: selftest\n"
                               "    metrics: [1, 2]\n"),
                         dir.path);
  ASSERT_EQ(a.jobs.size(), 4u);
  std::set<std::string> ka, kb;
  for (const auto& j : a.jobs) ka.insert(j.key);
  for (const auto& j : b.jobs) kb.insert(j.key);
  EXPECT_EQ(ka.size(), 4u);
  EXPECT_EQ(ka, kb);
  for (const auto& k : ka) EXPECT_EQ(k.size(), 32u);
}

TEST(Sweep, IncludeProvidesDefaultsThatTheFileOverrides) {
  TempDir dir;
  write(dir, "base.yaml", "seeds: [7]\nevaluations:\n  - name: selftest\n    metrics: 5\n");
  Config cfg = load_config(write(dir, "c.yaml", "include: base.yaml\nevaluations:\n  - name: selftest\n"), dir.path);
  ASSERT_EQ(cfg.jobs.size(), 1u);
  EXPECT_EQ(cfg.jobs[0].spec.seed, 7) << "seeds come from the base";
  EXPECT_EQ(cfg.jobs[0].spec.eval.params["metrics"], 3) << "evaluations come from the including file";
}

TEST(Shard, EveryJobInExactlyOneShard) {
  TempDir dir;
  Config cfg = load_config(write(dir, "c.yaml", "evaluations:\n  - name: selftest\n    metrics: [1,2,3,4,5,6,7]\n"
                                                "    value: [1, 2, 3]\n"),
                           dir.path);
  ASSERT_EQ(cfg.jobs.size(), 21u);
  for (int n : {1, 2, 4, 5, 21, 30}) {
    std::multiset<std::string> seen;
    for (int i = 0; i < n; ++i)
      for (const auto& j : shard_jobs(cfg.jobs, i, n)) seen.insert(j.key);
    EXPECT_EQ(seen.size(), cfg.jobs.size()) << n << " shards";
    for (const auto& j : cfg.jobs) EXPECT_EQ(seen.count(j.key), 1u) << n << " shards";
  }
}

TEST(Suggest, FindsCloseNamesOnly) {
  EXPECT_EQ(suggest("w_bit", {"w_bits", "a_bits", "kv_bits"}), "w_bits");
  EXPECT_EQ(suggest("completely_different", {"w_bits", "a_bits"}), "");
}

}  // namespace
}  // namespace fb

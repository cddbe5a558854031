// Hostile configs (issue 16 items 8-10): every value is checked before anything runs, every
// error of a config is reported in one pass with file:line:column and field, non-finite
// numbers are refused, and no config can expand beyond a bound or exhaust memory.
#include "harness/config.h"
#include "test_util.h"

#include <fstream>

namespace fb {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

using test::put;

// Loads `yaml` with a data dir holding a real-looking llama2c model and tokenizer (contents
// are never read as a model here) and a corpus; returns the error it must raise.
ConfigError error_of(const std::string& yaml) {
  TempDir dir;
  put(dir / "data/m.bin", "weights");
  put(dir / "data/tok.model", "tokenizer");
  put(dir / "data/wikitext2/wiki.test.raw", "text");
  put(dir / "c.yaml", yaml);
  try {
    load_config(dir / "c.yaml", dir / "data");
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "config loaded but should have failed:\n" << yaml;
  return ConfigError("", 0, 0, "", "");
}

const std::string kModel = "models: [{name: m, format: llama2c, path: m.bin, tokenizer: tok.model}]\n";

bool has_issue(const ConfigError& e, int line, const std::string& field, const std::string& part) {
  for (const auto& i : e.issues)
    if (i.line == line && i.field == field && i.message.find(part) != std::string::npos) return true;
  return false;
}

TEST(ConfigHostile, EveryBadBitWidthIsReportedInOnePass) {
  ConfigError e = error_of(kModel +
                           "methods:\n"
                           "  - name: rtn\n"
                           "    w_bits: [-4, 0, 1, 9, 17]\n"
                           "evaluations: [{name: memory}]\n");
  ASSERT_EQ(e.issues.size(), 5u) << e.what();
  for (const char* v : {"-4", "0", "1", "9", "17"})
    EXPECT_TRUE(has_issue(e, 4, "methods[0].w_bits", std::string(v) + " is out of range (expects 2..8 or 16)"))
        << v << "\n" << e.what();
  EXPECT_EQ(e.issues[4].column, 27) << "the column of the value 17";
}

TEST(ConfigHostile, ErrorsOfSeveralEntriesComeTogether) {
  ConfigError e = error_of(kModel +
                           "methods: [{name: fp16}]\n"
                           "evaluations:\n"
                           "  - {name: ppl, seqlen: -5, dataset: wikitext3}\n"
                           "  - {name: ppl, max_windows: -3}\n"
                           "  - {name: zeroshot, tasks: [piqa, mmlu]}\n");
  EXPECT_TRUE(has_issue(e, 4, "evaluations[0].seqlen", "-5 is out of range (expects ≥ 0)")) << e.what();
  EXPECT_TRUE(has_issue(e, 4, "evaluations[0].dataset", "unknown corpus 'wikitext3' (did you mean 'wikitext2'?)"))
      << e.what();
  EXPECT_TRUE(has_issue(e, 5, "evaluations[1].max_windows", "-3 is out of range")) << e.what();
  EXPECT_TRUE(has_issue(e, 6, "evaluations[2].tasks", "unknown task 'mmlu'")) << e.what();
  EXPECT_GE(e.issues.size(), 4u);
  EXPECT_NE(std::string(e.what()).find("\n"), std::string::npos) << "one line per error";
}

TEST(ConfigHostile, NonFiniteNumbersAreRefused) {
  for (const char* v : {"nan", ".nan", ".NaN", "NaN"}) {
    ConfigError e = error_of(kModel + "methods: [{name: smoothquant, alpha: " + v + "}]\nevaluations: [{name: memory}]\n");
    EXPECT_TRUE(has_issue(e, 2, "methods[0].alpha", "nan is not a number (expects 0..1)")) << v << ": " << e.what();
  }
  ConfigError inf = error_of(kModel + "methods: [{name: smoothquant, alpha: .inf}]\nevaluations: [{name: memory}]\n");
  EXPECT_TRUE(has_issue(inf, 2, "methods[0].alpha", ".inf is not a finite number")) << inf.what();
}

// JSON has no infinity: nlohmann writes ±∞ as null, so two jobs of γ = −∞ and γ = +∞ would share
// one key and a stored spec would lose its value. Both are refused, with the finite spelling.
TEST(ConfigHostile, InfinityIsRefusedBecauseJobSpecsAreJson) {
  ConfigError e = error_of(kModel + "methods: [{name: flattenquant, gamma: [-.inf, .inf, 1.0e30]}]\nevaluations: [{name: memory}]\n");
  ASSERT_EQ(e.issues.size(), 2u) << e.what();
  EXPECT_NE(e.issues[0].message.find("-.inf is not a finite number"), std::string::npos) << e.what();
  EXPECT_NE(e.issues[0].message.find("-1e30"), std::string::npos) << e.what();
  EXPECT_NE(e.issues[1].message.find(".inf is not a finite number"), std::string::npos) << e.what();
}

TEST(ConfigHostile, ADefaultCorpusThatIsMissingIsNamed) {
  TempDir dir;
  put(dir / "data/m.bin", "w");
  put(dir / "data/tok.model", "t");
  put(dir / "c.yaml", kModel + "methods: [{name: flattenquant}]\nevaluations: [{name: memory}]\n");
  try {
    load_config(dir / "c.yaml", dir / "data");
    ADD_FAILURE() << "the default calibration corpus is missing from this data dir";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.field, "methods[0].calib_dataset") << e.what();
    EXPECT_NE(e.message.find("corpus 'wikitext2-valid' reads"), std::string::npos) << e.what();
  }
  put(dir / "data/wikitext2/wiki.valid.tokens", "valid text");
  EXPECT_EQ(load_config(dir / "c.yaml", dir / "data").jobs.size(), 1u);
}

TEST(ConfigHostile, AModelWithoutTokenizerIsRefusedForPplAtLoad) {
  ConfigError e = error_of(
      "models: [{name: m, format: llama2c, path: m.bin}]\n"
      "methods: [{name: fp16}]\n"
      "evaluations: [{name: ppl}]\n");
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.field, "models[0]");
  EXPECT_NE(e.message.find("model 'm' has no tokenizer, but evaluation 'ppl'"), std::string::npos) << e.what();
  EXPECT_EQ(e.message.find("synthetic"), std::string::npos) << "it is not a synthetic model: " << e.what();
}

TEST(ConfigHostile, MissingTaskFilesAreNamedAtLoad) {
  ConfigError e = error_of(kModel + "methods: [{name: fp16}]\nevaluations: [{name: zeroshot, tasks: [winogrande]}]\n");
  EXPECT_EQ(e.field, "evaluations[0].tasks") << e.what();
  EXPECT_NE(e.message.find("task 'winogrande' has no file; looked for"), std::string::npos) << e.what();
  EXPECT_NE(e.message.find("winogrande/dev.jsonl"), std::string::npos) << e.what();
}

TEST(ConfigHostile, ListsWhereANameBelongsNameFileAndField) {
  ConfigError e = error_of("name: [a, b]\n" + kModel + "methods: [{name: [fp16]}]\nevaluations: [{name: memory}]\n");
  EXPECT_TRUE(has_issue(e, 1, "name", "expected a string, got a list")) << e.what();
  EXPECT_TRUE(has_issue(e, 3, "methods[0].name", "expected a string, got a list")) << e.what();
  EXPECT_EQ(std::string(e.what()).find("bad conversion"), std::string::npos) << e.what();
}

// The "billion laughs": nine levels of nine aliases, a few hundred bytes that expand to 9^9
// values (gigabytes once converted).
TEST(ConfigHostile, AnAliasBombIsRefused) {
  std::string yaml = "description:\n  l0: &l0 [4, 4, 4, 4, 4, 4, 4, 4, 4]\n";
  for (int level = 1; level <= 8; ++level) {
    yaml += "  l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 9; ++i) yaml += (i ? ", *l" : "*l") + std::to_string(level - 1);
    yaml += "]\n";
  }
  yaml += kModel + "methods: [{name: rtn, w_bits: *l8}]\nevaluations: [{name: memory}]\n";
  ASSERT_LT(yaml.size(), 1000u);
  ConfigError e = error_of(yaml);
  EXPECT_NE(e.message.find("expands to more than 200000 YAML nodes"), std::string::npos) << e.what();
}

TEST(ConfigHostile, AHugeLiteralListIsRefusedBeforeParsing) {
  std::string list = "[4";
  while (list.size() < size_t(kMaxConfigBytes)) list += ", 4";
  ConfigError e = error_of(kModel + "methods: [{name: rtn, w_bits: " + list + "]}]\nevaluations: [{name: memory}]\n");
  EXPECT_NE(e.message.find("at most 1048576 are read"), std::string::npos) << e.message;
}

TEST(ConfigHostile, TooManyRepetitionsSayHowManyJobsTheSweepWouldMake) {
  ConfigError e = error_of(kModel + "repetitions: 1000000000000\nmethods: [{name: fp16}]\nevaluations: [{name: memory}]\n");
  EXPECT_NE(e.message.find("the sweep would make 1000000000000 jobs"), std::string::npos) << e.what();
}

TEST(ConfigHostile, AHugeGridIsRefusedBeforeExpansion) {
  std::string axes;
  for (const char* p : {"w_bits", "a_bits", "kv_bits", "w_group", "gptq_block", "calib_samples", "calib_seqlen",
                        "calib_rows", "w_clip"}) {
    axes += std::string("    ") + p + ": [";
    for (int v = 2; v < 8; ++v) axes += (v > 2 ? ", " : "") + std::to_string(std::string(p) == "w_clip" ? 1 : v);
    axes += "]\n";
  }
  ConfigError e = error_of(kModel + "methods:\n  - name: rtn\n" + axes + "evaluations: [{name: memory}]\n");
  EXPECT_EQ(e.field, "methods[0]") << e.what();
  EXPECT_NE(e.message.find("= 10077696 points"), std::string::npos) << e.what();
}

TEST(ConfigHostile, EmptyOrFolderPathsWhereAFileBelongsAreRefused) {
  ConfigError empty = error_of("models: [{name: m, format: llama2c, path: ''}]\nmethods: [{name: fp16}]\nevaluations: [{name: memory}]\n");
  EXPECT_EQ(empty.field, "models[0].path") << empty.what();
  EXPECT_NE(empty.message.find("must name a file"), std::string::npos) << empty.what();
  ConfigError folder = error_of("models: [{name: m, format: llama2c, path: wikitext2}]\nmethods: [{name: fp16}]\nevaluations: [{name: memory}]\n");
  EXPECT_EQ(folder.field, "models[0]") << folder.what();
  EXPECT_NE(folder.message.find("not a file (a llama2c checkpoint is one .bin file)"), std::string::npos) << folder.what();
}

TEST(ConfigHostile, AnIncludeThatIsNotARegularFileIsRefused) {
  ConfigError e = error_of("include: /dev/zero\n" + kModel + "methods: [{name: fp16}]\nevaluations: [{name: memory}]\n");
  EXPECT_NE(std::string(e.what()).find("cannot read config file"), std::string::npos) << e.what();
}

TEST(ConfigHostile, RegistryNamedListsAreCheckedAtLoad) {
  ConfigError e = error_of("evaluations: [{name: gemm, backends: [openblas_fp32, nosuch], layers_of: [opt-125x]}]\n");
  EXPECT_TRUE(has_issue(e, 1, "evaluations[0].backends", "unknown backends 'nosuch'")) << e.what();
  EXPECT_TRUE(has_issue(e, 1, "evaluations[0].layers_of", "unknown layers_of 'opt-125x'; did you mean 'opt-125m'?"))
      << e.what();
}

TEST(ConfigHostile, IntegersBeyond32BitsAreRefusedNotWrapped) {
  ConfigError e = error_of(kModel + "methods: [{name: fp16}]\nevaluations: [{name: ppl, max_windows: 4294967296}]\n");
  EXPECT_TRUE(has_issue(e, 3, "evaluations[0].max_windows", "4.29497e+09 does not fit a 32-bit integer")) << e.what();
}

TEST(ConfigHostile, DeeplyNestedAliasesAreRefused) {
  std::string yaml = "description:\n  a0: &a0 [1]\n";
  for (int i = 1; i <= 300; ++i)
    yaml += "  a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) + "]\n";
  ConfigError e = error_of(yaml + kModel + "methods: [{name: fp16}]\nevaluations: [{name: memory}]\n");
  EXPECT_NE(e.message.find("nests deeper than 256 levels"), std::string::npos) << e.what();
}

TEST(ConfigHostile, AnIncludeListedManyTimesIsBounded) {
  TempDir dir;
  put(dir / "base.yaml", "seeds: [0]\n");
  std::string includes = "include: [";
  for (int i = 0; i < 300; ++i) includes += (i ? ", " : "") + std::string("base.yaml");
  put(dir / "c.yaml", includes + "]\n" + kModel + "methods: [{name: fp16}]\nevaluations: [{name: memory}]\n");
  try {
    load_config(dir / "c.yaml", dir / "data");
    ADD_FAILURE() << "300 includes loaded";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.message.find("more than 256 config files read through includes"), std::string::npos) << e.what();
  }
}

// Each entry stays under the bound, their sum does not: the bound holds before expansion.
TEST(ConfigHostile, EntriesThatTogetherExceedTheBoundAreRefusedBeforeExpansion) {
  std::string grid = "{name: rtn, w_bits: [2, 3, 4, 5, 6, 7, 8], a_bits: [2, 3, 4, 5, 6, 7, 8], "
                     "kv_bits: [2, 3, 4, 5, 6, 7, 8], w_group: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, "
                     "17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]}";  // 10290 points
  std::string methods = "methods: [";
  for (int i = 0; i < 12; ++i) methods += (i ? ", " : "") + grid;
  ConfigError e = error_of(kModel + methods + "]\nevaluations: [{name: memory}]\n");
  EXPECT_NE(e.message.find("the entries so far expand to more than 100000 grid points"), std::string::npos)
      << e.what();
}

}  // namespace
}  // namespace fb

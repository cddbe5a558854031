// Job keys follow the content of every file a job reads (issue 16 item 2): model weights,
// tokenizer files inside a Hugging Face folder, corpora named by any corpus-valued parameter,
// zero-shot task files; digests are cached by file identity; provenance keys files by their
// path relative to the data directory.
#include "harness/config.h"
#include "core/fingerprint.h"
#include "harness/provenance.h"
#include "models/safetensors.h"
#include "test_util.h"

#include <sys/stat.h>
#include <utime.h>

#include <fstream>
#include <vector>

namespace fb {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

using test::put;

// A folder the hf source's file list accepts: config.json and one safetensors file.
void hf_folder(const fs::path& dir, float first_weight) {
  put(dir / "config.json", R"({"architectures": ["LlamaForCausalLM"]})");
  std::vector<float> w = {first_weight, 2.f, 3.f, 4.f};
  write_safetensors(dir / "model.safetensors", {{"w", {2, 2}, w.data()}});
}

Config load(const TempDir& dir, const std::string& yaml) {
  put(dir / "c.yaml", yaml);
  return load_config(dir / "c.yaml", dir / "data");
}

const std::string kHfPpl = R"(
models: [{name: m, format: hf, path: m}]
methods: [{name: fp16}]
evaluations: [{name: ppl, dataset: corpus.txt}]
)";

TEST(ConfigFingerprint, SwappedHfWeightsMakeANewJobKey) {
  TempDir dir;
  hf_folder(dir / "data/m", 1.f);
  put(dir / "data/m/tokenizer.json", "{}");
  put(dir / "data/corpus.txt", "some text");
  const Config before = load(dir, kHfPpl);
  ASSERT_EQ(before.jobs.size(), 1u);
  const json& data = before.jobs[0].spec.data;
  EXPECT_TRUE(data.contains("m/config.json")) << data.dump();
  EXPECT_TRUE(data.contains("m/model.safetensors")) << data.dump();
  EXPECT_TRUE(data.contains("m/tokenizer.json")) << "tokenizer files inside the folder are fingerprinted: " << data.dump();
  EXPECT_TRUE(data.contains("corpus.txt")) << data.dump();

  EXPECT_EQ(load(dir, kHfPpl).jobs[0].key, before.jobs[0].key) << "same content, same key";
  hf_folder(dir / "data/m", 1.5f);  // same size, other weights
  EXPECT_NE(load(dir, kHfPpl).jobs[0].key, before.jobs[0].key) << "swapped weights must not pass for the done job";
}

TEST(ConfigFingerprint, TokenizerConfigBesideAGpt2TokenizerEntersTheKey) {
  TempDir dir;
  hf_folder(dir / "data/m", 1.f);
  put(dir / "data/m/tokenizer.json", "{}");
  put(dir / "data/m/tokenizer_config.json", R"({"add_bos_token": false})");
  put(dir / "data/corpus.txt", "some text");
  const Config before = load(dir, kHfPpl);
  EXPECT_TRUE(before.jobs[0].spec.data.contains("m/tokenizer_config.json")) << before.jobs[0].spec.data.dump();
  put(dir / "data/m/tokenizer_config.json", R"({"add_bos_token": true})");  // changes BOS, so every score
  EXPECT_NE(load(dir, kHfPpl).jobs[0].key, before.jobs[0].key);
}

TEST(ConfigFingerprint, TokenizerInsideTheFolderEntersTheKey) {
  TempDir dir;
  hf_folder(dir / "data/m", 1.f);
  put(dir / "data/m/tokenizer.json", "{\"v\": 1}");
  put(dir / "data/corpus.txt", "some text");
  const std::string key = load(dir, kHfPpl).jobs[0].key;
  put(dir / "data/m/tokenizer.json", "{\"v\": 2}");
  EXPECT_NE(load(dir, kHfPpl).jobs[0].key, key);
}

TEST(ConfigFingerprint, EveryCorpusParameterEntersTheKeyByItsSchemaRole) {
  TempDir dir;
  hf_folder(dir / "data/m", 1.f);
  put(dir / "data/m/tokenizer.json", "{}");
  put(dir / "data/calib.txt", "calibration text one");
  // FlatQuant names its corpus `cali_dataset`, the others `calib_dataset`: the schema says
  // both are corpora, no name is matched.
  const std::string yaml = R"(
models: [{name: m, format: hf, path: m}]
methods:
  - {name: flatquant, cali_dataset: calib.txt}
  - {name: rtn, calib_dataset: calib.txt}
  - {name: flattenquant, calib_dataset: calib.txt}
evaluations: [{name: memory}]
)";
  const Config before = load(dir, yaml);
  ASSERT_EQ(before.jobs.size(), 3u);
  for (const auto& j : before.jobs) EXPECT_TRUE(j.spec.data.contains("calib.txt")) << j.label;
  put(dir / "data/calib.txt", "calibration text two");
  const Config after = load(dir, yaml);
  for (size_t i = 0; i < 3; ++i) EXPECT_NE(after.jobs[i].key, before.jobs[i].key) << before.jobs[i].label;
}

TEST(ConfigFingerprint, FilesOfTheSameNameInTwoFoldersAreKeptApart) {
  TempDir dir;
  hf_folder(dir / "data/a", 1.f);
  hf_folder(dir / "data/b", 2.f);
  put(dir / "data/a/tokenizer.json", "{}");
  put(dir / "data/b/tokenizer.json", "{}");
  const Config cfg = load(dir, R"(
models: [{name: a, format: hf, path: a}, {name: b, format: hf, path: b}]
methods: [{name: fp16}]
evaluations: [{name: memory}]
)");
  json prov = collect_provenance(cfg.data_files, cfg.data_dir);
  const json& files = prov["data_files"];
  ASSERT_TRUE(files.contains("a/model.safetensors")) << files.dump();
  ASSERT_TRUE(files.contains("b/model.safetensors")) << files.dump();
  EXPECT_NE(files["a/model.safetensors"]["xxh3_128"], files["b/model.safetensors"]["xxh3_128"]);
  EXPECT_EQ(files["a/model.safetensors"]["xxh3_128"], file_digest(dir / "data/a/model.safetensors"));
}

TEST(ConfigFingerprint, ZeroShotTaskFilesEnterTheKey) {
  TempDir dir;
  hf_folder(dir / "data/m", 1.f);
  put(dir / "data/m/tokenizer.json", "{}");
  put(dir / "data/piqa/valid.jsonl", R"({"goal": "g", "sol1": "a", "sol2": "b"})" "\n");
  put(dir / "data/piqa/valid-labels.lst", "0\n");
  const std::string yaml = R"(
models: [{name: m, format: hf, path: m}]
methods: [{name: fp16}]
evaluations: [{name: zeroshot, tasks: [piqa]}]
)";
  const Config before = load(dir, yaml);
  EXPECT_TRUE(before.jobs[0].spec.data.contains("piqa/valid.jsonl"));
  EXPECT_TRUE(before.jobs[0].spec.data.contains("piqa/valid-labels.lst")) << "the labels beside it are read too";
  put(dir / "data/piqa/valid-labels.lst", "1\n");
  EXPECT_NE(load(dir, yaml).jobs[0].key, before.jobs[0].key);
}

TEST(ConfigFingerprint, DigestsAreCachedByIdentityAndRecomputedWhenTheFileChanges) {
  TempDir dir;
  const fs::path f = dir / "weights.bin";
  put(f, std::string(4096, 'a'));
  const std::string first = file_digest(f);
  const long computed = digests_computed();
  EXPECT_EQ(file_digest(f), first);
  EXPECT_EQ(digests_computed(), computed) << "an unchanged file is not rehashed";

  struct stat st {};
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  put(f, std::string(4095, 'a') + "b");  // same size
  utimbuf old_times{st.st_atime, st.st_mtime};
  ASSERT_EQ(::utime(f.c_str(), &old_times), 0);  // and the old mtime, as `cp -p` would leave it
  EXPECT_NE(file_digest(f), first) << "a same-size file with a restored mtime is still rehashed (ctime changed)";
  EXPECT_EQ(digests_computed(), computed + 1);
}

TEST(ConfigFingerprint, DigestCacheFileServesANewProcess) {
  TempDir dir;
  setenv("FLATBENCH_CACHE_DIR", (dir / "cache").c_str(), 1);
  const fs::path f = dir / "corpus.txt";
  put(f, "cached text");
  const std::string d = file_digest(f);
  unsetenv("FLATBENCH_CACHE_DIR");
  std::ifstream in(dir / "cache/digests.tsv");
  std::string line, all;
  while (std::getline(in, line)) all += line + "\n";
  EXPECT_NE(all.find(fs::absolute(f).lexically_normal().string()), std::string::npos) << all;
  EXPECT_NE(all.find(d), std::string::npos) << all;
}

TEST(ConfigFingerprint, ProvenanceKeysFilesByDataRelativePath) {
  TempDir dir;
  put(dir / "data/sub/x.txt", "x");
  put(dir / "elsewhere/x.txt", "y");
  EXPECT_EQ(data_relative(dir / "data/sub/x.txt", dir / "data"), "sub/x.txt");
  EXPECT_EQ(data_relative(dir / "elsewhere/x.txt", dir / "data"),
            fs::weakly_canonical(dir / "elsewhere/x.txt").generic_string());
}

}  // namespace
}  // namespace fb

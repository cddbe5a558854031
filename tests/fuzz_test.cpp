// Seeded mutation fuzzing of every parser: YAML config, llama2.c checkpoint, safetensors,
// Hugging Face config.json, GPT-2 vocab/merges and tokenizer.json, SentencePiece model, and
// every zero-shot task format. Each input must end in a result or a clear exception: it runs
// in a forked child under a time limit and an address-space limit, so a crash, a hang or an
// unbounded allocation fails the test and leaves the input on disk to reproduce.
//
// Two sources of inputs: the corpus kept in tests/fuzz_corpus/<target>/ (each file named
// "<seed file>.<n>", replacing that seed file), and fresh mutations drawn from a fixed seed.
// FLATBENCH_FUZZ_EXPORT=DIR writes the fresh mutations out as a corpus; FLATBENCH_FUZZ_ITERS
// sets how many are drawn per target.
#include "datasets/tasks/task.h"
#include "harness/config.h"
#include "models/convert.h"
#include "models/gpt2_tokenizer.h"
#include "models/loaders.h"
#include "models/safetensors.h"
#include "models/tokenizer.h"
#include "test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>

namespace fb {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using Bytes = std::string;
using Files = std::map<std::string, Bytes>;  // file name → contents, written into one folder

Bytes read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const fs::path& p, const Bytes& b) { std::ofstream(p, std::ios::binary) << b; }

// ---- seeds -----------------------------------------------------------------------------

// A tiny llama2.c checkpoint: dim 8, hidden 16, 1 layer, 2 heads (1 kv head), vocab 16
// (negative: its own classifier), context 8 — every tensor present, values seeded.
Bytes tiny_llama2c() {
  const int dim = 8, hidden = 16, layers = 1, heads = 2, kv_heads = 1, vocab = 16, seq = 8;
  const int hd = dim / heads, kvd = kv_heads * hd;
  int32_t header[7] = {dim, hidden, layers, heads, kv_heads, -vocab, seq};
  Bytes out(reinterpret_cast<const char*>(header), sizeof header);
  long floats = long(vocab) * dim + layers * (dim + dim * dim + 2L * dim * kvd + dim * dim + dim + 3L * hidden * dim) +
                dim + long(seq) * hd + long(vocab) * dim;
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.f, 0.3f);
  for (long i = 0; i < floats; ++i) {
    float v = n(rng);
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  return out;
}

Bytes tiny_safetensors(const fs::path& tmp) {
  std::vector<float> a(6, 0.5f), b(4, -1.f);
  write_safetensors(tmp, {{"a", {2, 3}, a.data(), "F32"}, {"b", {4}, b.data(), "F16"}});
  return read_bytes(tmp);
}

Files tiny_gpt2() {
  nlohmann::json enc = nlohmann::json::object();
  for (int c = 33; c < 127; ++c) enc[std::string(1, static_cast<char>(c))] = c - 33;
  enc["\xc4\xa0"] = 94;  // 'Ġ' (the byte-level space)
  enc["He"] = 95;
  enc["ll"] = 96;
  enc["Hell"] = 97;
  return {{"encoder.json", enc.dump()}, {"vocab.bpe", "#version: 0.2\nH e\nl l\nHe ll\n"}};
}

Files tiny_tokenizer_json() {
  Files g = tiny_gpt2();
  nlohmann::json merges = {"H e", "l l", "He ll"};
  nlohmann::json tj = {{"model", {{"type", "BPE"}, {"vocab", nlohmann::json::parse(g["encoder.json"])}, {"merges", merges}}}};
  return {{"tokenizer.json", tj.dump()}};
}

// ---- targets ---------------------------------------------------------------------------

struct Target {
  std::string name;
  std::function<Files(const fs::path& scratch)> seeds;
  std::function<void(const fs::path& dir)> parse;  // throws on bad input, never crashes
  bool binary = false;                              // mutate with binary-minded operations
};

// gtest names each parameter by printing it; without this it dumps the struct's raw bytes.
void PrintTo(const Target& t, std::ostream* os) { *os << t.name; }

std::vector<Target> targets() {
  std::vector<Target> t;
  t.push_back({"config_yaml",
               [](const fs::path&) {
                 return Files{{"c.yaml",
                               "name: fuzz\nseeds: [0, 1]\nmodels:\n  - name: m\n    format: llama2c\n"
                               "    path: model.bin\nmethods:\n  - name: fp16\n  - name: rtn\n    w_bits: [4, 8]\n"
                               "    zip:\n      a_bits: [8, 16]\n      kv_bits: [16, 8]\nevaluations:\n"
                               "  - name: ppl\n    max_windows: 2\n  - name: gemm\n    shapes: [[8, 8, 8]]\n"
                               "  - name: selftest\n    metrics: [1, 2]\n"},
                              {"model.bin", "x"}};
               },
               [](const fs::path& d) { load_config(d / "c.yaml", d); }});
  t.push_back({"llama2c", [](const fs::path&) { return Files{{"model.bin", tiny_llama2c()}}; },
               [](const fs::path& d) {
                 Model m = load_llama2c(d / "model.bin");
                 std::vector<int> tokens = {1, 2, 3};
                 if (m.cfg.vocab_size > 3 && m.cfg.max_seq_len >= 3) m.forward(tokens);
               },
               true});
  t.push_back({"safetensors", [](const fs::path& s) { return Files{{"t.safetensors", tiny_safetensors(s / "seed.st")}}; },
               [](const fs::path& d) {
                 SafetensorsFile f(d / "t.safetensors");
                 for (const auto& n : f.names()) {
                   const auto& shape = f.info(n).shape;
                   if (shape.size() == 2) f.matrix(n, shape[0], shape[1]);
                   if (shape.size() == 1) f.vector(n, shape[0]);
                 }
               },
               true});
  t.push_back({"hf_config_json",
               [](const fs::path& s) {
                 write_bytes(s / "m.bin", tiny_llama2c());
                 convert_llama2c_to_hf(s / "m.bin", "", s / "hf");
                 return Files{{"config.json", read_bytes(s / "hf" / "config.json")},
                              {"model.safetensors", read_bytes(s / "hf" / "model.safetensors")}};
               },
               [](const fs::path& d) { load_hf(d); }});
  t.push_back({"gpt2_vocab", [](const fs::path&) { return tiny_gpt2(); },
               [](const fs::path& d) {
                 auto tok = load_gpt2_files(d / "encoder.json", d / "vocab.bpe");
                 tok->decode(tok->encode("Hello world", false));
               }});
  t.push_back({"tokenizer_json", [](const fs::path&) { return tiny_tokenizer_json(); },
               [](const fs::path& d) {
                 auto tok = load_gpt2_tokenizer_json(d / "tokenizer.json");
                 tok->decode(tok->encode("Hello world", false));
               }});
  t.push_back({"sentencepiece",
               [](const fs::path&) {
                 auto real = test::data_dir() / "stories260K" / "tok512.model";
                 return fs::exists(real) ? Files{{"tok.model", read_bytes(real)}} : Files{};
               },
               [](const fs::path& d) {
                 auto tok = load_tokenizer(d / "tok.model");
                 tok->decode(tok->encode("Once upon a time", true));
               },
               true});
  auto task = [&](std::string name, Files seed, std::function<std::vector<TaskDoc>(const fs::path&)> load) {
    t.push_back({"task_" + name, [seed](const fs::path&) { return seed; },
                 [load](const fs::path& d) { load(d); }});
  };
  task("piqa",
       {{"valid.jsonl", R"({"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Kick it."})"
                        "\n"
                        R"({"goal": "Dry hair", "sol1": "Use a towel.", "sol2": "Use soup."})"
                        "\n"},
        {"valid-labels.lst", "0\n0\n"}},
       [](const fs::path& d) { return load_piqa_jsonl(d / "valid.jsonl", 0); });
  task("hellaswag_text", {{"h.txt", "A man sits. He\n0\n stands.\n sits.\n flies.\n eats.\n"
                                    "A cat naps. It\n2\n runs.\n barks.\n wakes.\n sings.\n"}},
       [](const fs::path& d) { return load_hellaswag_text(d / "h.txt", 0); });
  task("openbookqa_tsv",
       {{"test.tsv", "7-980\tThe sun is\t(A) cold (B) hot (C) wet (D) blue\tThe sun is\tB\n"
                     "7-981\tWater is\t(A) dry (B) wet (C) red (D) loud\tWater is\tB\n"}},
       [](const fs::path& d) { return load_openbookqa_tsv(d / "test.tsv", 0); });
  task("arc",
       {{"arc.jsonl",
         R"({"id": "q1", "question": "What is hot?", "choices": {"text": ["ice", "fire"], "label": ["A", "B"]}, "answerKey": "B"})"
         "\n"}},
       [](const fs::path& d) { return load_arc_jsonl(d / "arc.jsonl", 0); });
  task("lambada", {{"l.jsonl", R"({"text": "the cat sat on the mat"})" "\n" R"({"text": "one two three"})" "\n"}},
       [](const fs::path& d) { return load_lambada_jsonl(d / "l.jsonl", 0); });
  task("winogrande",
       {{"w.jsonl", R"({"sentence": "Tom gave Bob a cake because _ was kind.", "option1": "Tom", "option2": "Bob", "answer": "1"})"
                    "\n"}},
       [](const fs::path& d) { return load_winogrande_jsonl(d / "w.jsonl", 0); });
  return t;
}

// ---- mutation ----------------------------------------------------------------------------

Bytes mutate(Bytes b, std::mt19937_64& rng, bool binary) {
  static const char* kTokens[] = {"-1", "0", "99999999999999999999", "1e308", "-1e308", "nan", "\"", "{", "}", "[",
                                  "]", ":", ",", "\n", "\t", " ", "\\u0000", "\xff\xfe", "null", "true", "*&a", "!!"};
  static const int32_t kInts[] = {0, -1, 1, INT_MAX, INT_MIN, 1 << 30, -(1 << 30), 65536, 7};
  auto pos = [&](size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(rng) : 0; };
  int ops = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < ops; ++i) {
    switch (rng() % 7) {
      case 0:  // bit flip
        if (!b.empty()) b[pos(b.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // truncate
        b.resize(pos(b.size() + 1));
        break;
      case 2: {  // delete a range
        size_t at = pos(b.size()), len = std::min(b.size() - at, size_t(1 + rng() % 16));
        b.erase(at, len);
        break;
      }
      case 3: {  // duplicate a range
        size_t at = pos(b.size()), len = std::min(b.size() - at, size_t(1 + rng() % 32));
        b.insert(at, b.substr(at, len));
        break;
      }
      case 4:  // insert an interesting token
        b.insert(pos(b.size() + 1), kTokens[rng() % std::size(kTokens)]);
        break;
      case 5:  // overwrite an aligned int32 (headers, lengths) with an extreme value
        if (b.size() >= 4) {
          int32_t v = kInts[rng() % std::size(kInts)];
          std::memcpy(&b[(pos(b.size() / 4)) * 4], &v, 4);
        }
        break;
      default:  // replace a byte
        if (!b.empty()) b[pos(b.size())] = binary ? static_cast<char>(rng()) : "0-9\"{}[]:, \n"[rng() % 13];
    }
  }
  return b;
}

// ---- running one input -------------------------------------------------------------------

struct Outcome {
  bool ok;
  std::string what;
};

Outcome run_isolated(const Target& t, const fs::path& dir) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);  // a hang is a failure
#if !defined(__SANITIZE_ADDRESS__)
    rlimit as{size_t(6) << 30, size_t(6) << 30};  // so is an allocation sized by a corrupt length field
    setrlimit(RLIMIT_AS, &as);
#endif
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    try {
      t.parse(dir);
    } catch (const std::exception&) {
      _exit(0);  // a clear error is a fine outcome
    } catch (...) {
      _exit(3);  // anything not derived from std::exception carries no message for the user
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status))
    return {false, std::string("killed by signal ") + strsignal(WTERMSIG(status)) +
                       (WTERMSIG(status) == SIGALRM ? " (hang)" : "")};
  if (WEXITSTATUS(status) != 0) return {false, "exit status " + std::to_string(WEXITSTATUS(status))};
  return {true, ""};
}

class Fuzz : public ::testing::TestWithParam<Target> {};

TEST_P(Fuzz, EveryInputEndsInAResultOrAClearError) {
  const Target& t = GetParam();
  TempDir scratch;
  Files seeds = t.seeds(scratch.path);
  if (seeds.empty()) GTEST_SKIP() << t.name << ": seed file not present (real data missing)";

  // The seeds themselves must parse.
  TempDir base;
  for (const auto& [name, bytes] : seeds) write_bytes(base / name, bytes);
  Outcome seed_ok = run_isolated(t, base.path);
  ASSERT_TRUE(seed_ok.ok) << t.name << " seed: " << seed_ok.what;

  std::vector<std::pair<std::string, Bytes>> inputs;  // (seed file replaced, contents)
  fs::path corpus = fs::path(FLATBENCH_SOURCE_ROOT) / "tests" / "fuzz_corpus" / t.name;
  if (fs::exists(corpus))
    for (const auto& e : fs::directory_iterator(corpus))
      inputs.push_back({e.path().stem().string(), read_bytes(e.path())});
  const size_t from_corpus = inputs.size();
  int iters = std::getenv("FLATBENCH_FUZZ_ITERS") ? std::atoi(std::getenv("FLATBENCH_FUZZ_ITERS")) : 40;
  std::mt19937_64 rng(std::hash<std::string>{}(t.name));
  for (int i = 0; i < iters; ++i) {
    auto it = seeds.begin();
    std::advance(it, rng() % seeds.size());
    inputs.push_back({it->first, mutate(it->second, rng, t.binary)});
  }
  if (const char* out = std::getenv("FLATBENCH_FUZZ_EXPORT")) {
    fs::create_directories(fs::path(out) / t.name);
    for (size_t i = from_corpus; i < inputs.size(); ++i)
      write_bytes(fs::path(out) / t.name / (inputs[i].first + "." + std::to_string(i - from_corpus)), inputs[i].second);
  }

  int failures = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    TempDir dir;
    for (const auto& [name, bytes] : seeds) write_bytes(dir / name, bytes);
    write_bytes(dir / inputs[i].first, inputs[i].second);
    Outcome o = run_isolated(t, dir.path);
    if (o.ok) continue;
    ++failures;
    fs::path keep = fs::temp_directory_path() / ("flatbench-fuzz-" + t.name + "-" + std::to_string(i));
    fs::create_directories(keep);
    write_bytes(keep / inputs[i].first, inputs[i].second);
    ADD_FAILURE() << t.name << " input " << i << (i < from_corpus ? " (corpus)" : " (fresh)") << ": " << o.what
                  << "; input kept at " << keep;
  }
  std::cout << "[ info ] " << t.name << ": " << inputs.size() << " inputs (" << from_corpus << " from the corpus), "
            << failures << " crashes or hangs\n";
}

INSTANTIATE_TEST_SUITE_P(Parsers, Fuzz, ::testing::ValuesIn(targets()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace fb

// The real stories260K model: llama2.c loader, greedy decoding against llama2.c's own
// output, the llama2c → Hugging Face conversion round trip, malformed checkpoints.
#include "models/convert.h"
#include "models/loaders.h"
#include "models/reference_forward.h"
#include "models/source.h"
#include "test_util.h"

#include <cctype>
#include <fstream>
#include <sstream>

namespace fb {
namespace {

namespace fs = std::filesystem;

const char* kBin = "stories260K/stories260K.bin";
const char* kTok = "stories260K/tok512.model";

LoadedModel load_stories() {
  return load_model({"", "llama2c", {{"path", kBin}, {"tokenizer", kTok}}}, test::data_dir());
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int argmax_last_row(const Mat& logits) {
  Eigen::Index best;
  logits.row(logits.rows() - 1).maxCoeff(&best);
  return int(best);
}

// run.c's safe_printf: a single-byte piece that is neither printable nor whitespace is dropped.
std::string safe_piece(const std::string& p) {
  if (p.size() == 1 && !std::isprint(static_cast<unsigned char>(p[0])) && !std::isspace(static_cast<unsigned char>(p[0])))
    return "";
  return p;
}

TEST(ModelLlama2c, LoadsStories260KHeader) {
  FB_REQUIRE_DATA(kBin);
  const LoadedModel lm = load_stories();
  const ModelConfig& c = lm.model.cfg;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tied_classifier);
  EXPECT_FALSE(c.synthetic);
  ASSERT_TRUE(lm.tokenizer);
  EXPECT_EQ(lm.tokenizer->vocab_size(), 512);
  EXPECT_EQ(lm.files.size(), 2u);
  // Every float of the body is a parameter except freq_cis (skipped): 28-byte header.
  const long body_floats = long(fs::file_size(test::data_dir() / kBin) - 28) / 4;
  EXPECT_EQ(lm.model.parameter_count(), body_floats - 512L * 8 / 2 * 2);
}

TEST(ModelLlama2c, GreedyDecodingMatchesLlama2cRunC) {
  FB_REQUIRE_DATA(kBin);
  FB_REQUIRE_DATA("stories260K/greedy_t0_n256.expected.txt");
  const LoadedModel lm = load_stories();
  const Tokenizer& tok = *lm.tokenizer;
  std::vector<int> tokens = {tok.bos_id()};
  std::string text;
  // run.c: 256 forward steps from BOS, stop early if BOS is sampled, newline at the end.
  for (int step = 0; step < 256; ++step) {
    const int next = argmax_last_row(lm.model.forward(tokens));
    if (next == tok.bos_id()) break;
    text += safe_piece(tok.piece(tokens.back(), next));
    tokens.push_back(next);
  }
  text += "\n";
  EXPECT_EQ(text, read_file(test::data_dir() / "stories260K/greedy_t0_n256.expected.txt"));
}

TEST(ModelLlama2c, FastForwardMatchesReferenceOnRealWeights) {
  FB_REQUIRE_DATA(kBin);
  const LoadedModel lm = load_stories();
  const std::vector<int> tokens = lm.tokenizer->encode("Once upon a time, a little dog found a red ball.", true);
  const Mat fast = lm.model.forward(tokens), ref = reference_forward(lm.model, tokens);
  EXPECT_LE((fast - ref).cwiseAbs().maxCoeff() / ref.cwiseAbs().maxCoeff(), 1e-5);
}

TEST(ModelLlama2c, ConvertedHuggingFaceFolderGivesIdenticalLogits) {
  FB_REQUIRE_DATA(kBin);
  test::TempDir tmp;
  const fs::path out = tmp / "stories-hf";
  convert_llama2c_to_hf(test::data_dir() / kBin, test::data_dir() / kTok, out);
  ASSERT_TRUE(fs::exists(out / "config.json"));
  ASSERT_TRUE(fs::exists(out / "model.safetensors"));
  ASSERT_TRUE(fs::exists(out / "tokenizer.model"));

  const LoadedModel a = load_stories();
  const LoadedModel b = load_model({"", "hf", {{"path", out.string()}}}, test::data_dir());
  ASSERT_TRUE(b.tokenizer);
  const std::string text = "Tom and Lily went to the park. They saw a big tree.";
  const std::vector<int> tokens = a.tokenizer->encode(text, true);
  EXPECT_EQ(tokens, b.tokenizer->encode(text, true));
  EXPECT_EQ(b.model.cfg.n_kv_heads, 4);
  // Same weights after permuting q/k both ways: bit-identical logits.
  const Mat la = a.model.forward(tokens), lb = b.model.forward(tokens);
  EXPECT_EQ((la - lb).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(ModelLlama2c, QkPermutationRoundTripsAndIsNotIdentity) {
  Mat w(16, 3);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = float(i);
  const Mat hf = interleaved_rows_to_hf(w, 2, 8);
  EXPECT_NE((hf - w).cwiseAbs().maxCoeff(), 0.0f);
  EXPECT_EQ(hf_rows_to_interleaved(hf, 2, 8), w);
  // Head 0, pair j=1: interleaved rows 2 (real) and 3 (imag) sit at HF rows 1 and 5.
  EXPECT_EQ(hf.row(1), w.row(2));
  EXPECT_EQ(hf.row(5), w.row(3));
}

// ---- malformed checkpoints -------------------------------------------------------------

void write_bytes(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

std::string header_bytes(std::initializer_list<int32_t> h) {
  std::string s;
  for (int32_t v : h) s.append(reinterpret_cast<const char*>(&v), 4);
  return s;
}

std::string load_error(const fs::path& p) {
  try {
    load_llama2c(p);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(ModelLlama2c, TruncatedCheckpointNamesFileAndSizes) {
  FB_REQUIRE_DATA(kBin);
  test::TempDir tmp;
  const std::string full = read_file(test::data_dir() / kBin);
  write_bytes(tmp / "cut.bin", full.substr(0, full.size() - 100));
  const std::string err = load_error(tmp / "cut.bin");
  EXPECT_NE(err.find("cut.bin"), std::string::npos) << err;
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
}

TEST(ModelLlama2c, MalformedHeadersAreRejected) {
  test::TempDir tmp;
  write_bytes(tmp / "short.bin", "abc");
  EXPECT_NE(load_error(tmp / "short.bin").find("too short for the 28-byte llama2.c header"), std::string::npos);

  write_bytes(tmp / "heads.bin", header_bytes({64, 172, 5, 7, 4, 512, 512}));
  EXPECT_NE(load_error(tmp / "heads.bin").find("not a multiple of n_heads"), std::string::npos);

  write_bytes(tmp / "neg.bin", header_bytes({64, 172, -5, 8, 4, 512, 512}));
  EXPECT_NE(load_error(tmp / "neg.bin").find("n_layers = -5 must be positive"), std::string::npos);

  // A valid header for a tiny model followed by too many floats.
  std::string extra = header_bytes({4, 4, 1, 2, 2, 3, 2}) + std::string(4 * 1000, '\0');
  write_bytes(tmp / "long.bin", extra);
  EXPECT_NE(load_error(tmp / "long.bin").find("more than the header implies"), std::string::npos);

  EXPECT_NE(load_error(tmp / "absent.bin").find("cannot open"), std::string::npos);
}

TEST(ModelLlama2c, UnsharedClassifierIsRead) {
  // dim 4, hidden 4, 1 layer, 2 heads, 2 kv heads, vocab -3 (separate classifier), seq 2.
  test::TempDir tmp;
  const int d = 4, f = 4, v = 3, seq = 2, hd = 2;
  const int n = v * d + (d + d * d + 2 * d * d + d * d + d + 3 * f * d) + d + seq * hd + v * d;
  std::string body;
  for (int i = 0; i < n; ++i) {
    float x = 0.01f * float(i);
    body.append(reinterpret_cast<const char*>(&x), 4);
  }
  write_bytes(tmp / "untied.bin", header_bytes({d, f, 1, 2, 2, -v, seq}) + body);
  const Model m = load_llama2c(tmp / "untied.bin");
  EXPECT_FALSE(m.cfg.tied_classifier);
  ASSERT_EQ(m.classifier.rows(), v);
  EXPECT_FLOAT_EQ(m.classifier(v - 1, d - 1), 0.01f * float(n - 1));  // the last float of the file
  EXPECT_FLOAT_EQ(m.final_norm.gamma[0], 0.01f * float(n - v * d - seq * hd - d));
}

}  // namespace
}  // namespace fb

// Tokenizers on the real vocabularies: GPT-2 byte-level BPE (expected ids computed with
// OpenAI's encoder.py algorithm, independently of this implementation) and SentencePiece
// (stories260K's tok512, LLaMA-2's tokenizer.model).
#include "models/gpt2_tokenizer.h"
#include "models/tokenizer.h"
#include "test_util.h"

#include <nlohmann/json.hpp>

#include <fstream>

namespace fb {
namespace {

namespace fs = std::filesystem;
const char* kGpt2 = "gpt2_tokenizer/encoder.json";

std::unique_ptr<Tokenizer> gpt2() { return load_tokenizer(test::data_dir() / "gpt2_tokenizer"); }

struct Case {
  std::string text;
  std::vector<int> ids;
};

// Expected ids from OpenAI's GPT-2 encoder.py (bytes_to_unicode + bpe + the regex).
const std::vector<Case> kGpt2Cases = {
    {"Hello world", {15496, 995}},
    {"I'm here, don't you've they'll we'd she's it'S",
     {40, 1101, 994, 11, 836, 470, 345, 1053, 484, 1183, 356, 1549, 673, 338, 340, 6, 50}},
    {"The year 2024 had 365 days and 12345678 seconds.",
     {464, 614, 48609, 550, 21268, 1528, 290, 17031, 2231, 30924, 4201, 13}},
    {"a  b   c    \n\n  d", {64, 220, 275, 220, 220, 269, 220, 220, 220, 220, 628, 220, 288}},
    {"Café naïve résumé — “quotes” 日本語 😀",
     {34, 1878, 2634, 41492, 40560, 16345, 2634, 851, 564, 250, 421, 6421, 447, 251, 10545, 245, 98, 17312, 105, 45739,
      252, 30325, 222}},
    {" leading space and trailing   ", {3756, 2272, 290, 25462, 220, 220, 220}},
    {"snake_case_name foo__bar", {16184, 539, 62, 7442, 62, 3672, 22944, 834, 5657}},
    {"Hello\tworld\r\n", {15496, 197, 6894, 201, 198}},
    {"\n\nHello", {198, 198, 15496}},
};

TEST(TokenizerGpt2, RealVocabularyMatchesReferenceEncoder) {
  FB_REQUIRE_DATA(kGpt2);
  const auto tok = gpt2();
  EXPECT_EQ(tok->vocab_size(), 50257);
  for (const Case& c : kGpt2Cases) {
    EXPECT_EQ(tok->encode(c.text, false), c.ids) << c.text;
    EXPECT_EQ(tok->decode(c.ids), c.text) << "round trip of " << c.text;
  }
}

TEST(TokenizerGpt2, NoBosForGpt2ButEos) {
  FB_REQUIRE_DATA(kGpt2);
  const auto tok = gpt2();
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_EQ(tok->encode("Hello world", true), (std::vector<int>{15496, 995}));
  EXPECT_EQ(tok->piece(15496, 995), " world");
}

TEST(TokenizerGpt2, PretokenizerFollowsTheRegex) {
  using V = std::vector<std::string>;
  EXPECT_EQ(gpt2_pretokenize("a  b   c    \n\n  d"), (V{"a", " ", " b", "  ", " c", "    \n\n ", " d"}));
  EXPECT_EQ(gpt2_pretokenize("don't?!'s"), (V{"don", "'t", "?!'", "s"}));
  EXPECT_EQ(gpt2_pretokenize("x² 3½"), (V{"x", "²", " 3½"}));          // No-category numbers
  EXPECT_EQ(gpt2_pretokenize(" \u00a0end"), (V{" ", "\u00a0", "end"}));  // NBSP is whitespace, not ' '
  EXPECT_EQ(gpt2_pretokenize("Привет, мир"), (V{"Привет", ",", " мир"}));
  EXPECT_EQ(gpt2_pretokenize(""), V{});
}

TEST(TokenizerGpt2, UnicodeClasses) {
  EXPECT_EQ(unicode_class(U'é'), CharClass::letter);
  EXPECT_EQ(unicode_class(U'日'), CharClass::letter);
  EXPECT_EQ(unicode_class(U'٣'), CharClass::number);
  EXPECT_EQ(unicode_class(U'—'), CharClass::other);
  EXPECT_EQ(unicode_class(U'€'), CharClass::other);
  EXPECT_EQ(unicode_class(0x1F600), CharClass::other);  // emoji
  EXPECT_EQ(unicode_class(0x3000), CharClass::space);
  EXPECT_EQ(unicode_class(U'_'), CharClass::other);
}

// OPT's vocab.json holds </s>, which its tokenizer prepends as BOS.
TEST(TokenizerGpt2, OptStyleVocabAddsSlashSAsBos) {
  FB_REQUIRE_DATA(kGpt2);
  test::TempDir tmp;
  nlohmann::json vocab;
  std::ifstream(test::data_dir() / kGpt2) >> vocab;
  vocab["</s>"] = 50257;
  std::ofstream(tmp / "vocab.json") << vocab.dump();
  fs::copy_file(test::data_dir() / "gpt2_tokenizer/vocab.bpe", tmp / "merges.txt");
  const auto tok = load_tokenizer(tmp.path);
  EXPECT_EQ(tok->bos_id(), 50257);
  EXPECT_EQ(tok->encode("Hello world", true), (std::vector<int>{50257, 15496, 995}));
}

TEST(TokenizerGpt2, TokenizerJsonGivesSameIds) {
  FB_REQUIRE_DATA(kGpt2);
  test::TempDir tmp;
  nlohmann::json vocab;
  std::ifstream(test::data_dir() / kGpt2) >> vocab;
  nlohmann::json merges = nlohmann::json::array();
  std::ifstream bpe(test::data_dir() / "gpt2_tokenizer/vocab.bpe");
  for (std::string line; std::getline(bpe, line);)
    if (!line.empty() && line[0] != '#') merges.push_back(line);
  nlohmann::json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
                       {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}}};
  std::ofstream(tmp / "tokenizer.json") << tj.dump();
  const auto tok = load_tokenizer(tmp / "tokenizer.json");
  for (const Case& c : kGpt2Cases) EXPECT_EQ(tok->encode(c.text, false), c.ids) << c.text;
}

TEST(TokenizerLoad, ErrorsNameTheFile) {
  test::TempDir tmp;
  try {
    load_tokenizer(tmp.path);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no tokenizer found"), std::string::npos) << e.what();
  }
  std::ofstream(tmp / "broken.model") << "not a protobuf";
  try {
    load_tokenizer(tmp / "broken.model");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.model"), std::string::npos) << e.what();
  }
  std::ofstream(tmp / "tokenizer.json") << "{\"model\": ";
  try {
    load_tokenizer(tmp / "tokenizer.json");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
  }
}

TEST(TokenizerSentencePiece, Stories260KRoundTripAndPieces) {
  FB_REQUIRE_DATA("stories260K/tok512.model");
  const auto tok = load_tokenizer(test::data_dir() / "stories260K/tok512.model");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const std::string text = "Once upon a time, there was a little girl.\nShe was happy.";
  const std::vector<int> ids = tok->encode(text, true);
  ASSERT_GT(ids.size(), 5u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(tok->decode(ids), text);
  // llama2.c's decode: the first piece after BOS loses its leading space; later ones keep it.
  EXPECT_EQ(tok->piece(1, ids[1]), "Once");
  EXPECT_EQ(tok->piece(ids[1], ids[1]), " Once");
  // Newline is a byte-fallback piece <0x0A>, printed as the byte.
  const std::vector<int> nl = tok->encode("\n", false);
  ASSERT_FALSE(nl.empty());
  EXPECT_EQ(tok->piece(ids[1], nl.back()), "\n");
}

TEST(TokenizerSentencePiece, Llama2Tokenizer) {
  FB_REQUIRE_DATA("llama_tokenizer/tokenizer.model");
  const auto tok = load_tokenizer(test::data_dir() / "llama_tokenizer");
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->encode("Hello world", true), (std::vector<int>{1, 15043, 3186}));
}

}  // namespace
}  // namespace fb

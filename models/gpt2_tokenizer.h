// GPT-2 byte-level BPE (OPT, GPT-2): pre-tokenisation by GPT-2's regex, written by hand,
// then byte-pair merges by rank on the byte-to-unicode alphabet.
//
// The pattern is 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+.
// Unicode categories come from a compact table (models/unicode_class.cpp): exact for ASCII,
// Latin, Greek, Cyrillic, CJK, general punctuation, symbols and emoji. Approximation:
// combining marks inside Indic / South-East-Asian scripts count as letters (the real \p{L}
// excludes Mn/Mc, which would split such words at each mark).
#pragma once

#include "models/tokenizer.h"

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fb {

enum class CharClass { letter, number, space, other };
CharClass unicode_class(char32_t cp);

// The pieces GPT-2's regex cuts `text` into (UTF-8, in order; concatenated they give text).
std::vector<std::string> gpt2_pretokenize(std::string_view text);

struct Gpt2Vocab {
  std::unordered_map<std::string, int> token_to_id;  // byte-to-unicode strings → id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  int bos = -1, eos = -1;
  bool add_bos = false;
  std::string source;  // file name(s), for error messages
};

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(Gpt2Vocab vocab);

// encoder.json / vocab.json + vocab.bpe / merges.txt. BOS/EOS from tokenizer_config.json
// beside them when present; otherwise OPT's rule (</s> is BOS and EOS, added) when the vocab
// has </s>, else GPT-2's (no BOS; EOS <|endoftext|>).
std::unique_ptr<Tokenizer> load_gpt2_files(const std::filesystem::path& vocab_json,
                                           const std::filesystem::path& merges_txt);
// A Hugging Face tokenizer.json with a BPE model and a ByteLevel pre-tokenizer.
std::unique_ptr<Tokenizer> load_gpt2_tokenizer_json(const std::filesystem::path& tokenizer_json);

}  // namespace fb

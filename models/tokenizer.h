// Tokenizers: SentencePiece (LLaMA family, stories260K) and GPT-2 byte-level BPE (OPT).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fb {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Encodes text; add_bos prepends the model's BOS when the tokenizer has one
  // (HF default: LLaMA <s>, OPT </s>).
  virtual std::vector<int> encode(std::string_view text, bool add_bos) const = 0;
  virtual std::string decode(const std::vector<int>& ids) const = 0;
  // The text piece of one token as llama2.c prints it after `prev` (leading space rules).
  virtual std::string piece(int prev, int id) const = 0;
  virtual int bos_id() const = 0;  // -1 when none
  virtual int eos_id() const = 0;
  virtual int vocab_size() const = 0;
};

// Picks the tokenizer by file: *.model → SentencePiece; a folder or vocab.json/encoder.json +
// merges.txt/vocab.bpe → GPT-2 BPE; tokenizer.json → GPT-2 BPE read from it.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);
// The files load_tokenizer(path) reads (a folder resolved as it would be); throws like it.
std::vector<std::filesystem::path> tokenizer_files(const std::filesystem::path& path);

}  // namespace fb

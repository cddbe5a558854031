// SentencePiece tokenizers (through libsentencepiece) and the file-based dispatch of
// load_tokenizer. GPT-2 byte-level BPE lives in gpt2_tokenizer.cpp.
#include "models/tokenizer.h"

#include "models/gpt2_tokenizer.h"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <stdexcept>

namespace fb {
namespace {

namespace fs = std::filesystem;

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const fs::path& file) {
    if (!fs::is_regular_file(file)) throw std::runtime_error(file.string() + ": SentencePiece model not found");
    const auto status = sp_.Load(file.string());
    if (!status.ok()) throw std::runtime_error(file.string() + ": not a SentencePiece model (" + status.ToString() + ")");
    build_pieces();
  }

  std::vector<int> encode(std::string_view text, bool add_bos) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(std::string(text), &ids);
    if (!status.ok()) throw std::runtime_error("SentencePiece encode failed: " + status.ToString());
    if (add_bos && bos_id() >= 0) ids.insert(ids.begin(), bos_id());
    return ids;
  }

  std::string decode(const std::vector<int>& ids) const override {
    std::string out;
    const auto status = sp_.Decode(ids, &out);
    if (!status.ok()) throw std::runtime_error("SentencePiece decode failed: " + status.ToString());
    return out;
  }

  // llama2.c's decode(): the stored piece ('▁' as ' ', <s>/</s> wrapped in newlines),
  // the leading space dropped right after BOS, and <0xXX> byte pieces as that raw byte.
  std::string piece(int prev, int id) const override {
    if (id < 0 || id >= vocab_size()) throw std::out_of_range("SentencePiece: token id out of range");
    const std::string& p = pieces_[size_t(id)];
    if (sp_.IsByte(id)) {
      unsigned byte = 0;
      if (std::sscanf(sp_.IdToPiece(id).c_str(), "<0x%02X>", &byte) == 1) return std::string(1, char(byte));
    }
    if (prev == bos_id() && !p.empty() && p[0] == ' ') return p.substr(1);
    return p;
  }

  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }
  int vocab_size() const override { return sp_.GetPieceSize(); }

 private:
  void build_pieces() {
    static const std::string kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'
    pieces_.resize(size_t(vocab_size()));
    for (int i = 0; i < vocab_size(); ++i) {
      std::string p = sp_.IdToPiece(i);
      if (i == bos_id()) p = "\n<s>\n";
      if (i == eos_id()) p = "\n</s>\n";
      for (size_t at; (at = p.find(kSpaceMark)) != std::string::npos;) p.replace(at, kSpaceMark.size(), " ");
      pieces_[size_t(i)] = std::move(p);
    }
  }

  sentencepiece::SentencePieceProcessor sp_;
  std::vector<std::string> pieces_;
};

fs::path first_existing(const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (fs::exists(dir / n)) return dir / n;
  return {};
}

// Which tokenizer a path names and the files it is read from: one resolution for loading and
// for fingerprinting (tokenizer_files), so the job key covers exactly what is read.
struct ResolvedTokenizer {
  enum Kind { sentencepiece, gpt2_pair, gpt2_json } kind;
  std::vector<fs::path> files;  // gpt2_pair: vocab, merges
};

ResolvedTokenizer resolve_folder(const fs::path& dir) {
  if (auto sp = first_existing(dir, {"tokenizer.model"}); !sp.empty()) return {ResolvedTokenizer::sentencepiece, {sp}};
  auto vocab = first_existing(dir, {"vocab.json", "encoder.json"});
  auto merges = first_existing(dir, {"merges.txt", "vocab.bpe"});
  if (!vocab.empty() && !merges.empty()) return {ResolvedTokenizer::gpt2_pair, {vocab, merges}};
  if (auto tj = first_existing(dir, {"tokenizer.json"}); !tj.empty()) return {ResolvedTokenizer::gpt2_json, {tj}};
  throw std::runtime_error(dir.string() +
                           ": no tokenizer found (expected tokenizer.model, vocab.json + merges.txt, "
                           "encoder.json + vocab.bpe, or tokenizer.json)");
}

// GPT-2 style tokenizers also read tokenizer_config.json beside them for BOS / EOS / add_bos
// (models/gpt2_tokenizer.cpp): it belongs to what the tokenizer reads.
ResolvedTokenizer with_tokenizer_config(ResolvedTokenizer r) {
  if (r.kind == ResolvedTokenizer::sentencepiece) return r;
  const fs::path cfg = r.files[0].parent_path() / "tokenizer_config.json";
  if (fs::is_regular_file(cfg)) r.files.push_back(cfg);
  return r;
}

ResolvedTokenizer resolve_tokenizer_alone(const fs::path& path) {
  if (fs::is_directory(path)) return resolve_folder(path);
  if (!fs::exists(path)) throw std::runtime_error(path.string() + ": tokenizer file not found");
  const std::string name = path.filename().string();
  if (path.extension() == ".model") return {ResolvedTokenizer::sentencepiece, {path}};
  if (name == "tokenizer.json") return {ResolvedTokenizer::gpt2_json, {path}};
  if (name == "vocab.json" || name == "encoder.json") {
    auto merges = first_existing(path.parent_path(), {"merges.txt", "vocab.bpe"});
    if (merges.empty()) throw std::runtime_error(path.string() + ": no merges.txt or vocab.bpe beside it");
    return {ResolvedTokenizer::gpt2_pair, {path, merges}};
  }
  throw std::runtime_error(path.string() + ": unrecognised tokenizer file (expected *.model, tokenizer.json, "
                                           "vocab.json or encoder.json, or a folder holding them)");
}

ResolvedTokenizer resolve_tokenizer(const fs::path& path) { return with_tokenizer_config(resolve_tokenizer_alone(path)); }

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  const ResolvedTokenizer r = resolve_tokenizer(path);
  switch (r.kind) {
    case ResolvedTokenizer::sentencepiece: return std::make_unique<SentencePieceTokenizer>(r.files[0]);
    case ResolvedTokenizer::gpt2_pair: return load_gpt2_files(r.files[0], r.files[1]);
    case ResolvedTokenizer::gpt2_json: return load_gpt2_tokenizer_json(r.files[0]);
  }
  throw std::logic_error("load_tokenizer: unhandled tokenizer kind");
}

std::vector<fs::path> tokenizer_files(const fs::path& path) { return resolve_tokenizer(path).files; }

}  // namespace fb

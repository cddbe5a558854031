#include "models/gpt2_tokenizer.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fb {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// ---- UTF-8 -------------------------------------------------------------------------------

// Decodes the code point at text[i]; sets len to its byte count. Invalid bytes decode as
// themselves (length 1) so that any byte string survives the round trip.
char32_t utf8_at(std::string_view s, size_t i, size_t& len) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  auto cont = [&](size_t k) { return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80; };
  auto cb = [&](size_t k) { return char32_t(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  if (b0 < 0x80) return len = 1, b0;
  if ((b0 & 0xE0) == 0xC0 && cont(1)) return len = 2, (char32_t(b0 & 0x1F) << 6) | cb(1);
  if ((b0 & 0xF0) == 0xE0 && cont(1) && cont(2)) return len = 3, (char32_t(b0 & 0x0F) << 12) | (cb(1) << 6) | cb(2);
  if ((b0 & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3))
    return len = 4, (char32_t(b0 & 0x07) << 18) | (cb(1) << 12) | (cb(2) << 6) | cb(3);
  return len = 1, char32_t(0xFFFD);  // a stray byte: classified like U+FFFD (other)
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

struct Char {
  size_t pos, len;
  CharClass cls;
  char32_t cp;
};

std::vector<Char> classify(std::string_view text) {
  std::vector<Char> out;
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    const char32_t cp = utf8_at(text, i, len);
    out.push_back({i, len, unicode_class(cp), cp});
    i += len;
  }
  return out;
}

// Length (in chars) of a contraction 's 't 're 've 'm 'll 'd starting at c[i], or 0.
size_t contraction_at(const std::vector<Char>& c, size_t i) {
  if (c[i].cp != '\'' || i + 1 >= c.size()) return 0;
  const char32_t a = c[i + 1].cp, b = i + 2 < c.size() ? c[i + 2].cp : 0;
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

size_t run_of(const std::vector<Char>& c, size_t i, auto pred) {
  size_t j = i;
  while (j < c.size() && pred(c[j].cls)) ++j;
  return j - i;
}

// Length in chars of the regex match starting at c[i] (always ≥ 1).
size_t match_at(const std::vector<Char>& c, size_t i) {
  if (size_t n = contraction_at(c, i)) return n;
  // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional literal space, then a run.
  const size_t lead = (c[i].cp == ' ' && i + 1 < c.size()) ? 1 : 0;
  const CharClass first = c[i + lead].cls;
  if (first != CharClass::space) return lead + run_of(c, i + lead, [first](CharClass k) { return k == first; });
  // "\s+(?!\S)" then "\s+": a whitespace run, leaving its last char to the next word when
  // a non-space follows and the run is longer than one.
  const size_t run = run_of(c, i, [](CharClass k) { return k == CharClass::space; });
  const bool at_end = i + run == c.size();
  return (at_end || run == 1) ? run : run - 1;
}

// ---- byte-level alphabet -----------------------------------------------------------------

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n.
struct ByteAlphabet {
  std::string byte_to_utf8[256];
  std::unordered_map<char32_t, unsigned char> cp_to_byte;
  ByteAlphabet() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const char32_t cp = printable ? char32_t(b) : char32_t(256 + n++);
      append_utf8(byte_to_utf8[b], cp);
      cp_to_byte[cp] = static_cast<unsigned char>(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// Splits a byte-level string into its symbols (one UTF-8 char each).
std::vector<std::string> symbols_of(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    utf8_at(s, i, len);
    out.emplace_back(s.substr(i, len));
    i += len;
  }
  return out;
}

class Gpt2Tokenizer final : public Tokenizer {
 public:
  explicit Gpt2Tokenizer(Gpt2Vocab v) : v_(std::move(v)) {
    for (size_t r = 0; r < v_.merges.size(); ++r) rank_.emplace(v_.merges[r].first + ' ' + v_.merges[r].second, int(r));
    int max_id = -1;
    for (const auto& [tok, id] : v_.token_to_id) max_id = std::max(max_id, id);
    id_to_token_.resize(size_t(max_id + 1));
    for (const auto& [tok, id] : v_.token_to_id) id_to_token_[size_t(id)] = tok;
  }

  std::vector<int> encode(std::string_view text, bool add_bos) const override {
    std::vector<int> ids;
    if (add_bos && v_.add_bos && v_.bos >= 0) ids.push_back(v_.bos);
    std::unordered_map<std::string, std::vector<int>> cache;  // per call: encode stays thread-safe
    for (const std::string& word : gpt2_pretokenize(text)) {
      auto it = cache.find(word);
      if (it == cache.end()) it = cache.emplace(word, bpe(word)).first;
      ids.insert(ids.end(), it->second.begin(), it->second.end());
    }
    return ids;
  }

  std::string decode(const std::vector<int>& ids) const override {
    std::string out;
    for (int id : ids) out += token_bytes(id);
    return out;
  }
  std::string piece(int prev, int id) const override { return token_bytes(id); }
  int bos_id() const override { return v_.add_bos ? v_.bos : -1; }
  int eos_id() const override { return v_.eos; }
  int vocab_size() const override { return int(id_to_token_.size()); }

 private:
  // Byte-pair merges on one pre-token, lowest rank first, until no pair has a rank.
  std::vector<int> bpe(const std::string& word) const {
    std::string mapped;
    for (unsigned char b : word) mapped += alphabet().byte_to_utf8[b];
    std::vector<std::string> parts = symbols_of(mapped);
    while (parts.size() > 1) {
      int best = INT_MAX;
      size_t at = 0;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        auto r = rank_.find(parts[i] + ' ' + parts[i + 1]);
        if (r != rank_.end() && r->second < best) best = r->second, at = i;
      }
      if (best == INT_MAX) break;
      const std::string a = parts[at], b = parts[at + 1];
      std::vector<std::string> merged;
      for (size_t i = 0; i < parts.size();) {
        if (i + 1 < parts.size() && parts[i] == a && parts[i + 1] == b) {
          merged.push_back(a + b);
          i += 2;
        } else {
          merged.push_back(parts[i++]);
        }
      }
      parts.swap(merged);
    }
    std::vector<int> ids;
    for (const std::string& p : parts) {
      auto it = v_.token_to_id.find(p);
      if (it == v_.token_to_id.end())
        throw std::runtime_error(v_.source + ": BPE produced a symbol missing from the vocabulary: '" + p + "'");
      ids.push_back(it->second);
    }
    return ids;
  }

  std::string token_bytes(int id) const {
    if (id < 0 || id >= int(id_to_token_.size())) throw std::out_of_range("GPT-2 tokenizer: token id out of range");
    const std::string& tok = id_to_token_[size_t(id)];
    std::string out;
    for (size_t i = 0; i < tok.size();) {
      size_t len = 1;
      const char32_t cp = utf8_at(tok, i, len);
      auto it = alphabet().cp_to_byte.find(cp);
      if (it != alphabet().cp_to_byte.end())
        out += char(it->second);
      else
        out.append(tok, i, len);  // added tokens may hold characters outside the alphabet
      i += len;
    }
    return out;
  }

  Gpt2Vocab v_;
  std::unordered_map<std::string, int> rank_;
  std::vector<std::string> id_to_token_;
};

json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error(p.string() + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error(p.string() + ": invalid JSON: " + e.what());
  }
}

std::string token_content(const json& t) {
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content")) return t["content"].get<std::string>();
  return {};
}

// BOS/EOS: tokenizer_config.json when present, else OPT's or GPT-2's convention.
void choose_special_tokens(Gpt2Vocab& v, const fs::path& dir) {
  auto id_of = [&](const std::string& tok) {
    auto it = v.token_to_id.find(tok);
    return it == v.token_to_id.end() ? -1 : it->second;
  };
  if (id_of("</s>") >= 0) {
    v.bos = v.eos = id_of("</s>");
    v.add_bos = true;
  } else {
    v.eos = id_of("<|endoftext|>");
    v.bos = v.eos;
    v.add_bos = false;
  }
  const fs::path cfg_path = dir / "tokenizer_config.json";
  if (!fs::exists(cfg_path)) return;
  const json cfg = read_json(cfg_path);
  if (cfg.contains("bos_token") && id_of(token_content(cfg["bos_token"])) >= 0) v.bos = id_of(token_content(cfg["bos_token"]));
  if (cfg.contains("eos_token") && id_of(token_content(cfg["eos_token"])) >= 0) v.eos = id_of(token_content(cfg["eos_token"]));
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) v.add_bos = cfg["add_bos_token"].get<bool>();
}

std::pair<std::string, std::string> split_merge(const std::string& line, const fs::path& file, size_t lineno) {
  const size_t sp = line.find(' ');
  if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size())
    throw std::runtime_error(file.string() + ": line " + std::to_string(lineno) + " is not a merge 'a b': '" + line + "'");
  return {line.substr(0, sp), line.substr(sp + 1)};
}

}  // namespace

std::vector<std::string> gpt2_pretokenize(std::string_view text) {
  const std::vector<Char> c = classify(text);
  std::vector<std::string> out;
  for (size_t i = 0; i < c.size();) {
    const size_t n = match_at(c, i);
    const size_t begin = c[i].pos, end = c[i + n - 1].pos + c[i + n - 1].len;
    out.emplace_back(text.substr(begin, end - begin));
    i += n;
  }
  return out;
}

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(Gpt2Vocab vocab) {
  return std::make_unique<Gpt2Tokenizer>(std::move(vocab));
}

std::unique_ptr<Tokenizer> load_gpt2_files(const fs::path& vocab_json, const fs::path& merges_txt) {
  Gpt2Vocab v;
  v.source = vocab_json.string();
  const json enc = read_json(vocab_json);
  if (!enc.is_object() || enc.empty()) throw std::runtime_error(vocab_json.string() + ": expected a JSON object token → id");
  for (const auto& [tok, id] : enc.items()) {
    if (!id.is_number_integer() || id.get<long>() < 0)
      throw std::runtime_error(vocab_json.string() + ": id of token '" + tok + "' is not a non-negative integer");
    v.token_to_id.emplace(tok, id.get<int>());
  }
  std::ifstream in(merges_txt);
  if (!in) throw std::runtime_error(merges_txt.string() + ": cannot open");
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    v.merges.push_back(split_merge(line, merges_txt, lineno));
  }
  if (v.merges.empty()) throw std::runtime_error(merges_txt.string() + ": no merges found");
  choose_special_tokens(v, vocab_json.parent_path());
  return make_gpt2_tokenizer(std::move(v));
}

std::unique_ptr<Tokenizer> load_gpt2_tokenizer_json(const fs::path& file) {
  const json j = read_json(file);
  const json& model = j.contains("model") ? j["model"] : json();
  if (!model.is_object() || model.value("type", "") != "BPE" || !model.contains("vocab") || !model.contains("merges"))
    throw std::runtime_error(file.string() + ": expected a BPE model with vocab and merges");
  const std::string dump = j.contains("pre_tokenizer") ? j["pre_tokenizer"].dump() : "";
  if (dump.find("ByteLevel") == std::string::npos)
    throw std::runtime_error(file.string() +
                             ": only byte-level BPE (GPT-2 / OPT) is supported from tokenizer.json; "
                             "for SentencePiece models use tokenizer.model");
  Gpt2Vocab v;
  v.source = file.string();
  for (const auto& [tok, id] : model["vocab"].items()) v.token_to_id.emplace(tok, id.get<int>());
  for (const auto& t : j.value("added_tokens", json::array())) v.token_to_id.emplace(t.at("content").get<std::string>(), t.at("id").get<int>());
  size_t n = 0;
  for (const auto& m : model["merges"]) {
    ++n;
    if (m.is_string())
      v.merges.push_back(split_merge(m.get<std::string>(), file, n));
    else if (m.is_array() && m.size() == 2)
      v.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    else
      throw std::runtime_error(file.string() + ": merge " + std::to_string(n) + " is neither 'a b' nor [a, b]");
  }
  choose_special_tokens(v, file.parent_path());
  return make_gpt2_tokenizer(std::move(v));
}

}  // namespace fb

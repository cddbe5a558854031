#include "datasets/corpus.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fb {

namespace fs = std::filesystem;

std::string load_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot open text corpus");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Hugging Face's wikitext builder yields every line of the file as a row, keeping its
// newline, and an empty row for whitespace-only lines; GPTQ joins the rows with "\n\n".
std::string load_wikitext_rows_joined(const fs::path& raw_file) {
  const std::string text = load_text(raw_file);
  std::string out;
  out.reserve(text.size() * 2);
  bool first = true;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    end = end == std::string::npos ? text.size() : end + 1;
    const std::string_view row(text.data() + begin, end - begin);
    if (!first) out += "\n\n";
    first = false;
    if (row.find_first_not_of(" \t\n\r\v\f") != std::string_view::npos) out += row;
    begin = end;
  }
  return out;
}

const std::vector<std::string>& corpus_names() {
  static const std::vector<std::string> names = {"wikitext2", "wikitext2-valid", "tinystories"};
  return names;
}

fs::path corpus_path(const std::string& name, const fs::path& data_dir) {
  if (name == "wikitext2") return data_dir / "wikitext2" / "wiki.test.raw";
  if (name == "wikitext2-valid") return data_dir / "wikitext2" / "wiki.valid.tokens";
  if (name == "tinystories") return data_dir / "tinystories" / "TinyStories-valid.head30KB.txt";
  return fs::path(name).is_absolute() ? fs::path(name) : data_dir / name;
}

std::string load_corpus(const std::string& name, const fs::path& data_dir) {
  const fs::path p = corpus_path(name, data_dir);
  if (name == "wikitext2") return load_wikitext_rows_joined(p);
  if (name == "wikitext2-valid" || name == "tinystories") return load_text(p);
  if (!fs::is_regular_file(p))
    throw std::runtime_error("corpus '" + name + "': not a known name (wikitext2, wikitext2-valid, tinystories) and " +
                             p.string() + " is not a file");
  return load_text(p);
}

namespace {
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

// GPTQ's calibration sampling: each window starts at a uniformly drawn offset. Our own
// generator (not std::uniform_int_distribution) so the windows are the same on every
// standard library.
std::vector<std::vector<int>> sample_windows(const std::vector<int>& tokens, int n, int len, uint64_t seed) {
  if (n <= 0) return {};
  if (len <= 0 || tokens.size() < size_t(len))
    throw std::invalid_argument("sample_windows: need at least " + std::to_string(len) + " tokens, corpus has " +
                                std::to_string(tokens.size()));
  const uint64_t starts = tokens.size() - size_t(len) + 1;
  uint64_t state = seed;
  std::vector<std::vector<int>> out;
  out.reserve(size_t(n));
  for (int i = 0; i < n; ++i) {
    const size_t start = size_t(splitmix64(state) % starts);
    out.emplace_back(tokens.begin() + long(start), tokens.begin() + long(start) + len);
  }
  return out;
}

}  // namespace fb

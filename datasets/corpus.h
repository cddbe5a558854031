// Text corpora for perplexity and calibration.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fb {

class Tokenizer;

// WikiText-2 raw as Hugging Face serves it: each line of the file is a row (with its
// newline; whitespace-only lines become empty rows), rows joined with "\n\n".
std::string load_wikitext_rows_joined(const std::filesystem::path& raw_file);
// Any plain-text file, as is.
std::string load_text(const std::filesystem::path& file);

// Resolves a corpus name (wikitext2 | wikitext2-valid | tinystories) or a path relative
// to the data directory, returns its text in the protocol's form.
std::string load_corpus(const std::string& name_or_path, const std::filesystem::path& data_dir);
// The file behind a corpus name or relative path (for provenance hashes); not checked to exist.
std::filesystem::path corpus_path(const std::string& name_or_path, const std::filesystem::path& data_dir);
// The corpus names load_corpus knows (anything else is a path under the data directory).
const std::vector<std::string>& corpus_names();

// Calibration windows: n windows of `len` tokens starting at seeded random offsets.
std::vector<std::vector<int>> sample_windows(const std::vector<int>& tokens, int n, int len, uint64_t seed);

}  // namespace fb

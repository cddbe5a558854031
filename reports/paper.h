// The numbers the two papers publish, as data, so tables can print them beside ours.
// Every entry is copied from the sources docs/methods.md §1.9 (FlattenQuant, arXiv 2402.17985,
// only what its abstract and summary state) and §2.9 (FlatQuant, arXiv 2410.09426, README tables) name.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace fb {

struct PaperNumber {
  std::string table;    // "flattenquant-t4", "flatquant-wiki", ...
  std::string model;    // as the paper writes it: "OPT-30B", "LLaMA-2-7B"
  std::string method;   // "FlatQuant", "FP16", ...
  std::string setting;  // bit setting / weight quantizer / variant, e.g. "RTN", "smoothing", "A100"
  std::string metric;   // "ppl", "int4_share", "ms", "memory_gb"
  double value = 0;
  std::string text;     // display text when the paper gives a range or qualitative statement
  std::string source;   // where the number comes from
  std::string display() const;
};

const std::vector<PaperNumber>& paper_numbers();
std::vector<PaperNumber> paper_numbers(const std::string& table);

// Lowercase, punctuation-free model key so "Llama-2-7b-hf" matches the paper's "LLaMA-2-7B".
std::string model_key(const std::string& name);

// The paper's number for this model / method / setting / metric, if it publishes one.
std::optional<PaperNumber> paper_lookup(const std::string& table, const std::string& model, const std::string& method,
                                        const std::string& setting, const std::string& metric);

inline constexpr const char* kFlattenQuantSource = "FlattenQuant (arXiv 2402.17985) via docs/methods.md §1.9";
inline constexpr const char* kFlatQuantSource = "FlatQuant (arXiv 2410.09426) README via docs/methods.md §2.9";

}  // namespace fb

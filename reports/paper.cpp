#include "reports/paper.h"

#include "reports/table.h"

#include <algorithm>
#include <cctype>

namespace fb {

std::string PaperNumber::display() const { return text.empty() ? fmt_num(value) : text; }

namespace {

// FlatQuant README Tables 1 (WikiText-2) and 2 (C4), W4A4KV4, seqlen 2048. Columns: 2-7B 2-13B 2-70B 3-8B 3-70B;
// a negative entry means the paper has no number there.
struct FlatQuantRow {
  const char* method;
  const char* wq;
  double wiki[5];
  double c4[5];
};
const FlatQuantRow kFlatQuantPpl[] = {
    {"FP16", "-", {5.47, 4.88, 3.32, 6.14, 2.86}, {7.26, 6.73, 5.71, 9.45, 7.17}},
    {"SmoothQuant", "RTN", {83.12, 35.88, 26.01, 210.19, 9.60}, {77.27, 43.19, 34.61, 187.93, 16.90}},
    {"QuaRot", "RTN", {8.56, 6.10, 4.14, 10.60, 55.44}, {11.86, 8.67, 6.42, 17.19, 79.48}},
    {"SpinQuant", "RTN", {6.14, 5.44, 3.82, 7.96, 7.58}, {9.19, 8.11, 6.26, 13.45, 15.39}},
    {"FlatQuant", "RTN", {5.79, 5.12, 3.55, 6.98, 3.78}, {7.79, 7.09, 5.91, 11.13, 7.86}},
    {"QuaRot", "GPTQ", {6.10, 5.40, 3.79, 8.16, 6.60}, {8.32, 7.54, 6.12, 13.38, 12.87}},
    {"SpinQuant", "GPTQ", {5.96, 5.24, 3.70, 7.39, 6.21}, {8.28, 7.48, 6.07, 12.19, 12.82}},
    {"FlatQuant", "GPTQ", {5.78, 5.11, 3.54, 6.90, 3.77}, {7.86, 7.11, 5.92, 11.21, 7.93}},
};
const char* const kFlatQuantModels[] = {"LLaMA-2-7B", "LLaMA-2-13B", "LLaMA-2-70B", "LLaMA-3-8B", "LLaMA-3-70B"};

std::vector<PaperNumber> build() {
  const std::string fq = kFlattenQuantSource;
  std::vector<PaperNumber> v = {
      {"flattenquant-t4", "OPT-30B", "FlattenQuant", "", "int4_share", 0.4829, "48.29%", fq + ", Table 4 / abstract"},
      {"flattenquant-t5", "A100 (shape not stated)", "GEMM", "fp16", "ms", 3.12, "", fq + ", Table 5"},
      {"flattenquant-t5", "A100 (shape not stated)", "GEMM", "int4", "ms", 1.57, "", fq + ", Table 5"},
      {"flattenquant-t5", "A100 (shape not stated)", "flatten", "flatten", "ms", 0.19, "", fq + ", Table 5"},
      {"flattenquant-t6", "OPT (per model/batch not given)", "FP16", "", "memory_gb", 0, "59.2–162.6 GB",
       fq + ", Table 6"},
      {"flattenquant-t6", "OPT (per model/batch not given)", "FlattenQuant-O3", "", "memory_gb", 0, "26.1–60.2 GB",
       fq + ", Table 6"},
      {"flattenquant-t6", "OPT (all)", "FlattenQuant", "", "memory_reduction", 2.3, "up to 2.3×", fq + ", abstract"},
      {"flattenquant-t7", "OPT-6.7B", "FlattenQuant", "no smoothing", "ppl", 12.16, "", fq + ", Tables 7 & 9"},
      {"flattenquant-t7", "OPT-6.7B", "FlattenQuant", "smoothing", "ppl", 11.68, "", fq + ", Tables 7 & 9"},
      {"flattenquant-t7", "OPT-6.7B", "FP16", "", "ppl", 10.86, "", "GPTQ paper, WikiText-2 seqlen 2048 (docs/methods.md §1.9)"},
      {"flattenquant-t8", "OPT", "FlattenQuant", "", "note", 0,
       "too small a β forces flatten ratio > 30%: more memory, no accuracy gain", fq + ", Table 8 (qualitative)"},
      {"flattenquant-t10", "OPT", "FlattenQuant", "", "note", 0, "too large a γ gives a noticeable accuracy drop",
       fq + ", Table 10 (qualitative)"},
  };
  for (const auto& row : kFlatQuantPpl)
    for (int m = 0; m < 5; ++m) {
      std::string setting = std::string(row.method) == "FP16" ? "FP16" : std::string("W4A4KV4 ") + row.wq;
      if (row.wiki[m] > 0)
        v.push_back({"flatquant-ppl", kFlatQuantModels[m], row.method, setting, "ppl:wikitext2", row.wiki[m], "",
                     std::string(kFlatQuantSource) + ", Table 1 (WikiText-2)"});
      if (row.c4[m] > 0)
        v.push_back({"flatquant-ppl", kFlatQuantModels[m], row.method, setting, "ppl:c4", row.c4[m], "",
                     std::string(kFlatQuantSource) + ", Table 2 (C4)"});
    }
  v.push_back({"flatquant-calib", "LLaMA (all)", "FlatQuant", "", "calibration", 0, "\"calibrated in hours\"",
               std::string(kFlatQuantSource) + " (abstract; per-model times not published)"});
  return v;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

const std::vector<PaperNumber>& paper_numbers() {
  static const std::vector<PaperNumber> all = build();
  return all;
}

std::vector<PaperNumber> paper_numbers(const std::string& table) {
  std::vector<PaperNumber> out;
  for (const auto& p : paper_numbers())
    if (p.table == table) out.push_back(p);
  return out;
}

std::string model_key(const std::string& name) {
  std::string base = name.substr(name.find_last_of('/') + 1);  // drop a Hugging Face org prefix
  std::string k;
  for (char c : lower(base))
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.') k += c;
  for (const std::string noise : {"meta", "hf"})
    for (auto p = k.find(noise); p != std::string::npos; p = k.find(noise)) k.erase(p, noise.size());
  return k;
}

std::optional<PaperNumber> paper_lookup(const std::string& table, const std::string& model, const std::string& method,
                                        const std::string& setting, const std::string& metric) {
  for (const auto& p : paper_numbers())
    if (p.table == table && model_key(p.model) == model_key(model) && lower(p.method) == lower(method) &&
        lower(p.setting) == lower(setting) && p.metric == metric)
      return p;
  return std::nullopt;
}

}  // namespace fb

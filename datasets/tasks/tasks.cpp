// The task table (where each task's files usually live, in which formats) and the
// line/JSON helpers every loader shares.
#include "datasets/tasks/task.h"
#include "datasets/tasks/task_io.h"

#include <stdexcept>

namespace fb {
namespace tasks {

namespace fs = std::filesystem;

void fail(const fs::path& file, long line, const std::string& what) {
  std::string where = file.string();
  if (line > 0) where += ":" + std::to_string(line);
  throw std::runtime_error(where + ": " + what);
}

std::vector<NumberedLine> read_lines(const fs::path& file, bool skip_blank) {
  std::vector<NumberedLine> out;
  for_each_line(file, [&](const std::string& text, long line) {
    if (!skip_blank || !strip(text).empty()) out.push_back({text, line});
    return true;
  });
  return out;
}

const json& JsonRow::field(const char* key) const {
  const auto it = value.find(key);
  if (it == value.end()) fail(std::string("missing field '") + key + "'");
  return *it;
}

std::string JsonRow::string(const char* key) const {
  const json& v = field(key);
  if (!v.is_string()) fail(std::string("field '") + key + "' is not a string");
  return v.get<std::string>();
}

std::vector<JsonRow> read_jsonl(const fs::path& file, int limit) {
  std::vector<JsonRow> rows;
  for_each_line(file, [&](const std::string& text, long line) {
    if (strip(text).empty()) return true;
    json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) fail(file, line, "not a valid JSON object (jsonl expects one object per line)");
    if (!value.is_object()) fail(file, line, "expected a JSON object, found " + std::string(value.type_name()));
    rows.push_back({std::move(value), &file, line});
    return limit <= 0 || int(rows.size()) < limit;
  });
  return rows;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view strip(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string question_answer_prompt(const std::string& question) { return "Question: " + question + "\nAnswer:"; }

TaskDoc multiple_choice_doc(const std::string& query, std::vector<std::string> choices, int gold) {
  TaskDoc doc;
  for (const std::string& c : choices) doc.requests.push_back({query, " " + c});
  doc.choices = std::move(choices);
  doc.gold = gold;
  return doc;
}

}  // namespace tasks

namespace {

TaskFormat format(std::vector<std::string> candidates, std::string name,
                  std::vector<TaskDoc> (*load)(const std::filesystem::path&, int),
                  std::filesystem::path (*companion)(const std::filesystem::path&) = nullptr) {
  TaskFormat f{std::move(candidates), std::move(name), load};
  if (companion) f.companion = companion;
  return f;
}

std::vector<TaskSpec> build_specs() {
  // lm-eval's evaluated splits: validation for PIQA, HellaSwag, WinoGrande; test for ARC,
  // OpenBookQA, LAMBADA (docs/protocols.md §2a).
  return {
      {"piqa", TaskKind::multiple_choice, "acc_norm",
       {format({"piqa/valid.jsonl", "piqa/validation.jsonl"}, "jsonl (+ labels .lst)", load_piqa_jsonl,
               piqa_labels_file)}},
      {"hellaswag", TaskKind::multiple_choice, "acc_norm",
       {format({"hellaswag/hellaswag_val.jsonl", "hellaswag/validation.jsonl"}, "jsonl", load_hellaswag_jsonl),
        format({"hellaswag/hellaswag_val_full.txt"}, "6-line text", load_hellaswag_text)}},
      {"openbookqa", TaskKind::multiple_choice, "acc_norm",
       {format({"openbookqa/test.jsonl"}, "jsonl", load_openbookqa_jsonl),
        format({"openbookqa/test.tsv"}, "tsv", load_openbookqa_tsv)}},
      {"lambada_openai", TaskKind::last_word, "acc",
       {format({"lambada_openai/lambada_test.jsonl", "lambada_openai/test.jsonl", "lambada/lambada_test.jsonl"},
               "jsonl", load_lambada_jsonl)}},
      {"arc_easy", TaskKind::multiple_choice, "acc_norm",
       {format({"arc_easy/test.jsonl", "ARC-Easy/ARC-Easy-Test.jsonl", "arc/ARC-Easy-Test.jsonl"}, "jsonl",
               load_arc_jsonl)}},
      {"arc_challenge", TaskKind::multiple_choice, "acc_norm",
       {format({"arc_challenge/test.jsonl", "ARC-Challenge/ARC-Challenge-Test.jsonl", "arc/ARC-Challenge-Test.jsonl"},
               "jsonl", load_arc_jsonl)}},
      {"winogrande", TaskKind::partial_scoring, "acc",
       {format({"winogrande/dev.jsonl", "winogrande/validation.jsonl"}, "jsonl", load_winogrande_jsonl)}},
  };
}

}  // namespace

const std::vector<TaskSpec>& task_specs() {
  static const std::vector<TaskSpec> specs = build_specs();
  return specs;
}

const TaskSpec* find_task(const std::string& name) {
  for (const TaskSpec& s : task_specs())
    if (s.name == name) return &s;
  return nullptr;
}

std::optional<TaskData> load_task(const TaskSpec& spec, const std::filesystem::path& dir, int limit) {
  for (const TaskFormat& f : spec.formats) {
    for (const std::string& rel : f.candidates) {
      const std::filesystem::path file = dir / rel;
      if (!std::filesystem::is_regular_file(file)) continue;
      TaskData data{spec.name, spec.kind, file, f.format, f.load(file, limit)};
      if (data.docs.empty()) tasks::fail(file, 0, "no documents in the file");
      return data;
    }
  }
  return std::nullopt;
}

TaskData require_task(const TaskSpec& spec, const std::filesystem::path& dir, int limit) {
  if (std::optional<TaskData> data = load_task(spec, dir, limit)) return std::move(*data);
  std::string tried;
  for (const TaskFormat& f : spec.formats)
    for (const std::string& rel : f.candidates) tried += (tried.empty() ? "" : ", ") + (dir / rel).string();
  throw std::runtime_error("task '" + spec.name + "' has no file; looked for " + tried);
}

std::vector<std::filesystem::path> task_files(const TaskSpec& spec, const std::filesystem::path& dir,
                                              std::vector<std::filesystem::path>* tried) {
  for (const TaskFormat& f : spec.formats)
    for (const std::string& rel : f.candidates) {
      const std::filesystem::path file = dir / rel;
      if (tried) tried->push_back(file);
      if (!std::filesystem::is_regular_file(file)) continue;
      std::vector<std::filesystem::path> out{file};
      if (f.companion && std::filesystem::is_regular_file(f.companion(file))) out.push_back(f.companion(file));
      return out;
    }
  return {};
}

}  // namespace fb

// Line-oriented reading shared by the task loaders: every error names the file and the
// 1-based line it is about, so a malformed download is found in one look.
#pragma once

#include "datasets/tasks/task.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace fb::tasks {

using json = nlohmann::json;

// "FILE:LINE: what" as a std::runtime_error (line 0 = the file as a whole).
[[noreturn]] void fail(const std::filesystem::path& file, long line, const std::string& what);

// Calls fn(text, line_number) for each line (without its '\n' or a trailing '\r');
// fn returns false to stop early. Throws when the file cannot be opened.
template <class Fn>
void for_each_line(const std::filesystem::path& file, Fn fn);

// The non-blank lines of a file with their line numbers.
struct NumberedLine {
  std::string text;
  long line = 0;
};
std::vector<NumberedLine> read_lines(const std::filesystem::path& file, bool skip_blank);

// Where one JSON object of a jsonl file came from, for error messages.
struct JsonRow {
  json value;
  const std::filesystem::path* file = nullptr;
  long line = 0;

  const json& field(const char* key) const;  // throws when missing
  std::string string(const char* key) const;  // throws when missing or not a string
  [[noreturn]] void fail(const std::string& what) const { tasks::fail(*file, line, what); }
};

// Reads a jsonl file: one JSON object per non-blank line, at most `limit` (> 0) rows.
std::vector<JsonRow> read_jsonl(const std::filesystem::path& file, int limit);

// Python's str.strip()/rstrip() for ASCII whitespace.
std::string_view strip(std::string_view s);
bool is_space(char c);

// "Question: {q}\nAnswer:" — the PIQA and ARC prompt of lm-eval's task YAMLs.
std::string question_answer_prompt(const std::string& question);

// A multiple-choice document with lm-eval's default target delimiter " " before each choice.
TaskDoc multiple_choice_doc(const std::string& query, std::vector<std::string> choices, int gold);

}  // namespace fb::tasks

#include <fstream>

namespace fb::tasks {

template <class Fn>
void for_each_line(const std::filesystem::path& file, Fn fn) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, 0, "cannot open the file");
  std::string text;
  for (long line = 1; std::getline(in, text); ++line) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (!fn(text, line)) break;
  }
}

}  // namespace fb::tasks

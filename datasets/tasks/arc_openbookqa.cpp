// ARC-Easy / ARC-Challenge (lm_eval/tasks/arc/arc_easy.yaml: "Question: {question}\nAnswer:",
// choices " {text}", test split) and OpenBookQA (lm_eval/tasks/openbookqa/openbookqa.yaml:
// the bare question stem, choices " {text}", test split). Gold = position of answerKey
// among the choice labels (ARC mixes "A".."E" and "1".."5" labels).
//
// Both read the AllenAI release layout {"question": {"stem", "choices": [{"text", "label"}]},
// "answerKey"} and the Hugging Face layout {"question"|"question_stem", "choices": {"text": [..],
// "label": [..]}, "answerKey"}. OpenBookQA also comes as the TSV of the AllenAI release:
// ID, stem, "(A) .. (B) .. (C) .. (D) ..", complete question, answer key.
#include "datasets/tasks/task.h"
#include "datasets/tasks/task_io.h"

#include <algorithm>

namespace fb {
namespace {

namespace fs = std::filesystem;
using tasks::JsonRow;
using tasks::json;

struct Question {
  std::string stem;
  std::vector<std::string> texts, labels;
};

std::string string_of(const JsonRow& row, const json& v, const char* what) {
  if (!v.is_string()) row.fail(std::string(what) + " must be a string");
  return v.get<std::string>();
}

// {"text": [..], "label": [..]} (Hugging Face) or [{"text", "label"}, ..] (AllenAI).
void read_choices(const JsonRow& row, const json& choices, Question& q) {
  if (choices.is_object() && choices.contains("text") && choices.contains("label") && choices["text"].is_array() &&
      choices["label"].is_array() && choices["text"].size() == choices["label"].size()) {
    for (size_t i = 0; i < choices["text"].size(); ++i) {
      q.texts.push_back(string_of(row, choices["text"][i], "choice text"));
      q.labels.push_back(string_of(row, choices["label"][i], "choice label"));
    }
  } else if (choices.is_array()) {
    for (const json& c : choices) {
      if (!c.is_object() || !c.contains("text") || !c.contains("label"))
        row.fail("each choice needs 'text' and 'label'");
      q.texts.push_back(string_of(row, c["text"], "choice text"));
      q.labels.push_back(string_of(row, c["label"], "choice label"));
    }
  } else {
    row.fail("'choices' must be {\"text\": [..], \"label\": [..]} or a list of {\"text\", \"label\"}");
  }
  if (q.texts.size() < 2) row.fail("fewer than 2 choices");
}

// The question in either layout; `stem_key` is the flat layout's name for the question text.
Question read_question(const JsonRow& row, const char* stem_key) {
  Question q;
  const json& question = row.value.contains("question") ? row.value["question"] : row.field(stem_key);
  if (question.is_object()) {
    if (!question.contains("stem") || !question.contains("choices"))
      row.fail("'question' object needs 'stem' and 'choices'");
    q.stem = string_of(row, question["stem"], "question stem");
    read_choices(row, question["choices"], q);
  } else {
    q.stem = row.value.contains(stem_key) ? row.string(stem_key) : string_of(row, question, "'question'");
    read_choices(row, row.field("choices"), q);
  }
  return q;
}

int gold_of(const JsonRow& row, const Question& q) {
  const std::string key(tasks::strip(row.string("answerKey")));  // OBQA's YAML strips it too
  const auto it = std::find(q.labels.begin(), q.labels.end(), key);
  if (it == q.labels.end()) row.fail("answerKey '" + key + "' is not one of the choice labels");
  return int(it - q.labels.begin());
}

std::vector<TaskDoc> load_questions(const fs::path& jsonl, int limit, const char* stem_key, bool qa_prompt) {
  std::vector<TaskDoc> docs;
  for (const JsonRow& row : tasks::read_jsonl(jsonl, limit)) {
    Question q = read_question(row, stem_key);
    const int gold = gold_of(row, q);
    docs.push_back(tasks::multiple_choice_doc(qa_prompt ? tasks::question_answer_prompt(q.stem) : q.stem,
                                              std::move(q.texts), gold));
  }
  return docs;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t tab; (tab = line.find('\t', at)) != std::string::npos; at = tab + 1) out.push_back(line.substr(at, tab - at));
  out.push_back(line.substr(at));
  return out;
}

// "(A) make more phone calls (B) quit eating lunch out (C) ... (D) ..." -> 4 texts.
std::vector<std::string> split_lettered_choices(const std::string& s, const fs::path& file, long line) {
  const char* markers[] = {"(A) ", " (B) ", " (C) ", " (D) "};
  if (s.rfind(markers[0], 0) != 0) tasks::fail(file, line, "choices must start with \"(A) \"");
  std::vector<size_t> starts{0};
  for (int k = 1; k < 4; ++k) {
    const size_t at = s.find(markers[k], starts.back() + 1);
    if (at == std::string::npos) tasks::fail(file, line, std::string("choices lack the marker \"") + markers[k] + "\"");
    starts.push_back(at);
  }
  std::vector<std::string> texts;
  for (int k = 0; k < 4; ++k) {
    const size_t begin = starts[size_t(k)] + std::string_view(markers[k]).size();
    const size_t end = k + 1 < 4 ? starts[size_t(k) + 1] : s.size();
    texts.push_back(s.substr(begin, end - begin));
  }
  return texts;
}

}  // namespace

std::vector<TaskDoc> load_arc_jsonl(const fs::path& jsonl, int limit) { return load_questions(jsonl, limit, "question", true); }

std::vector<TaskDoc> load_openbookqa_jsonl(const fs::path& jsonl, int limit) {
  return load_questions(jsonl, limit, "question_stem", false);
}

std::vector<TaskDoc> load_openbookqa_tsv(const fs::path& tsv, int limit) {
  std::vector<TaskDoc> docs;
  for (const tasks::NumberedLine& l : tasks::read_lines(tsv, true)) {
    if (limit > 0 && int(docs.size()) == limit) break;
    const std::vector<std::string> cols = split_tabs(l.text);
    if (l.line == 1 && !cols.empty() && cols[0] == "ID") continue;  // header
    if (cols.size() != 5)
      tasks::fail(tsv, l.line, "expected 5 tab-separated columns (ID, stem, choices, complete question, answer key), found " +
                                   std::to_string(cols.size()));
    const std::string_view key = tasks::strip(cols[4]);
    if (key.size() != 1 || key[0] < 'A' || key[0] > 'D')
      tasks::fail(tsv, l.line, "answer key must be A..D, found '" + std::string(key) + "'");
    docs.push_back(tasks::multiple_choice_doc(cols[1], split_lettered_choices(cols[2], tsv, l.line), key[0] - 'A'));
  }
  return docs;
}

}  // namespace fb

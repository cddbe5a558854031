// PIQA (lm_eval/tasks/piqa/piqa.yaml): prompt "Question: {goal}\nAnswer:", choices
// " {sol1}" / " {sol2}", validation split. The published release keeps the labels in a
// separate file (valid.jsonl + valid-labels.lst, one 0/1 per line); a jsonl exported from
// the Hugging Face dataset carries a "label" field instead.
#include "datasets/tasks/task.h"
#include "datasets/tasks/task_io.h"

namespace fb {
namespace {

namespace fs = std::filesystem;
using tasks::JsonRow;
using tasks::json;

fs::path labels_beside(const fs::path& jsonl) { return piqa_labels_file(jsonl); }

int label_value(const std::string& text, const fs::path& file, long line) {
  const std::string_view t = tasks::strip(text);
  if (t == "0") return 0;
  if (t == "1") return 1;
  tasks::fail(file, line, "PIQA label must be 0 or 1, found '" + std::string(t) + "'");
}

// The first n labels of the .lst file, one per non-blank line.
std::vector<int> read_labels(const fs::path& file, size_t n) {
  std::vector<int> labels;
  for (const auto& l : tasks::read_lines(file, true)) {
    if (labels.size() == n) break;
    labels.push_back(label_value(l.text, file, l.line));
  }
  return labels;
}

int inline_label(const JsonRow& row) {
  const json& v = row.field("label");
  if (v.is_number_integer() && (v.get<int>() == 0 || v.get<int>() == 1)) return v.get<int>();
  if (v.is_string()) return label_value(v.get<std::string>(), *row.file, row.line);
  row.fail("PIQA label must be 0 or 1");
}

}  // namespace

std::vector<TaskDoc> load_piqa_jsonl(const fs::path& jsonl, int limit) {
  const std::vector<JsonRow> rows = tasks::read_jsonl(jsonl, limit);
  const bool labels_inline = !rows.empty() && rows.front().value.contains("label");
  std::vector<int> labels;
  if (!labels_inline) {
    const fs::path lst = labels_beside(jsonl);
    if (!fs::is_regular_file(lst))
      tasks::fail(jsonl, 0, "no 'label' field and no labels file " + lst.string() + " beside it");
    labels = read_labels(lst, rows.size());
    if (labels.size() != rows.size())
      tasks::fail(lst, 0, "has " + std::to_string(labels.size()) + " labels for " + std::to_string(rows.size()) +
                              " questions in " + jsonl.string());
  }
  std::vector<TaskDoc> docs;
  for (size_t i = 0; i < rows.size(); ++i) {
    const JsonRow& row = rows[i];
    const int gold = labels_inline ? inline_label(row) : labels[i];
    docs.push_back(tasks::multiple_choice_doc(tasks::question_answer_prompt(row.string("goal")),
                                              {row.string("sol1"), row.string("sol2")}, gold));
  }
  return docs;
}

// valid.jsonl -> valid-labels.lst (the name the PIQA release uses).
fs::path piqa_labels_file(const fs::path& jsonl) {
  return jsonl.parent_path() / (jsonl.stem().string() + "-labels.lst");
}

}  // namespace fb

// HellaSwag, validation split, 4 endings (lm_eval/tasks/hellaswag/hellaswag.yaml + utils.py).
//
// lm-eval's jsonl path: query = preprocess(activity_label + ": " + ctx_a + " " +
// ctx_b.capitalize()), choices = preprocess(ending), each scored as " " + choice.
//
// The 6-line text format (klosax/hellaswag_text_data, what llama.cpp reads: context line,
// gold index, four endings) is already cleaned up, but its second context half is NOT
// capitalised ("... on a roof. he"), so its scores differ slightly from lm-eval's; we score
// it as is, with the same " " + ending continuations.
#include "datasets/tasks/task.h"
#include "datasets/tasks/task_io.h"

#include <cctype>

namespace fb {
namespace {

namespace fs = std::filesystem;
using tasks::JsonRow;
using tasks::json;

// Python's str.capitalize() on ASCII: first character upper case, the rest lower case
// (non-ASCII bytes are left unchanged, where Python would also case-map them).
std::string capitalize(std::string s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) s[i] = char(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return s;
}

// Python's str.replace(from, to): every non-overlapping occurrence, left to right, one pass.
std::string replace_all(const std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  size_t at = 0;
  for (size_t hit; (hit = s.find(from, at)) != std::string::npos; at = hit + from.size()) {
    out.append(s, at, hit - at);
    out.append(to);
  }
  out.append(s, at, std::string::npos);
  return out;
}

// re.sub(r"\[.*?\]", "", s): a '[' up to the nearest ']' on the same line ('.' does not match '\n').
std::string remove_bracketed(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '[') {
      const size_t close = s.find_first_of("]\n", i + 1);
      if (close != std::string::npos && s[close] == ']') {
        i = close + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

int gold_index(const JsonRow& row) {
  const json& v = row.field("label");
  int gold = -1;
  if (v.is_number_integer()) gold = v.get<int>();
  if (v.is_string() && v.get<std::string>().size() == 1) gold = v.get<std::string>()[0] - '0';
  if (gold < 0 || gold > 3) row.fail("HellaSwag label must be 0..3, found " + v.dump());
  return gold;
}

}  // namespace

std::string hellaswag_preprocess(std::string text) {
  text = std::string(tasks::strip(text));
  text = replace_all(text, " [title]", ". ");
  text = remove_bracketed(text);
  return replace_all(text, "  ", " ");
}

std::vector<TaskDoc> load_hellaswag_jsonl(const fs::path& jsonl, int limit) {
  std::vector<TaskDoc> docs;
  for (const JsonRow& row : tasks::read_jsonl(jsonl, limit)) {
    const std::string ctx = row.string("ctx_a") + " " + capitalize(row.string("ctx_b"));
    const json& endings = row.field("endings");
    if (!endings.is_array() || endings.size() != 4) row.fail("'endings' must be a list of 4 strings");
    std::vector<std::string> choices;
    for (const json& e : endings) {
      if (!e.is_string()) row.fail("'endings' must be a list of 4 strings");
      choices.push_back(hellaswag_preprocess(e.get<std::string>()));
    }
    docs.push_back(tasks::multiple_choice_doc(hellaswag_preprocess(row.string("activity_label") + ": " + ctx),
                                              std::move(choices), gold_index(row)));
  }
  return docs;
}

std::vector<TaskDoc> load_hellaswag_text(const fs::path& txt, int limit) {
  constexpr int kLinesPerItem = 6;
  std::vector<tasks::NumberedLine> lines = tasks::read_lines(txt, false);
  while (!lines.empty() && tasks::strip(lines.back().text).empty()) lines.pop_back();  // trailing newlines
  if (lines.size() % kLinesPerItem != 0)
    tasks::fail(txt, lines.empty() ? 0 : lines.back().line,
                "truncated item: the 6-line format needs context, gold index, 4 endings; " +
                    std::to_string(lines.size()) + " lines is not a multiple of 6");
  std::vector<TaskDoc> docs;
  for (size_t at = 0; at < lines.size() && (limit <= 0 || int(docs.size()) < limit); at += kLinesPerItem) {
    const tasks::NumberedLine& gold_line = lines[at + 1];
    const std::string_view g = tasks::strip(gold_line.text);
    if (g.size() != 1 || g[0] < '0' || g[0] > '3')
      tasks::fail(txt, gold_line.line, "expected the gold ending index 0..3, found '" + std::string(g) + "'");
    std::vector<std::string> endings;
    for (int k = 2; k < kLinesPerItem; ++k) endings.push_back(lines[at + size_t(k)].text);
    docs.push_back(tasks::multiple_choice_doc(lines[at].text, std::move(endings), g[0] - '0'));
  }
  return docs;
}

}  // namespace fb

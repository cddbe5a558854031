// LAMBADA (OpenAI's detokenised test set, lm_eval/tasks/lambada/lambada_openai.yaml) and
// WinoGrande (winogrande_xl validation, lm_eval/tasks/winogrande/preprocess_winogrande.py).
//
// LAMBADA: context = text.split(' ')[:-1] joined by ' ', continuation = ' ' + the last
// word; no target delimiter (output_type loglikelihood). acc = every continuation token is
// the greedy argmax; perplexity = exp(-mean ll) over documents.
//
// WinoGrande "partial scoring": the sentence up to '_' with each option substituted is a
// context, and the text after '_' (stripped, then the " " delimiter) is the one continuation
// scored under both; gold = answer "1" / "2".
#include "datasets/tasks/task.h"
#include "datasets/tasks/task_io.h"

namespace fb {
namespace {

namespace fs = std::filesystem;
using tasks::JsonRow;
using tasks::json;

int winogrande_gold(const JsonRow& row) {
  const json& v = row.field("answer");
  const std::string a = v.is_string() ? v.get<std::string>() : v.is_number_integer() ? std::to_string(v.get<int>()) : "";
  if (a == "1") return 0;
  if (a == "2") return 1;
  row.fail("WinoGrande answer must be \"1\" or \"2\", found " + v.dump());
}

}  // namespace

std::vector<TaskDoc> load_lambada_jsonl(const fs::path& jsonl, int limit) {
  std::vector<TaskDoc> docs;
  for (const JsonRow& row : tasks::read_jsonl(jsonl, limit)) {
    const std::string text = row.string("text");
    const size_t last_space = text.rfind(' ');  // Python split(' '): the last ' ' separates the target
    TaskDoc doc;
    if (last_space == std::string::npos) {
      doc.requests.push_back({"", " " + text});
    } else {
      doc.requests.push_back({text.substr(0, last_space), " " + text.substr(last_space + 1)});
    }
    doc.choices = {doc.requests[0].continuation};
    docs.push_back(std::move(doc));
  }
  return docs;
}

std::vector<TaskDoc> load_winogrande_jsonl(const fs::path& jsonl, int limit) {
  std::vector<TaskDoc> docs;
  for (const JsonRow& row : tasks::read_jsonl(jsonl, limit)) {
    const std::string sentence = row.string("sentence");
    const size_t blank = sentence.find('_');
    if (blank == std::string::npos) row.fail("the sentence has no '_' blank");
    const std::string target = " " + std::string(tasks::strip(std::string_view(sentence).substr(blank + 1)));
    TaskDoc doc;
    for (const char* key : {"option1", "option2"}) {
      const std::string option = row.string(key);
      doc.requests.push_back({sentence.substr(0, blank) + option, target});
      doc.choices.push_back(sentence.substr(0, blank) + option);  // lm-eval's doc_to_choice: the contexts
    }
    doc.gold = winogrande_gold(row);
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace fb

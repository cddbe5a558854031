// Zero-shot tasks in lm-evaluation-harness form (docs/protocols.md §2, docs/methods.md §4.4).
//
// A loader turns one task file into documents; each document is a list of log-likelihood
// requests (context, continuation) already rendered with lm-eval's prompt template and
// target delimiter, plus what the metric needs (gold index, the choice strings whose
// character length acc_norm divides by). Scoring lives in the zeroshot evaluator; the
// tokenisation rules it shares with tests live in datasets/tasks/lm_eval_rules.h.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace fb {

// How a task's requests turn into metrics (lm-eval's output_type, plus WinoGrande's
// "multiple inputs" variant of multiple_choice).
enum class TaskKind {
  multiple_choice,   // one context, one continuation per choice: acc and acc_norm
  partial_scoring,   // one context per choice, one shared continuation: acc only (WinoGrande)
  last_word,         // one request; acc = greedy match of the continuation, plus perplexity (LAMBADA)
};

struct LogLikelihoodRequest {
  std::string context;
  std::string continuation;
};

struct TaskDoc {
  std::vector<LogLikelihoodRequest> requests;  // one per choice (a single one for last_word)
  std::vector<std::string> choices;            // doc_to_choice strings (delimiter excluded): acc_norm lengths
  int gold = 0;                                // index of the right request
};

struct TaskData {
  std::string name;               // lm-eval task name, e.g. "piqa"
  TaskKind kind = TaskKind::multiple_choice;
  std::filesystem::path file;     // the file it was read from
  std::string format;             // e.g. "jsonl", "6-line text", "tsv"
  std::vector<TaskDoc> docs;
};

// A task the harness knows: where its files usually are (relative to the task directory,
// tried in order) and how to read each of them.
struct TaskFormat {
  std::vector<std::string> candidates;  // first existing relative path wins
  std::string format;                   // human-readable format name
  // Reads the file found; `limit` > 0 stops after that many documents.
  std::function<std::vector<TaskDoc>(const std::filesystem::path&, int limit)> load;
  // Files read beside the one found, when they exist (PIQA's labels); fingerprinted with it.
  std::function<std::filesystem::path(const std::filesystem::path&)> companion = {};
};

struct TaskSpec {
  std::string name;
  TaskKind kind;
  std::string paper_metric;             // "acc_norm" or "acc": what QuaRot/FlatQuant report
  std::vector<TaskFormat> formats;      // tried in order
};

// Every task: piqa, hellaswag, openbookqa, lambada_openai, arc_easy, arc_challenge, winogrande.
const std::vector<TaskSpec>& task_specs();
const TaskSpec* find_task(const std::string& name);

// Reads the task from the first format whose file exists under `dir`; nullopt when no file
// of the task is present. Malformed files throw
// std::runtime_error naming the file and line.
std::optional<TaskData> load_task(const TaskSpec& spec, const std::filesystem::path& dir, int limit);
// load_task for a task the user asked for: no file is an error naming every path tried.
TaskData require_task(const TaskSpec& spec, const std::filesystem::path& dir, int limit);
// The files load_task reads under `dir` (empty when the task has none there): the job key
// fingerprints them. `tried` receives every path looked for, for error messages.
std::vector<std::filesystem::path> task_files(const TaskSpec& spec, const std::filesystem::path& dir,
                                              std::vector<std::filesystem::path>* tried = nullptr);

// The loaders, one per file format (exposed for tests and for explicit file overrides).
std::vector<TaskDoc> load_piqa_jsonl(const std::filesystem::path& jsonl, int limit);  // labels beside it
std::filesystem::path piqa_labels_file(const std::filesystem::path& jsonl);         // valid-labels.lst
std::vector<TaskDoc> load_hellaswag_jsonl(const std::filesystem::path& jsonl, int limit);
std::vector<TaskDoc> load_hellaswag_text(const std::filesystem::path& txt, int limit);
std::vector<TaskDoc> load_openbookqa_tsv(const std::filesystem::path& tsv, int limit);
std::vector<TaskDoc> load_openbookqa_jsonl(const std::filesystem::path& jsonl, int limit);
std::vector<TaskDoc> load_arc_jsonl(const std::filesystem::path& jsonl, int limit);
std::vector<TaskDoc> load_lambada_jsonl(const std::filesystem::path& jsonl, int limit);
std::vector<TaskDoc> load_winogrande_jsonl(const std::filesystem::path& jsonl, int limit);

// lm-eval's HellaSwag cleanup (lm_eval/tasks/hellaswag/utils.py `preprocess`).
std::string hellaswag_preprocess(std::string text);

}  // namespace fb

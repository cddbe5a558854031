// Zero-shot accuracy with lm-evaluation-harness's rules (docs/protocols.md §2,
// docs/methods.md §4.4): every choice of a document is a log-likelihood request, tokenised as
// lm-eval's HFLM does (datasets/tasks/lm_eval_rules.h); acc = argmax of the summed
// log-likelihood, acc_norm = argmax of log-likelihood / len(choice) in characters; LAMBADA's
// acc is the greedy match of the last word and its perplexity exp(-mean ll). Standard
// errors are lm-eval's mean_stderr. The headline `avg` is the unweighted mean of each task's
// paper metric (acc_norm where defined, else acc), as FlatQuant and QuaRot report it.
//
// Requests are independent: the job's execution backend scores them (backends/backend.h). On the
// CPU, requests whose model input is the same token window (e.g. single-token continuations of
// one context) share one forward pass — lm-eval's "contexts" grouping; a GPU packs many
// requests of any lengths into one batch.
#include "harness/evaluator.h"

#include "datasets/tasks/lm_eval_rules.h"
#include "datasets/tasks/task.h"
#include "models/model.h"
#include "models/tokenizer.h"

#include <chrono>
#include <cmath>
#include <map>
#include <stdexcept>

namespace fb {
namespace {

constexpr const char* kProtocol =
    "lm-eval 0.4 rules: 0-shot, context+continuation encoded whole and the continuation taken as the tail, "
    "trailing context whitespace moved to the continuation, left truncation to the model context; "
    "acc = argmax sum ll, acc_norm = argmax ll/len(choice chars), stderr = sample sd/sqrt(n)";

const std::vector<std::string> kDefaultTasks = {"piqa",     "hellaswag",     "openbookqa", "lambada_openai",
                                                "arc_easy", "arc_challenge", "winogrande"};

struct ScoringOptions {
  int max_length = 0;
  bool add_bos = false;
};

// The log-likelihood and greedy flag of every request of one document.
struct DocScores {
  std::vector<double> loglik;
  std::vector<bool> greedy;
  int truncated = 0;  // requests that lost tokens on the left to fit max_length
};

// Every request of a task as the model reads it (windows kept alive for the scoring requests).
struct TaskRequests {
  std::vector<ScoringWindow> windows;  // by document, request by request
  std::vector<size_t> first_of_doc;    // index of each document's first request; one past the end last
};

TaskRequests encode_task(const Tokenizer& tok, const TaskData& task, const ScoringOptions& opt) {
  TaskRequests t;
  for (const TaskDoc& doc : task.docs) {
    t.first_of_doc.push_back(t.windows.size());
    for (const LogLikelihoodRequest& req : doc.requests)
      t.windows.push_back(scoring_window(encode_request(tok, req.context, req.continuation, opt.add_bos), opt.max_length));
  }
  t.first_of_doc.push_back(t.windows.size());
  return t;
}

// Scores every request of a task on the job's runner and gathers them by document. A request
// with no target left after truncation scores 0 and counts as greedy, as before.
std::vector<DocScores> score_task(ModelRunner& runner, const TaskRequests& t, const ScoreOptions& so,
                                  Progress& progress) {
  std::vector<ScoreRequest> requests;
  for (const ScoringWindow& w : t.windows) requests.push_back({w.input, w.first_row, w.targets});
  std::vector<std::vector<TokenScore>> token_scores;
  runner.score(requests, token_scores, so, progress);
  std::vector<DocScores> out(t.first_of_doc.size() - 1);
  for (size_t d = 0; d + 1 < t.first_of_doc.size(); ++d)
    for (size_t i = t.first_of_doc[d]; i < t.first_of_doc[d + 1]; ++i) {
      double loglik = 0;
      bool greedy = true;
      for (const TokenScore& s : token_scores[i]) loglik += s.logprob, greedy = greedy && s.greedy;
      out[d].loglik.push_back(loglik);
      out[d].greedy.push_back(greedy);
      out[d].truncated += t.windows[i].truncated ? 1 : 0;
    }
  return out;
}

// Per-document correctness (1/0) for each metric of the task, and the LAMBADA lls.
struct TaskOutcome {
  std::vector<double> acc, acc_norm, loglik;
};

TaskOutcome judge(const TaskData& task, const std::vector<DocScores>& scores) {
  TaskOutcome o;
  for (size_t d = 0; d < task.docs.size(); ++d) {
    const TaskDoc& doc = task.docs[d];
    const DocScores& s = scores[d];
    if (task.kind == TaskKind::last_word) {
      o.acc.push_back(s.greedy[0] ? 1 : 0);
      o.loglik.push_back(s.loglik[0]);
      continue;
    }
    o.acc.push_back(argmax_first(s.loglik) == doc.gold ? 1 : 0);
    if (task.kind == TaskKind::multiple_choice) {
      std::vector<double> normed;
      for (size_t c = 0; c < s.loglik.size(); ++c) normed.push_back(s.loglik[c] / python_length(doc.choices[c]));
      o.acc_norm.push_back(argmax_first(normed) == doc.gold ? 1 : 0);
    }
  }
  return o;
}

double mean_of(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / double(v.size());
}

// <task>_<metric> with per-document samples, and <task>_<metric>_stderr.
void add_mean_metric(JobResult& result, const std::string& name, const std::vector<double>& per_doc) {
  Metric& m = result.add(name, mean_of(per_doc));
  m.n = int(per_doc.size());
  m.samples = per_doc;
  result.add(name + "_stderr", mean_stderr(per_doc)).n = int(per_doc.size());
}

// Writes the task's metrics and returns its paper metric (acc_norm where defined, else acc).
double report_task(const TaskData& task, const TaskOutcome& o, JobResult& result) {
  add_mean_metric(result, task.name + "_acc", o.acc);
  if (!o.acc_norm.empty()) add_mean_metric(result, task.name + "_acc_norm", o.acc_norm);
  if (task.kind == TaskKind::last_word) result.add(task.name + "_ppl", std::exp(-mean_of(o.loglik))).n = int(o.loglik.size());
  result.add(task.name + "_n", double(task.docs.size()));
  return o.acc_norm.empty() ? mean_of(o.acc) : mean_of(o.acc_norm);
}

json samples_json(const TaskData& task, const std::vector<DocScores>& scores) {
  json out = json::array();
  for (size_t d = 0; d < scores.size(); ++d)
    out.push_back({{"gold", task.docs[d].gold}, {"loglik", scores[d].loglik}, {"greedy", scores[d].greedy}});
  return out;
}

std::vector<std::string> task_names(const json& params) {
  std::vector<std::string> names = params.at("tasks").get<std::vector<std::string>>();
  if (names.empty()) names = kDefaultTasks;
  for (const std::string& n : names) {
    if (find_task(n)) continue;
    std::string known;
    for (const TaskSpec& s : task_specs()) known += (known.empty() ? "" : ", ") + s.name;
    throw std::runtime_error("zeroshot: unknown task '" + n + "' (known: " + known + ")");
  }
  return names;
}

void run_zeroshot(EvalContext& ctx, JobResult& result) {
  if (!ctx.model) throw std::runtime_error("zeroshot: no model");
  if (!ctx.tokenizer) throw std::runtime_error("zeroshot needs a tokenizer and the model has none (give its models entry `tokenizer:`)");
  const Model& model = *ctx.model;
  result.synthetic = model.cfg.synthetic;

  ScoringOptions opt;
  opt.max_length = param_int(ctx.params, "max_length");
  if (opt.max_length <= 0) opt.max_length = model.cfg.max_seq_len;
  opt.add_bos = param_bool(ctx.params, "add_bos");
  const int limit = param_int(ctx.params, "limit");
  const int threads = param_int(ctx.params, "threads");
  const bool log_samples = param_bool(ctx.params, "log_samples");
  const std::string task_dir = param_string(ctx.params, "task_dir");
  const std::filesystem::path dir = task_dir.empty() ? ctx.data_dir : ctx.data_dir / task_dir;

  // Every requested task's file is read before any is scored: a missing one fails the job
  // at once (as lm-eval stops), rather than an average over the tasks that happened to exist.
  std::vector<TaskData> tasks;
  for (const std::string& name : task_names(ctx.params)) {
    try {
      tasks.push_back(require_task(*find_task(name), dir, limit));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string("zeroshot: ") + e.what());
    }
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<double> paper_metrics;
  json avg_tasks = json::array(), files = json::object();
  for (const TaskData& task : tasks) {
    const std::string& name = task.name;
    const std::vector<DocScores> scores =
        score_task(model_runner(ctx), encode_task(*ctx.tokenizer, task, opt), {"zeroshot " + name, threads}, ctx.progress);

    paper_metrics.push_back(report_task(task, judge(task, scores), result));
    avg_tasks.push_back(name + ":" + find_task(name)->paper_metric);
    int truncated = 0;
    for (const DocScores& s : scores) truncated += s.truncated;
    files[name] = {{"file", task.file.string()}, {"format", task.format}, {"truncated_requests", truncated}};
    if (log_samples) result.info["samples"][name] = samples_json(task, scores);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!paper_metrics.empty()) result.add("avg", mean_of(paper_metrics)).n = int(paper_metrics.size());
  result.add("eval_s", seconds, "s");
  result.info["protocol"] = kProtocol;
  result.info["avg_tasks"] = avg_tasks;
  result.info["task_files"] = files;
  result.info["max_length"] = opt.max_length;
  result.info["add_bos"] = opt.add_bos;
  result.info["limit"] = limit;
}

FB_REGISTER_EVALUATOR(EvaluatorInfo{
    "zeroshot",
    "Zero-shot accuracy with lm-evaluation-harness scoring (acc, acc_norm, stderr; LAMBADA acc + ppl) and the "
    "paper average.",
    {
        {"tasks", ParamType::StringList, json(kDefaultTasks),
         "piqa | hellaswag | openbookqa | lambada_openai | arc_easy | arc_challenge | winogrande",
         {}, ParamRole::task_list},
        {"limit", ParamType::Int, 0, "first N documents of each task (0 = all)", {}, {}, at_least(0)},
        {"threads", ParamType::Int, 0, "documents scored in parallel (0 = all cores)", {}, {}, between(0, 4096)},
        {"max_length", ParamType::Int, 0, "model context in tokens; longer inputs lose tokens on the left (0 = model's)",
         {}, {}, at_least(0)},
        {"add_bos", ParamType::Bool, false,
         "prepend BOS to every encoding (lm-eval add_bos_token=True; off in lm-eval <= 0.4.9 for causal LMs)"},
        {"task_dir", ParamType::String, "", "folder under the data dir holding the task folders (empty = data dir)"},
        {"log_samples", ParamType::Bool, false, "store every request's log-likelihood in the job's info"},
    },
    true,
    run_zeroshot,
    /*needs_tokenizer=*/true});

}  // namespace
}  // namespace fb

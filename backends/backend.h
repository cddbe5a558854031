// Execution backends of the model pipeline (docs/backends.md), the llama.cpp model: one
// interface, a registry of backends each described by one registration, and the CPU runtime
// (Model::forward) as the reference every other backend is checked against. Methods prepare a
// Model; a backend runs it. Evaluators ask a ModelRunner for token scores and never see where
// the work ran.
#pragma once

#include "core/progress.h"
#include "core/registry.h"
#include "models/model.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace fb {

// One scoring request: the model reads `input`, and target i is scored at logits row
// first_row + i (perplexity: a window and its next tokens; zero-shot: a continuation).
struct ScoreRequest {
  std::span<const int> input;
  int first_row = 0;
  std::span<const int> targets;
};

// One target token's score. `greedy`: the target is its row's first arg-max (lm-eval's
// is_greedy, torch.argmax's tie rule).
struct TokenScore {
  double logprob = 0;
  bool greedy = false;
};

// The scores of one logits row: log-softmax at `target` in double, as the evaluators always
// computed it (the CPU backend's rule, and the reference for the others).
TokenScore score_row(std::span<const float> logits, int target);

struct ScoreOptions {
  std::string what = "score";  // the progress line's task ("ppl wikitext2")
  int threads = 0;             // CPU: forwards run in parallel on this many threads (0: all cores)
};

// A prepared model on one backend. A runner keeps what it uploaded (weights on a GPU) for its
// lifetime, so one runner serves every evaluation of the prepared model.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  // out[i][j] = the score of requests[i].targets[j]; a task on `progress` counts finished forwards.
  virtual void score(std::span<const ScoreRequest> requests, std::vector<std::vector<TokenScore>>& out,
                     const ScoreOptions& opt, Progress& progress) = 0;
  // Logits of one window (T × vocab), for checks against the reference.
  virtual Mat logits(std::span<const int> window) = 0;
  // Where the work runs, for the job's info: {"backend": "cuda", "device": "NVIDIA H200", ...}.
  virtual nlohmann::json where() const = 0;
  // What the runner has held on its device so far, as metrics (name → MiB), e.g. the GPU's peak.
  virtual std::map<std::string, double> usage_mib() const { return {}; }
  // A job starts on this runner: what where() tallies per job (a GPU's time per stage) restarts.
  virtual void begin_job() {}
};

// Where a job runs, as a config writes it: `cpu`, `cuda` or `cuda:N`, and the dtype the
// backend keeps weights and GEMM inputs in.
struct Placement {
  std::string backend = "cpu";
  int device = 0;       // which GPU; provenance, not identity (docs/job-spec.md)
  std::string dtype;    // one of the backend's dtypes; its first when empty

  // The job spec's `backend` member: `cpu` (its only dtype), else `<backend>/<dtype>`.
  std::string spec_backend() const;
};

struct ExecutionBackendInfo {
  std::string name;                 // what `device:` names: cpu, cuda
  std::string help;
  std::vector<std::string> dtypes;  // the first is the default
  // "" when it can run here, else why not (no GPU, built without CUDA).
  std::function<std::string()> unavailable;
  std::function<std::unique_ptr<ModelRunner>(const Model&, const Placement&)> make_runner;
};

#define FB_REGISTER_EXECUTION_BACKEND(...) FB_REGISTER_IN(::fb::ExecutionBackendInfo, __VA_ARGS__)

// Parses a `device:` value (`cpu`, `cuda`, `cuda:1`) and a dtype ("" = the backend's
// default); throws std::invalid_argument naming what is wrong and what is known.
Placement parse_placement(const std::string& device, const std::string& dtype);
// The placement a job spec's `backend` member names (`cpu`, `cuda/fp16`), on device `index`.
Placement placement_of_spec(const std::string& spec_backend, int index = 0);
// The registered backend of a placement; throws when it is unknown or cannot run here.
const ExecutionBackendInfo& usable_backend(const Placement& p);

}  // namespace fb

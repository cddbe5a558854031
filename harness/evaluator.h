// An evaluator measures something about a job: perplexity, zero-shot accuracy,
// GEMM latency, memory. It reads its options from the filled parameter object and
// writes named metrics (and GEMM / site rows) into the JobResult.
#pragma once

#include "core/params.h"
#include "core/progress.h"
#include "core/registry.h"
#include "core/results.h"
#include "backends/backend.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>

namespace fb {

class Tokenizer;

struct EvalContext {
  const json& params;                     // the evaluator's options, defaults filled
  const std::filesystem::path& data_dir;
  const Model* model;                     // prepared by the job's method; null when !needs_model
  const Tokenizer* tokenizer;             // may be null (synthetic models)
  uint64_t seed;
  Progress& progress;
  ModelRunner* runner = nullptr;               // where the model runs (the job's device); null: the CPU reference
  std::shared_ptr<ModelRunner> own_runner = {};  // the CPU runner made when no runner was given
};

// The runner that scores ctx.model: the job's, or the CPU reference made on first use.
inline ModelRunner& model_runner(EvalContext& ctx) {
  if (ctx.runner) return *ctx.runner;
  if (!ctx.model) throw std::logic_error("an evaluation asked for a model runner, but it has no model");
  if (!ctx.own_runner) ctx.own_runner = usable_backend(Placement{}).make_runner(*ctx.model, Placement{});
  return *ctx.own_runner;
}

struct EvaluatorInfo {
  std::string name;
  std::string help;
  ParamSchema params;
  bool needs_model = true;
  std::function<void(EvalContext&, JobResult&)> run;
  bool needs_tokenizer = false;  // checked against the model entry when the config loads
};

#define FB_REGISTER_EVALUATOR(...) FB_REGISTER_IN(::fb::EvaluatorInfo, __VA_ARGS__)

}  // namespace fb

// An evaluator measures something about a job: perplexity, zero-shot accuracy,
// GEMM latency, memory. It reads its options from the filled parameter object and
// writes named metrics (and GEMM / site rows) into the JobResult.
#pragma once

#include "core/params.h"
#include "core/progress.h"
#include "core/registry.h"
#include "core/results.h"

#include <filesystem>
#include <functional>

namespace fb {

struct Model;
class Tokenizer;

struct EvalContext {
  const json& params;                     // the evaluator's options, defaults filled
  const std::filesystem::path& data_dir;
  const Model* model;                     // prepared by the job's method; null when !needs_model
  const Tokenizer* tokenizer;             // may be null (synthetic models)
  uint64_t seed;
  Progress& progress;
};

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

// A quantization method: turns a full-precision model into the model it evaluates,
// by folding scales into norms/weights and installing operators on linear sites.
// Its per-site decisions go into JobResult::sites (they are results too).
#pragma once

#include "core/params.h"
#include "core/progress.h"
#include "core/registry.h"
#include "core/results.h"
#include "models/model.h"
#include "models/tokenizer.h"

#include <filesystem>
#include <functional>

namespace fb {

struct MethodContext {
  const json& params;                    // filled with the schema's defaults
  const std::filesystem::path& data_dir;
  const Tokenizer* tokenizer;            // null for synthetic models without one
  uint64_t seed;
  Progress& progress;
};

struct MethodInfo {
  std::string name;
  std::string help;
  ParamSchema params;
  std::function<void(Model&, MethodContext&, JobResult&)> apply;
};

#define FB_REGISTER_METHOD(...) FB_REGISTER_IN(::fb::MethodInfo, __VA_ARGS__)

}  // namespace fb

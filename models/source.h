// Model sources: how a `models:` entry of a config becomes a Model + Tokenizer.
// One registration line per format (llama2c, hf, synthetic).
#pragma once

#include "harness/params.h"
#include "harness/registry.h"
#include "models/model.h"
#include "models/tokenizer.h"

#include <filesystem>
#include <functional>
#include <memory>

namespace fb {

struct LoadedModel {
  Model model;
  std::shared_ptr<const Tokenizer> tokenizer;  // null for synthetic models without one
  std::vector<std::filesystem::path> files;    // files read (hashed into provenance)
};

struct ModelSourceInfo {
  std::string name;  // the `format:` value
  std::string help;
  ParamSchema params;  // paths are relative to the data directory
  std::function<LoadedModel(const json& params, const std::filesystem::path& data_dir)> load;
};

#define FB_REGISTER_MODEL_SOURCE(...) FB_REGISTER_IN(::fb::ModelSourceInfo, __VA_ARGS__)

// Loads a model spec (filled parameters plus "format"); throws std::runtime_error naming the file.
LoadedModel load_model(const json& spec, const std::filesystem::path& data_dir);

}  // namespace fb

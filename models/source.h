// Model sources: how a `models:` entry of a config becomes a Model + Tokenizer.
// One registration line per format (llama2c, hf, synthetic).
#pragma once

#include "core/job_spec.h"
#include "core/params.h"
#include "core/registry.h"
#include "models/model.h"
#include "models/tokenizer.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>

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
  // Every file `load` will read, without reading the weights: the config loader fingerprints
  // them into the job key, and the runner checks that `load` read no other.
  std::function<std::vector<std::filesystem::path>(const json& params, const std::filesystem::path& data_dir)> files;
  // The tokenizer `load` will use (file or folder), or none: checked before a job that needs one runs.
  std::function<std::optional<std::filesystem::path>(const json& params, const std::filesystem::path& data_dir)>
      tokenizer;
};

#define FB_REGISTER_MODEL_SOURCE(...) FB_REGISTER_IN(::fb::ModelSourceInfo, __VA_ARGS__)

// Loads a job's model part (its format and parameters; missing ones take their defaults);
// throws std::runtime_error naming the file or the parameter.
LoadedModel load_model(const SpecPart& model, const std::filesystem::path& data_dir);
// The files load_model(model, data_dir) reads; throws std::runtime_error naming what is missing.
std::vector<std::filesystem::path> model_files(const SpecPart& model, const std::filesystem::path& data_dir);
// The tokenizer load_model(model, data_dir) uses, or none.
std::optional<std::filesystem::path> model_tokenizer(const SpecPart& model, const std::filesystem::path& data_dir);

}  // namespace fb

// The job spec: what one job does, as one typed value, and its key. The config loader
// (harness/config.cpp) builds it for CPU jobs, the GPU tool (app/flatbench_gpu.cu) for device
// jobs, the runner runs it, the store keeps its canonical JSON. docs/job-spec.md describes the
// document and the key rule; the store's v3 → v4 migration rekeys older rows with
// upgrade_job_spec below. C++17, as app/flatbench_gpu.cu compiles it with nvcc.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace fb {

using json = nlohmann::json;

// One registered entry a job uses, with every parameter it runs with (defaults filled in).
struct SpecPart {
  std::string name;    // the method's or evaluator's registered name; for a model, the model's own name
  std::string format;  // a model's registered format (llama2c, hf, synthetic); "" for methods and evaluations
  json params = json::object();

  json to_json() const;
};

struct JobSpec {
  std::string backend = "cpu";    // the execution backend that runs the job (docs/backends.md)
  std::optional<SpecPart> model;  // none for evaluations that need no model (gemm)
  std::optional<SpecPart> method; // none exactly when model is none
  SpecPart eval;
  // {path relative to the data directory: XXH3-128} of every file the job reads; {} for a job
  // that reads none (generated operands); null only for rows stored before files were fingerprinted.
  json data = json::object();
  long seed = 0;
  long rep = 0;

  // The canonical document: every member always present, object keys sorted, so dump() is canonical.
  json to_json() const;
  // Reads a canonical document; throws std::runtime_error naming the member that is wrong.
  static JobSpec from_json(const json& doc);
  // XXH3-128 of to_json().dump(), 32 hex characters: the job's identity for claims, skips and merges.
  std::string key() const;
};

// A spec in any shape an earlier flatbench stored, in today's canonical form: flat model parts
// (name and format beside the parameters) get nested parameters, a missing `data` becomes null,
// and the GPU tool's jobs (keyed by path and run id, the GEMM backend as "method") become
// backend "cuda" jobs of the `gemm` or `decoder_layer` evaluation. `old_key` is the row's key
// (it tells GPU rows apart). Throws std::runtime_error for a document it cannot read.
json upgrade_job_spec(const json& stored, const std::string& old_key);

// XXH3-128 of text as 32 hex characters.
std::string hash_text(const std::string& text);

}  // namespace fb

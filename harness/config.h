// YAML sweep configs: parse, validate against the registered schemas, expand into jobs.
//
//   include: base.yaml            # optional (a path or a list), relative to this file; this file's keys win
//   name: quickstart
//   seeds: [0]                    # one job per seed
//   repetitions: 1                # whole-job repetitions (timing evaluators also have their own `reps`)
//   device: cpu                   # where model jobs run: cpu (default), cuda, cuda:N, cuda/fp32, or a list (an axis)
//   gpu_dtype: fp16               # a GPU's weights and GEMM inputs: fp16 (default), bf16, fp32
//   models:   [{name: stories260K, format: llama2c, path: ..., tokenizer: ...}]
//   methods:  [{name: rtn, w_bits: [4, 8], a_bits: 8, zip: {w_bits: [4, 8], a_bits: [4, 8]}}]
//   evaluations: [{name: ppl, dataset: wikitext2}, {name: gemm, shapes: [[512, 512, 512]]}]
//
// A list given for a scalar parameter is a sweep axis (cartesian product with the other
// axes); a `zip:` block holds lists of equal length iterated together. A parameter whose
// type is itself a list (e.g. `shapes`) is never an axis.
#pragma once

#include "core/job_spec.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace fb {

using json = nlohmann::json;

// One problem in a config: the file, line and column (1-based), the field's path, what is wrong.
struct ConfigIssue {
  std::string file, field, message;
  int line = 0, column = 0;
  std::string text() const;  // "file:line:column: field: message"
};

// Every problem a config has, found in one pass; what() prints one issue per line. The
// fields name the first issue.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, int column, std::string field, std::string message);
  explicit ConfigError(std::vector<ConfigIssue> issues);
  std::string file, field, message;
  int line, column;
  std::vector<ConfigIssue> issues;
};

// Bounds on what a config may expand to, so no config can exhaust memory.
inline constexpr long kMaxConfigBytes = 1 << 20;     // one YAML file
inline constexpr long kMaxConfigNodes = 200000;      // YAML nodes of one file, aliases expanded
inline constexpr long kMaxSweepJobs = 100000;        // jobs of one expanded sweep

struct Job {
  JobSpec spec;       // core/job_spec.h; its data fingerprints every file the job reads
  std::string key;    // spec.key()
  std::string label;  // short human label: "stories260K rtn(w_bits=4) ppl" (non-default params only)
  int device_index = 0;  // which GPU of spec.backend runs it (cuda:N); provenance, not identity
};

struct Config {
  std::filesystem::path path;
  std::string name;
  std::string text;   // the resolved YAML (this file and its includes), stored with the run
  std::string hash;   // XXH3-128 of text
  std::filesystem::path data_dir;  // from the CLI, else the config's data_dir, else ../shared/data
  std::vector<Job> jobs;
  std::vector<std::filesystem::path> data_files;  // every file the jobs read (fingerprinted into provenance)
};

// data_dir_override: empty = use the config's `data_dir` or the default.
Config load_config(const std::filesystem::path& path, const std::filesystem::path& data_dir_override = {});

// The jobs of shard i of n (0-based i): every n-th job, so each job is in exactly one shard.
std::vector<Job> shard_jobs(const std::vector<Job>& jobs, int index, int count);


// The default data directory: $FLATBENCH_DATA_DIR, else ../shared/data (relative to the working directory).
std::filesystem::path default_data_dir();

// Levenshtein-closest candidate within distance 3, or "".
std::string suggest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace fb

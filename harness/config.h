// YAML sweep configs: parse, validate against the registered schemas, expand into jobs.
//
//   include: base.yaml            # optional (a path or a list), relative to this file; this file's keys win
//   name: quickstart
//   seeds: [0]                    # one job per seed
//   repetitions: 1                # whole-job repetitions (timing evaluators also have their own `reps`)
//   models:   [{name: stories260K, format: llama2c, path: ..., tokenizer: ...}]
//   methods:  [{name: rtn, w_bits: [4, 8], a_bits: 8, zip: {w_bits: [4, 8], a_bits: [4, 8]}}]
//   evaluations: [{name: ppl, dataset: wikitext2}, {name: gemm, shapes: [[512, 512, 512]]}]
//
// A list given for a scalar parameter is a sweep axis (cartesian product with the other
// axes); a `zip:` block holds lists of equal length iterated together. A parameter whose
// type is itself a list (e.g. `shapes`) is never an axis.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace fb {

using json = nlohmann::json;

// A config error names the file, line and column (1-based) and the field's path.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, int column, std::string field, std::string message);
  std::string file, field, message;
  int line, column;
};

struct Job {
  json spec;        // canonical: {"eval": {...}, "method": {...}|null, "model": {...}|null, "rep": r, "seed": s}
  std::string key;    // 32 hex chars: XXH3-128 of spec.dump()
  std::string label;  // short human label: "stories260K rtn(w_bits=4) ppl" (non-default params only)
};

struct Config {
  std::filesystem::path path;
  std::string name;
  std::string text;   // the resolved YAML (this file and its includes), stored with the run
  std::string hash;   // XXH3-128 of text
  std::filesystem::path data_dir;  // from the CLI, else the config's data_dir, else ../shared/data
  std::vector<Job> jobs;
  std::vector<std::filesystem::path> data_files;  // files the models name (hashed into provenance)
};

// data_dir_override: empty = use the config's `data_dir` or the default.
Config load_config(const std::filesystem::path& path, const std::filesystem::path& data_dir_override = {});

// The jobs of shard i of n (0-based i): every n-th job, so each job is in exactly one shard.
std::vector<Job> shard_jobs(const std::vector<Job>& jobs, int index, int count);

std::string hash_text(const std::string& text);  // XXH3-128 as 32 hex chars

// The default data directory: $FLATBENCH_DATA_DIR, else ../shared/data (relative to the working directory).
std::filesystem::path default_data_dir();

// Levenshtein-closest candidate within distance 3, or "".
std::string suggest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace fb

// A results DB filled with known values through Store's API, for the reports tests.
#pragma once

#include "harness/config.h"
#include "harness/store.h"
#include "test_util.h"

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fb::test {

struct ReportDb {
  TempDir dir;
  std::filesystem::path path = dir / "results.db";
  Store store{path};

  // A run on `host` at commit `commit`, started at `started` (ISO-8601).
  std::string run(const std::string& host = "hostA", const std::string& commit = "abc1234def",
                  const std::string& started = "2026-11-20T10:00:00.000Z") {
    RunInfo r;
    r.uuid = new_uuid();
    r.started_at = started;
    r.provenance = {{"git", {{"commit", commit}, {"dirty", false}}}, {"host", host}, {"cpu", {{"model", "Test CPU"}}}};
    store.begin_run(r);
    return r.uuid;
  }

  // Records a finished job; the key is the spec's hash, as the runner computes it.
  long job(const std::string& run_uuid, const json& spec, const JobResult& result, const std::string& label = "") {
    long id = store.start_job(run_uuid, hash_text(spec.dump()), spec, label.empty() ? spec.dump() : label);
    store.finish_job(id, result, 1.0);
    return id;
  }
};

inline json make_spec(const std::string& model, const std::string& method, const json& method_params,
                      const std::string& eval, const json& eval_params = json::object()) {
  JobSpec spec;
  spec.model = SpecPart{model, "synthetic", json::object()};
  if (!method.empty()) spec.method = SpecPart{method, "", method_params};
  spec.eval = SpecPart{eval, "", eval_params};
  return spec.to_json();
}

// The spec the runner stores for one job of `method` on a model named `model`: a
// one-job config expanded by load_config, so a parameter the method does not take or a value it
// rejects throws here as it would in a real run, and every default is filled in as in a run.
inline json config_spec(const std::string& model, const std::string& method, const json& method_params,
                        const std::string& eval, const json& eval_params = json::object()) {
  json m = method_params;
  m["name"] = method;
  json e = eval_params;
  e["name"] = eval;
  const json config = {{"name", "report-test"},
                       // stories260K under the test's model name: ppl jobs need a model with a tokenizer
                       {"models", json::array({{{"name", model},
                                                {"format", "llama2c"},
                                                {"path", "stories260K/stories260K.bin"},
                                                {"tokenizer", "stories260K/tok512.model"}}})},
                       {"methods", json::array({m})},
                       {"evaluations", json::array({e})}};
  TempDir dir;
  const auto path = dir / "report-test.yaml";
  std::ofstream(path) << config.dump(2);  // JSON is YAML
  const Config cfg = load_config(path, data_dir());
  if (cfg.jobs.size() != 1) throw std::logic_error("config_spec: expected one job, got " + std::to_string(cfg.jobs.size()));
  return cfg.jobs.front().spec.to_json();
}

inline Metric metric(const std::string& name, double value, const std::string& unit = "",
                     std::vector<double> samples = {}) {
  Metric m{name, value, unit};
  m.n = samples.empty() ? 1 : static_cast<int>(samples.size());
  m.samples = std::move(samples);
  return m;
}

// Deterministic samples around `centre` with relative spread ±spread/2 (uniform, LCG-driven).
inline std::vector<double> noisy(double centre, double spread, int n, uint32_t seed) {
  std::vector<double> v;
  uint32_t s = seed * 2654435761u + 12345u;
  for (int i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    double u = (s >> 8) / double(1u << 24) - 0.5;
    v.push_back(centre * (1 + spread * u));
  }
  return v;
}

}  // namespace fb::test

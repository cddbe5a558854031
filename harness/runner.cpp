#include "harness/runner.h"

#include "harness/evaluator.h"
#include "harness/progress.h"
#include "harness/provenance.h"
#include "harness/store.h"
#include "methods/method.h"
#include "models/source.h"
#include "reports/summary.h"

#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <optional>
#include <ostream>

namespace fb {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The model a job evaluates: the base model loaded once per model spec, then the method
// applied once per (model, method, seed) — consecutive jobs of one sweep share both.
class ModelCache {
 public:
  struct Prepared {
    Model model;
    std::shared_ptr<const Tokenizer> tokenizer;
    JobResult method_result;  // site decisions and method metrics, copied into every job
  };

  const Prepared& get(const Job& job, const std::filesystem::path& data_dir, Progress& progress) {
    const json& model_spec = job.spec["model"];
    const json& method_spec = job.spec["method"];
    std::string base_key = model_spec.dump();
    if (base_key != base_key_) {
      prepared_.reset();
      base_.reset();
      auto t0 = std::chrono::steady_clock::now();
      base_ = load_model(model_spec, data_dir);
      load_seconds_ = seconds_since(t0);
      base_key_ = base_key;
    }
    std::string prep_key = base_key + method_spec.dump() + job.spec["seed"].dump();
    if (!prepared_ || prep_key != prep_key_) {
      const std::string name = method_spec["name"];
      const MethodInfo* info = Registry<MethodInfo>::instance().find(name);
      if (!info) throw std::runtime_error("unknown method '" + name + "'");
      prepared_.emplace(Prepared{base_->model, base_->tokenizer, {}});
      MethodContext ctx{method_spec["params"], data_dir, base_->tokenizer.get(),
                        job.spec["seed"].get<uint64_t>(), progress};
      auto t0 = std::chrono::steady_clock::now();
      try {
        info->apply(prepared_->model, ctx, prepared_->method_result);
      } catch (...) {
        prepared_.reset();
        throw;
      }
      prepared_->method_result.add("method_seconds", seconds_since(t0), "s");
      prepared_->method_result.add("load_seconds", load_seconds_, "s");
      prep_key_ = prep_key;
    }
    return *prepared_;
  }

 private:
  std::string base_key_, prep_key_;
  std::optional<LoadedModel> base_;
  std::optional<Prepared> prepared_;
  double load_seconds_ = 0;
};

JobResult run_job(const Job& job, const Config& cfg, ModelCache& cache, Progress& progress) {
  const json& eval = job.spec["eval"];
  const std::string name = eval["name"];
  const EvaluatorInfo* info = Registry<EvaluatorInfo>::instance().find(name);
  if (!info) throw std::runtime_error("unknown evaluation '" + name + "'");
  JobResult result;
  const ModelCache::Prepared* prep = info->needs_model ? &cache.get(job, cfg.data_dir, progress) : nullptr;
  EvalContext ctx{eval["params"], cfg.data_dir, prep ? &prep->model : nullptr,
                  prep ? prep->tokenizer.get() : nullptr, job.spec["seed"].get<uint64_t>(), progress};
  info->run(ctx, result);
  if (prep) {  // the method's decisions and metrics follow the evaluator's own
    const JobResult& m = prep->method_result;
    result.metrics.insert(result.metrics.end(), m.metrics.begin(), m.metrics.end());
    result.sites.insert(result.sites.end(), m.sites.begin(), m.sites.end());
    for (const auto& [k, v] : m.info.items())
      if (!result.info.contains(k)) result.info[k] = v;
    result.synthetic = prep->model.cfg.synthetic;
  }
  return result;
}

}  // namespace

bool parse_shard(const std::string& text, int& index, int& count) {
  int i = 0, n = 0;
  char slash = 0;
  if (std::sscanf(text.c_str(), "%d%c%d", &i, &slash, &n) != 3 || slash != '/' || n < 1 || i < 1 || i > n)
    return false;
  index = i - 1;
  count = n;
  return true;
}

RunCounts run_sweep(const Config& cfg, const RunOptions& opt, std::ostream& out) {
  RunCounts counts;
  std::vector<Job> jobs = shard_jobs(cfg.jobs, opt.shard_index, opt.shard_count);
  counts.selected = static_cast<int>(jobs.size());
  Store store(opt.db_path);
  auto statuses = store.job_statuses();
  std::vector<const Job*> todo;
  for (const auto& j : jobs) {
    const std::string& st = statuses.count(j.key) ? statuses[j.key] : "";
    if (st == "done" && !opt.force) {
      ++counts.done_before;
      continue;
    }
    if (st == "failed" && !opt.retry_failed && !opt.force) {
      ++counts.failed_before;
      continue;
    }
    todo.push_back(&j);
  }
  Progress progress(opt.quiet);
  progress.message(fmt::format("flatbench: {} — {} jobs{}, {} done before, {} failed before (--retry-failed), {} to run",
                               cfg.name, counts.selected,
                               opt.shard_count > 1 ? fmt::format(" in shard {}/{}", opt.shard_index + 1, opt.shard_count) : "",
                               counts.done_before, counts.failed_before, todo.size()));
  if (opt.dry_run) {
    for (const Job* j : todo) out << j->key.substr(0, 12) << "  " << j->label << "\n";
    return counts;
  }
  if (todo.empty()) {
    print_summary(store, jobs, out, opt.json);
    return counts;
  }

  RunInfo run;
  run.uuid = new_uuid();
  run.started_at = now_iso8601();
  run.provenance = collect_provenance(cfg.data_files);
  run.config_path = cfg.path.string();
  run.config_hash = cfg.hash;
  run.config_text = cfg.text;
  if (opt.shard_count > 1) run.shard = fmt::format("{}/{}", opt.shard_index + 1, opt.shard_count);
  store.begin_run(run);

  ModelCache cache;
  for (size_t i = 0; i < todo.size(); ++i) {
    const Job& job = *todo[i];
    progress.set_job(fmt::format("[{}/{}]", i + 1, todo.size()));
    progress.message(fmt::format("[{}/{}] {}  ({})", i + 1, todo.size(), job.label, job.key.substr(0, 12)));
    long id = store.start_job(run.uuid, job.key, job.spec, job.label);
    auto t0 = std::chrono::steady_clock::now();
    try {
      JobResult r = run_job(job, cfg, cache, progress);
      store.finish_job(id, r, seconds_since(t0));
      ++counts.ran;
    } catch (const std::exception& e) {
      store.fail_job(id, e.what(), seconds_since(t0));
      progress.message(fmt::format("  FAILED: {}", e.what()));
      ++counts.failed;
    }
  }
  store.end_run(run.uuid);
  print_summary(store, jobs, out, opt.json);
  if (!opt.json) out << "results: " << std::filesystem::absolute(opt.db_path).lexically_normal().string() << "\n";
  return counts;
}

}  // namespace fb

#include "harness/runner.h"

#include "harness/evaluator.h"
#include "core/fingerprint.h"
#include "core/progress.h"
#include "harness/provenance.h"
#include "harness/store.h"
#include "methods/method.h"
#include "models/source.h"

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <new>
#include <string_view>
#include <mutex>
#include <optional>
#include <ostream>
#include <thread>

namespace fb {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The job key fingerprints the files the model source says it reads (harness/config.cpp);
// a loader that read another file would let that file change unnoticed.
void check_fingerprinted(const std::vector<std::filesystem::path>& read, const json& data,
                         const std::filesystem::path& data_dir) {
  for (const auto& f : read)
    if (!data.contains(data_relative(f, data_dir)))
      throw std::logic_error("the model loader read " + f.string() +
                             ", which its source's file list (models/sources.cpp) does not name: the job key "
                             "would not follow that file's content");
}

// The model a job evaluates: the base model loaded once per model spec, then the method
// applied once per (model, method, seed) — consecutive jobs of one sweep share both.
class ModelCache {
 public:
  struct Prepared {
    Model model;
    std::shared_ptr<const Tokenizer> tokenizer;
    JobResult method_result;  // site decisions and method metrics, copied into every job
    // The prepared model on one device (weights uploaded once for every evaluation there).
    std::string runner_at;
    std::unique_ptr<ModelRunner> runner;
  };

  // The runner of the prepared model on `where`, made once per (prepared model, device).
  ModelRunner& runner(Prepared& prep, const Placement& where) {
    const std::string at = where.spec_backend() + "#" + std::to_string(where.device);
    if (!prep.runner || prep.runner_at != at) {
      prep.runner.reset();  // a GPU holds one prepared model at a time
      prep.runner = usable_backend(where).make_runner(prep.model, where);
      prep.runner_at = at;
    }
    return *prep.runner;
  }

  Prepared& get(const Job& job, const std::filesystem::path& data_dir, Progress& progress) {
    if (!job.spec.model || !job.spec.method)
      throw std::logic_error("job " + job.label + " has no model or method, but its evaluation needs one");
    const SpecPart& model = *job.spec.model;
    const SpecPart& method = *job.spec.method;
    std::string base_key = model.to_json().dump();
    if (base_key != base_key_) {
      prepared_.reset();
      base_.reset();
      auto t0 = std::chrono::steady_clock::now();
      base_ = load_model(model, data_dir);
      load_seconds_ = seconds_since(t0);
      if (!job.spec.data.is_null()) check_fingerprinted(base_->files, job.spec.data, data_dir);
      base_key_ = base_key;
    }
    std::string prep_key = base_key + method.to_json().dump() + std::to_string(job.spec.seed);
    if (!prepared_ || prep_key != prep_key_) {
      const MethodInfo* info = Registry<MethodInfo>::instance().find(method.name);
      if (!info) throw std::runtime_error("unknown method '" + method.name + "'");
      prepared_.reset();
      prepared_.emplace(Prepared{base_->model, base_->tokenizer, {}, {}, {}});
      MethodContext ctx{method.params, data_dir, base_->tokenizer.get(), uint64_t(job.spec.seed), progress};
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
  const SpecPart& eval = job.spec.eval;
  const std::string& name = eval.name;
  const EvaluatorInfo* info = Registry<EvaluatorInfo>::instance().find(name);
  if (!info) throw std::runtime_error("unknown evaluation '" + name + "'");
  JobResult result;
  // Where it runs is checked first: a CUDA job on a machine without a GPU fails before its
  // method calibrates for minutes.
  const Placement where = placement_of_spec(job.spec.backend, job.device_index);
  if (info->needs_model) usable_backend(where);
  ModelCache::Prepared* prep = info->needs_model ? &cache.get(job, cfg.data_dir, progress) : nullptr;
  ModelRunner* runner = prep ? &cache.runner(*prep, where) : nullptr;
  EvalContext ctx{eval.params, cfg.data_dir, prep ? &prep->model : nullptr,
                  prep ? prep->tokenizer.get() : nullptr, uint64_t(job.spec.seed), progress, runner};
  if (runner) runner->begin_job();
  info->run(ctx, result);
  if (runner) {
    result.info["ran_on"] = runner->where();
    result.info["method_ran_on"] = "cpu";  // methods prepare (and calibrate) the model on the CPU
    for (const auto& [metric, mib] : runner->usage_mib()) result.add(metric, mib, "MiB");
  }
  if (prep) {  // the method's decisions and metrics follow the evaluator's own
    const JobResult& m = prep->method_result;
    result.metrics.insert(result.metrics.end(), m.metrics.begin(), m.metrics.end());
    result.sites.insert(result.sites.end(), m.sites.begin(), m.sites.end());
    for (const auto& [k, v] : m.info.items())
      if (!result.info.contains(k)) result.info[k] = v;
    result.synthetic = prep->model.cfg.synthetic;
  }
  // SQLite would store a NaN as NULL and the job would read as done: a NaN/Inf is no result.
  if (auto why = non_finite_problem(result); !why.empty())
    throw std::runtime_error(why + " (" + name + " produced a value that is not a finite number: NaN weights or "
                             "activations, or an overflow; nothing of this job is stored as a result)");
  return result;
}


// Refreshes this process's running rows on its own connection while the sweep runs, so a
// process on another host sees the lease alive however long a job takes.
class Heartbeat {
 public:
  explicit Heartbeat(std::filesystem::path db) : db_(std::move(db)), thread_([this] { beat(); }) {}
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  static constexpr int kIntervalSeconds = kLeaseSeconds / 10;
  void beat() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::seconds(kIntervalSeconds), [&] { return stop_; })) {
      lock.unlock();
      try {
        Store(db_).heartbeat();
      } catch (const std::exception&) {
        // A missed beat only ages the lease; the next one renews it.
      }
      lock.lock();
    }
  }
  std::filesystem::path db_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members it uses exist
};

void note_interruption(const Job& job, const std::string& error, RunCounts& counts, Progress& progress) {
  counts.interruptions.push_back({job.key, job.label, error});
  progress.message(fmt::format("  INTERRUPTED (not recorded; the next run redoes it): {}", error));
}

// What a failed job's row says: std::bad_alloc alone names nothing.
std::string job_error_text(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e))
    return "out of memory (std::bad_alloc): this job needs more memory than the machine has; a smaller model, "
           "shape or evaluation window, or a larger machine";
  return e.what();
}

// Runs one claimed job and records its outcome. Returns false on an infrastructure failure:
// the claim is released rather than failed, and the sweep should stop.
bool run_claimed(const Job& job, long id, Store& store, const Config& cfg, ModelCache& cache, Progress& progress,
                 RunCounts& counts) {
  auto t0 = std::chrono::steady_clock::now();
  std::string infrastructure_error;
  // Another process reclaimed the row meanwhile (it took this one for dead): the job is its now.
  auto taken_over = [&](const JobReclaimed& e) {
    progress.message(fmt::format("  taken over by another process, not written here: {}", e.what()));
    ++counts.running_elsewhere;
    return true;
  };
  try {
    JobResult r = run_job(job, cfg, cache, progress);
    store.finish_job(id, r, seconds_since(t0));
    ++counts.ran;
    return true;
  } catch (const JobReclaimed& e) {
    return taken_over(e);
  } catch (const std::exception& e) {
    if (is_infrastructure_error(e)) {
      infrastructure_error = e.what();
    } else {
      try {
        const std::string error = job_error_text(e);
        store.fail_job(id, error, seconds_since(t0));
        progress.message(fmt::format("  FAILED: {}", error));
        ++counts.failed;
        return true;
      } catch (const JobReclaimed& r) {
        return taken_over(r);
      } catch (const std::exception& f) {
        if (!is_infrastructure_error(f)) throw;
        infrastructure_error = std::string(e.what()) + "; recording that failed too: " + f.what();
      }
    }
  }
  store.release_job(id);
  note_interruption(job, infrastructure_error, counts, progress);
  return false;
}

void note_not_claimed(ClaimOutcome outcome, const Job& job, RunCounts& counts, Progress& progress) {
  const char* why = outcome == ClaimOutcome::done ? "done by another process"
                    : outcome == ClaimOutcome::failed ? "failed in another process"
                                                      : "running in another process";
  if (outcome == ClaimOutcome::done) ++counts.done_elsewhere;
  else if (outcome == ClaimOutcome::failed) ++counts.failed_elsewhere;
  else ++counts.running_elsewhere;
  progress.message(fmt::format("  skipped {} ({}): {}", job.label, job.key.substr(0, 12), why));
}

// Every job of the selection whose status at the end is failed, with its newest error.
void collect_failures(const Store& store, const std::vector<Job>& jobs, RunCounts& counts) {
  auto statuses = store.job_statuses();
  for (const Job& j : jobs) {
    auto it = statuses.find(j.key);
    if (it == statuses.end() || it->second != "failed") continue;
    auto failed = store.newest_failed_job(j.key);
    counts.failures.push_back({j.key, j.label, failed ? failed->error : ""});
  }
}

}  // namespace

// "I/N": digits only on both sides, nothing else (sscanf took "1/2abc" as 1/2 and " +1/2" too).
bool parse_shard(const std::string& text, int& index, int& count) {
  auto number = [](std::string_view digits, int& v) {
    if (digits.empty() || digits.size() > 6) return false;  // a million shards is plenty
    v = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      v = 10 * v + (c - '0');
    }
    return true;
  };
  const size_t slash = text.find('/');
  int i = 0, n = 0;
  if (slash == std::string::npos || !number(std::string_view(text).substr(0, slash), i) ||
      !number(std::string_view(text).substr(slash + 1), n) || n < 1 || i < 1 || i > n)
    return false;
  index = i - 1;
  count = n;
  return true;
}

// Newest status per job key of an existing DB, opened read-only leaving no file behind; none
// when there is no DB yet.
std::map<std::string, std::string> existing_job_statuses(const std::filesystem::path& db) {
  if (!holds_results(db)) return {};
  return Store(db, /*read_only=*/true, /*leave_no_files=*/true).job_statuses();
}

RunCounts plan_sweep(const Config& cfg, const RunOptions& opt, const std::map<std::string, std::string>& statuses) {
  RunCounts counts;
  counts.selection = shard_jobs(cfg.jobs, opt.shard_index, opt.shard_count);
  counts.selected = static_cast<int>(counts.selection.size());
  for (const auto& j : counts.selection) {
    auto it = statuses.find(j.key);
    const std::string st = it == statuses.end() ? "" : it->second;
    if (st == "done" && !opt.force) {
      ++counts.done_before;
      continue;
    }
    if (st == "failed" && !opt.retry_failed && !opt.force) {
      ++counts.failed_before;
      continue;
    }
    counts.todo.push_back(j);
  }
  return counts;
}

RunCounts run_sweep(const Config& cfg, const RunOptions& opt, Store& store) {
  RunCounts counts = plan_sweep(cfg, opt, store.job_statuses());
  const std::vector<Job>& jobs = counts.selection;
  std::vector<const Job*> todo;
  for (const Job& j : counts.todo) todo.push_back(&j);
  Progress progress(opt.quiet);
  progress.message(fmt::format("flatbench: {} — {} jobs{}, {} done before, {} failed before (--retry-failed), {} to run",
                               cfg.name, counts.selected,
                               opt.shard_count > 1 ? fmt::format(" in shard {}/{}", opt.shard_index + 1, opt.shard_count) : "",
                               counts.done_before, counts.failed_before, todo.size()));
  if (todo.empty()) {
    collect_failures(store, jobs, counts);
    return counts;
  }

  RunInfo run;
  run.uuid = new_uuid();
  run.started_at = now_iso8601();
  run.provenance = collect_provenance(cfg.data_files, cfg.data_dir);
  run.config_path = cfg.path.string();
  run.config_hash = cfg.hash;
  run.config_text = cfg.text;
  if (opt.shard_count > 1) run.shard = fmt::format("{}/{}", opt.shard_index + 1, opt.shard_count);
  store.begin_run(run);

  // Outcomes written since this run began are this sweep's, by whichever process: with
  // --force too, a job another process redid meanwhile is not redone again.
  const ClaimPolicy policy{opt.force, opt.force || opt.retry_failed, run.started_at};
  ModelCache cache;
  {
    Heartbeat heartbeat(store.path());
    for (size_t i = 0; i < todo.size(); ++i) {
      const Job& job = *todo[i];
      Claim claim;
      try {
        claim = store.claim_job(run.uuid, job.key, job.spec.to_json(), job.label, policy);
      } catch (const std::exception& e) {
        if (!is_infrastructure_error(e)) throw;
        note_interruption(job, e.what(), counts, progress);
        break;
      }
      if (claim.outcome != ClaimOutcome::claimed) {
        note_not_claimed(claim.outcome, job, counts, progress);
        continue;
      }
      progress.set_job(fmt::format("[{}/{}]", i + 1, todo.size()));
      progress.message(fmt::format("[{}/{}] {}  ({})", i + 1, todo.size(), job.label, job.key.substr(0, 12)));
      if (!run_claimed(job, claim.job_id, store, cfg, cache, progress, counts)) break;
    }
  }
  try {
    store.end_run(run.uuid);
  } catch (const std::exception& e) {
    progress.message(fmt::format("flatbench: could not record the end of run {}: {}", run.uuid, e.what()));
  }
  collect_failures(store, jobs, counts);
  return counts;
}

}  // namespace fb

// The SQLite results store: runs (provenance), jobs, metrics, per-site decisions,
// GEMM timings. WAL, busy timeout and foreign keys on; the schema is versioned with
// PRAGMA user_version and migrated forward on open.
//
// A job's outcome is written in one transaction (finish_job): a process killed at any
// point leaves either the whole job or nothing of it, and the next run redoes it.
// Rows are keyed by stable identities (run uuid, job key) so shard and device DBs
// merge idempotently.
#pragma once

#include "harness/results.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace fb {

using json = nlohmann::json;

inline constexpr int kSchemaVersion = 1;

struct RunInfo {
  std::string uuid;
  std::string started_at, ended_at;
  json provenance = json::object();  // git, build, host, cpu, gpu, blas, data hashes
  std::string config_path, config_hash, config_text;
  std::string shard;  // "i/N" or ""
};

struct JobRow {
  long id = 0;
  std::string key, run_uuid;
  std::string model, method, evaluation;
  std::string label;    // human label from the config expansion
  json spec;            // the job's canonical JSON
  std::string status;   // running | done | failed
  std::string error;
  std::string started_at, ended_at;
  double duration_s = 0;
  bool synthetic = false;
};

class Store {
 public:
  // Opens (creating parent folders and the file) and migrates to kSchemaVersion.
  explicit Store(const std::filesystem::path& path, bool read_only = false);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int schema_version() const;
  const std::filesystem::path& path() const { return path_; }

  void begin_run(const RunInfo& run);
  void end_run(const std::string& run_uuid);

  // Status of the newest row for a job key: "done", "failed", "running" or "" (never run).
  std::string job_status(const std::string& key) const;
  std::map<std::string, std::string> job_statuses() const;  // key → newest status

  // Marks a job as started (its own small transaction, so `list` shows it).
  long start_job(const std::string& run_uuid, const std::string& key, const json& spec, const std::string& label = "");
  // Writes the whole outcome in one transaction and marks the job done (or failed).
  void finish_job(long job_id, const JobResult& result, double duration_s);
  void fail_job(long job_id, const std::string& error, double duration_s);

  std::vector<JobRow> jobs(const std::string& where_sql = "", const std::vector<std::string>& args = {}) const;
  std::optional<JobRow> newest_job(const std::string& key_prefix) const;
  std::vector<Metric> metrics(long job_id) const;
  std::vector<SiteRecord> sites(long job_id) const;
  std::vector<GemmRecord> gemms(long job_id) const;
  std::optional<RunInfo> run(const std::string& uuid) const;

  // Folds another DB into this one; rows already present (same run uuid / job key) are skipped.
  // Returns the number of jobs added.
  long merge_from(const std::filesystem::path& other);

  sqlite3* handle() const { return db_; }  // for reports that query directly

 private:
  void exec(const std::string& sql) const;
  void retry_while_busy(const std::function<void()>& step) const;  // bounded retries on SQLITE_BUSY
  void migrate();
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
};

// Current UTC time as ISO-8601 with milliseconds.
std::string now_iso8601();
// 128 random bits as 32 hex characters.
std::string new_uuid();

}  // namespace fb

// The SQLite results store: runs (provenance), jobs, metrics, per-site decisions,
// GEMM timings. WAL, busy timeout and foreign keys on; the schema is versioned with
// PRAGMA user_version and migrated forward on open.
//
// A job's outcome is written in one transaction (finish_job): a process killed at any
// point leaves either the whole job or nothing of it, and the next run redoes it.
// Rows are keyed by stable identities (run uuid, job key) so shard and device DBs
// merge idempotently.
#pragma once

#include "core/results.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

struct sqlite3;

namespace fb {

using json = nlohmann::json;

inline constexpr int kSchemaVersion = 4;

// Where every command (run, merge, report, plot, nightly, ...) reads and writes results unless --db says otherwise.
inline constexpr const char* kDefaultDbPath = "results/flatbench.db";

// An error SQLite reported, with its primary result code, so a caller can tell the machine's
// trouble (a full disk, a lock held too long, an I/O error) from a job's own failure.
// Our running row was reclaimed by another process (which took this one for dead): the job is
// theirs now, so its outcome here is neither written nor this job's failure.
class JobReclaimed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class StoreError : public std::runtime_error {
 public:
  StoreError(const std::string& what, int sqlite_code) : std::runtime_error(what), code_(sqlite_code) {}
  int sqlite_code() const { return code_; }

 private:
  int code_;
};

// True when `e` is the infrastructure's failure, not the job's: SQLite FULL, BUSY, LOCKED,
// IOERR, NOMEM, or a system error ENOSPC, EDQUOT, EIO. Such a job is not recorded as failed:
// the next run redoes it.
bool is_infrastructure_error(const std::exception& e);

// Who runs a job: "host:pid:start" (start = the process's start time in clock ticks since
// boot, so a reused pid is not mistaken for the owner).
std::string this_process_owner();
// Whether the owner of a running row is still at work: on this host, its process exists and
// started when the owner says; on another host, its heartbeat is younger than the lease.
inline constexpr int kLeaseSeconds = 600;
bool owner_is_alive(const std::string& owner, const std::string& heartbeat_at);

// What claim_job did with a job.
enum class ClaimOutcome {
  claimed,            // a new running row is ours: run the job
  done,               // done (before, or by another process during this run): skip
  failed,             // its newest attempt failed and the policy does not retry it
  running_elsewhere,  // a live process is running it: skip
};

struct ClaimPolicy {
  bool redo_done = false;    // --force
  bool redo_failed = false;  // --retry-failed (and --force)
  // A done or failed row that ended at or after this time (ISO-8601), or that a run still in
  // progress in a live process wrote, is this sweep's own outcome: it is not redone even with
  // redo_done / redo_failed, so concurrent forced runs redo each job once. Empty: no such row.
  std::string fresh_since;
};

struct Claim {
  ClaimOutcome outcome = ClaimOutcome::claimed;
  long job_id = 0;  // the running row, when claimed
};

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
  // leave_no_files (read-only only): create no -wal/-shm beside a database no writer has open,
  // for commands that must change no file (run --dry-run).
  explicit Store(const std::filesystem::path& path, bool read_only = false, bool leave_no_files = false);
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
  // Keys whose newest row is running, and whether its owner process is still alive (a dead
  // owner's row is reclaimed by the next run). Empty for a schema-1 DB, which records no owners.
  std::map<std::string, bool> running_owner_alive() const;

  // Claims a job for this process in one IMMEDIATE transaction: checks the key's rows (a
  // live process's running row is never taken over; a dead one's is deleted), and per the
  // policy either inserts our running row or says why not. Its own transaction, so `list`
  // shows the job running.
  Claim claim_job(const std::string& run_uuid, const std::string& key, const json& spec, const std::string& label,
                  const ClaimPolicy& policy);
  // claim_job that redoes done and failed jobs; throws if a live process is running the key.
  long start_job(const std::string& run_uuid, const std::string& key, const json& spec, const std::string& label = "");
  // Writes the whole outcome in one transaction and marks the job done (or failed). Only our
  // own running row is written: a row another process has reclaimed throws JobReclaimed and is
  // left alone (that process runs the job now).
  void finish_job(long job_id, const JobResult& result, double duration_s);
  void fail_job(long job_id, const std::string& error, double duration_s);
  // Forgets our running row (an infrastructure failure: nothing of the job is recorded, and
  // the next run redoes it). Best effort: if it cannot be written, the row stays 'running'
  // with a dead owner once this process ends, which the next run reclaims.
  void release_job(long job_id) noexcept;
  // Refreshes the heartbeat of every row this process is running (the lease other hosts see).
  void heartbeat();

  std::vector<JobRow> jobs() const;  // every row, oldest first
  // The row a report shows for a job key: its newest done row, else its newest row; none if never run.
  std::optional<JobRow> reported_job(const std::string& key) const;
  // The newest failed row of a job key, if any (its error is why the job failed).
  std::optional<JobRow> newest_failed_job(const std::string& key) const;
  // Per job key that starts with key_prefix (or whose row id it is): its newest done row, else
  // its newest row; newest first. An empty prefix matches nothing.
  std::vector<JobRow> matching_jobs(const std::string& key_prefix) const;
  // "job 1a2b3c4d5e6f (label): metric 'ppl' is nan" for each done job whose stored metrics are
  // not all finite (older binaries stored a NaN as NULL); their row ids in `ids`.
  std::vector<std::string> jobs_with_non_finite_metrics(std::vector<long>* ids = nullptr) const;
  std::vector<Metric> metrics(long job_id) const;
  std::vector<SiteRecord> sites(long job_id) const;
  std::vector<GemmRecord> gemms(long job_id) const;
  std::optional<RunInfo> run(const std::string& uuid) const;

  // What reports read, so that no SQL text lives outside the store.
  long max_job_id() const;              // the newest row id, 0 in an empty DB
  std::string latest_run_uuid() const;  // the run started last, or ""
  // Uuids of the runs whose uuid / provenance git commit starts with `prefix` (case-insensitive;
  // '%' and '_' are plain characters, not wildcards), oldest first.
  std::vector<std::string> runs_with_uuid_prefix(const std::string& prefix) const;
  std::vector<std::string> runs_of_commit(const std::string& commit_prefix) const;
  // Done rows, oldest first (or newest first): all of them, or those of one key / one run / a
  // run whose uuid starts with a plain, case-insensitive prefix / not of one run / after or before a row id.
  struct DoneJobsFilter {
    std::string key, run_uuid;
    long after_id = 0;
    long before_id = 0;
    std::string run_uuid_prefix, not_run_uuid;
    bool newest_first = false;
  };
  std::vector<JobRow> done_jobs(const DoneJobsFilter& filter) const;
  std::vector<JobRow> done_jobs() const { return done_jobs(DoneJobsFilter{}); }
  // The newest done row per job key, oldest first; only those whose method / evaluation has
  // this name ("" = any, "-" = none, e.g. a GEMM job with no method).
  std::vector<JobRow> latest_done_jobs(const std::string& method = "", const std::string& evaluation = "") const;

  // Folds another DB into this one, in one transaction: all of it or, on an error, nothing.
  // Rows already present (same run uuid / job key) are skipped, and so is a done job whose
  // stored metrics are not finite numbers (one line each in `skipped`, naming source and job).
  // Returns the number of jobs added.
  long merge_from(const std::filesystem::path& other, std::vector<std::string>* skipped = nullptr);

  sqlite3* handle() const { return db_; }  // for tests that inspect or damage the file directly
  // True when this read-only open of an older DB reads a migrated copy in memory.
  bool reads_a_migrated_copy() const { return migrated_copy_; }
  // Writes what this connection reads (a migrated copy included) into a new SQLite file.
  void save_as(const std::filesystem::path& file) const;

 private:
  void exec(const std::string& sql) const;
  void retry_while_busy(const std::function<void()>& step) const;  // bounded retries on SQLITE_BUSY
  void migrate();
  void migrate_a_copy_in_memory();
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  bool migrated_copy_ = false;
  std::string owner_ = this_process_owner();
};

// The store's tables and, per table, its current columns (name and declared type, as PRAGMA
// table_info reports them) as the store's field lists spell them: one list per table drives its
// INSERT, SELECT, reader and merge_from, and must equal what the migrations produce.
struct StoreColumn {
  std::string name, type;
};
std::vector<std::string> store_tables();
std::vector<StoreColumn> store_columns(const std::string& table);  // empty for an unknown table

// Why a results database cannot live at `path` ("" when it can): empty, ":memory:" or a URI
// (gone at exit), a directory, or under a file. Commands check --db with it before running anything.
std::string db_path_problem(const std::filesystem::path& path);
// Throws, naming `path`, unless it is a readable, intact flatbench results database of a schema
// this build reads: missing, not SQLite, another program's SQLite file, newer schema, corrupt.
void check_results_database(const std::filesystem::path& path);

// Whether `path` holds results to read: false for a missing or empty file (no jobs yet: `run`
// makes an empty file a database); throws, naming the file, for anything that is not a
// readable flatbench results database (check_results_database).
bool holds_results(const std::filesystem::path& path);

// Current UTC time as ISO-8601 with milliseconds.
std::string now_iso8601();
// 128 random bits as 32 hex characters.
std::string new_uuid();

}  // namespace fb

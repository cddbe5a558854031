// SQLite store. Depends only on sqlite3 and nlohmann-json so the GPU tool can build it
// on a machine without the rest of the harness's libraries.
#include "harness/store.h"

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>

namespace fb {

namespace {

// Each entry migrates schema version i → i+1. Never edit a shipped entry: append a new one.
const char* const kMigrations[] = {
    // 0 → 1
    R"SQL(
CREATE TABLE runs (
  uuid TEXT PRIMARY KEY,
  started_at TEXT NOT NULL,
  ended_at TEXT,
  provenance TEXT NOT NULL,          -- JSON: git, build, host, cpu, gpu, blas, data file hashes
  config_path TEXT, config_hash TEXT, config_text TEXT,
  shard TEXT
);
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  run_uuid TEXT NOT NULL REFERENCES runs(uuid),
  key TEXT NOT NULL,                 -- hash of the job's canonical JSON
  model TEXT, method TEXT, evaluation TEXT, label TEXT,
  spec TEXT NOT NULL,                -- the canonical JSON itself
  status TEXT NOT NULL CHECK (status IN ('running','done','failed')),
  error TEXT,
  info TEXT,
  synthetic INTEGER NOT NULL DEFAULT 0,
  started_at TEXT NOT NULL, ended_at TEXT, duration_s REAL,
  UNIQUE (run_uuid, key)
);
CREATE INDEX jobs_key ON jobs(key, id);
CREATE TABLE metrics (
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  name TEXT NOT NULL, value REAL, unit TEXT, n INTEGER, stddev REAL,
  samples TEXT,                      -- JSON array of the raw repetitions
  PRIMARY KEY (job_id, name)
);
CREATE TABLE sites (
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  layer INTEGER, role TEXT, w_bits INTEGER, a_bits INTEGER,
  k_in INTEGER, k_flat INTEGER, k_pad INTEGER,
  w_scale REAL, a_scale REAL, kl REAL, clip REAL, mse REAL, flops REAL,
  extra TEXT
);
CREATE INDEX sites_job ON sites(job_id);
CREATE TABLE gemm (
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  device TEXT, backend TEXT, dtype TEXT, m INTEGER, n INTEGER, k INTEGER,
  reps INTEGER, min_ms REAL, median_ms REAL, max_ms REAL, gops REAL, ratio_to_fp32 REAL,
  samples TEXT, extra TEXT
);
CREATE INDEX gemm_job ON gemm(job_id);
)SQL",
    // 1 → 2: who runs a running row, and its heartbeat, so that concurrent runs claim jobs
    // without taking over a live process's work (and reclaim a dead one's).
    R"SQL(
ALTER TABLE jobs ADD COLUMN owner TEXT;        -- host:pid:start of the process running it
ALTER TABLE jobs ADD COLUMN heartbeat_at TEXT; -- refreshed while it runs: the lease other hosts see
)SQL",
};
constexpr int kMigrationCount = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kMigrationCount == kSchemaVersion, "one migration per schema version");

// RAII prepared statement with positional binding helpers.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK)
      throw StoreError(std::string("SQL prepare failed: ") + sqlite3_errmsg(db) + " in: " + sql,
                       sqlite3_extended_errcode(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, const char* v) { return bind(i, std::string(v)); }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, long v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, int v) { return bind(i, static_cast<long>(v)); }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw StoreError(std::string("SQL step failed: ") + sqlite3_errmsg(db_), sqlite3_extended_errcode(db_));
  }
  std::string text(int c) const {
    auto p = sqlite3_column_text(s_, c);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  double real(int c) const { return sqlite3_column_double(s_, c); }
  bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  long integer(int c) const { return sqlite3_column_int64(s_, c); }
  json js(int c) const {
    std::string t = text(c);
    return t.empty() ? json() : json::parse(t);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// BEGIN IMMEDIATE … COMMIT, rolled back if the scope is left by an exception.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { run("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw StoreError(std::string(sql) + " failed: " + msg, sqlite3_extended_errcode(db_));
    }
  }
  sqlite3* db_;
  bool done_ = false;
};

// Reads columns 0, 1, 2, … of the current row into the given fields, in order; each
// field's type picks the conversion (JSON columns parse, an array column fills a vector).
void read_column(const Stmt& s, int c, std::string& v) { v = s.text(c); }
// A NULL REAL (how SQLite stores a NaN bind) reads as NaN, never as a plausible 0.
void read_column(const Stmt& s, int c, double& v) { v = s.is_null(c) ? std::nan("") : s.real(c); }
void read_column(const Stmt& s, int c, long& v) { v = s.integer(c); }
void read_column(const Stmt& s, int c, int& v) { v = static_cast<int>(s.integer(c)); }
void read_column(const Stmt& s, int c, bool& v) { v = s.integer(c) != 0; }
void read_column(const Stmt& s, int c, json& v) { v = s.js(c); }
// Repetitions: a JSON null (how a NaN is dumped) reads as NaN, so one bad repetition is
// flagged by non_finite_problem instead of making the whole read throw.
void read_column(const Stmt& s, int c, std::vector<double>& v) {
  json a = s.js(c);
  if (!a.is_array()) return;
  for (const json& x : a) v.push_back(x.is_number() ? x.get<double>() : std::nan(""));
}
template <class... F>
void read_columns(const Stmt& s, F&... fields) {
  int c = 0;
  (read_column(s, c++, fields), ...);
}

// SELECT columns FROM table for one job, in insertion order; one T per row, filled by read.
template <class T, class Read>
std::vector<T> rows_of_job(sqlite3* db, const char* table, const char* columns, long job_id, Read read) {
  Stmt s(db, std::string("SELECT ") + columns + " FROM " + table + " WHERE job_id = ? ORDER BY rowid");
  s.bind(1, job_id);
  std::vector<T> out;
  while (s.step()) {
    T r;
    read(s, r);
    out.push_back(std::move(r));
  }
  return out;
}

JobRow read_job(const Stmt& s) {
  JobRow j;
  read_columns(s, j.id, j.key, j.run_uuid, j.model, j.method, j.evaluation, j.spec, j.status, j.error, j.started_at,
               j.ended_at, j.duration_s, j.synthetic, j.label);
  if (std::isnan(j.duration_s)) j.duration_s = 0;  // a running row has none yet
  return j;
}
// "job 1a2b3c4d5e6f (label)": how messages name a job.
std::string fmt_job(const JobRow& j) {
  return "job " + j.key.substr(0, 12) + (j.label.empty() ? "" : " (" + j.label + ")");
}

constexpr const char* kJobColumns =
    "id, key, run_uuid, model, method, evaluation, spec, status, error, started_at, ended_at, duration_s, synthetic, "
    "label";
// The columns of the per-job tables after job_id, in the order their readers below take them
// (merge_from copies the same lists).
constexpr const char* kMetricColumns = "name, value, unit, n, stddev, samples";
constexpr const char* kSiteColumns =
    "layer, role, w_bits, a_bits, k_in, k_flat, k_pad, w_scale, a_scale, kl, clip, mse, flops, extra";
constexpr const char* kGemmColumns =
    "device, backend, dtype, m, n, k, reps, min_ms, median_ms, max_ms, gops, ratio_to_fp32, samples, extra";

std::string iso8601(std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  std::time_t t = system_clock::to_time_t(now);
  int ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

// Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot; -1 when
// there is no such process (or no /proc).
long process_start_ticks(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  size_t pos = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (pos == std::string::npos) return -1;
  std::string rest = stat.substr(pos + 2);  // from field 3 on
  long value = -1;
  size_t field = 3, start = 0;
  while (field < 22 && start != std::string::npos) {
    start = rest.find(' ', start);
    if (start != std::string::npos) ++start;
    ++field;
  }
  if (start == std::string::npos || std::sscanf(rest.c_str() + start, "%ld", &value) != 1) return -1;
  return value;
}

bool process_exists(long pid) { return pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// A claimed job's rows, oldest first, as claim_job weighs them.
struct KeyRow {
  long id = 0;
  std::string status, owner, heartbeat_at, ended_at;
};

// The outcome a claim settles on without running the job, or claimed when it must run.
ClaimOutcome settled_outcome(const std::vector<KeyRow>& rows, const ClaimPolicy& policy) {
  bool any_done = false;
  const KeyRow* newest_finished = nullptr;
  for (const KeyRow& r : rows) {
    if (r.status == "running") continue;
    any_done |= r.status == "done";
    newest_finished = &r;
  }
  if (any_done && !policy.redo_done) return ClaimOutcome::done;
  if (!newest_finished) return ClaimOutcome::claimed;
  const bool fresh = !policy.fresh_since.empty() && newest_finished->ended_at >= policy.fresh_since;
  if (fresh) return newest_finished->status == "done" ? ClaimOutcome::done : ClaimOutcome::failed;
  if (!any_done && newest_finished->status == "failed" && !policy.redo_failed) return ClaimOutcome::failed;
  return ClaimOutcome::claimed;
}

}  // namespace

std::string now_iso8601() { return iso8601(std::chrono::system_clock::now()); }

bool is_infrastructure_error(const std::exception& e) {
  if (const auto* s = dynamic_cast<const StoreError*>(&e)) {
    switch (s->sqlite_code() & 0xff) {
      case SQLITE_FULL: case SQLITE_BUSY: case SQLITE_LOCKED: case SQLITE_IOERR: case SQLITE_NOMEM:
      case SQLITE_READONLY: case SQLITE_CANTOPEN:
        return true;
      default:
        return false;
    }
  }
  if (const auto* s = dynamic_cast<const std::system_error*>(&e)) {
    const std::error_code& c = s->code();
    if (c.category() != std::generic_category() && c.category() != std::system_category()) return false;
    return c.value() == ENOSPC || c.value() == EDQUOT || c.value() == EIO;
  }
  return false;
}

std::string this_process_owner() {  // not cached: a forked child is another owner
  return host_name() + ":" + std::to_string(getpid()) + ":" + std::to_string(process_start_ticks(getpid()));
}

bool owner_is_alive(const std::string& owner, const std::string& heartbeat_at) {
  // "host:pid:start", parsed from the right. A row without an owner (schema 1) is a dead one's.
  size_t b = owner.rfind(':');
  size_t a = b == std::string::npos || b == 0 ? std::string::npos : owner.rfind(':', b - 1);
  if (a == std::string::npos) return false;
  const std::string host = owner.substr(0, a);
  if (host == host_name()) {
    long pid = std::atol(owner.c_str() + a + 1), start = std::atol(owner.c_str() + b + 1);
    return process_exists(pid) && (start < 0 || process_start_ticks(pid) == start);
  }
  const auto lease_start = std::chrono::system_clock::now() - std::chrono::seconds(kLeaseSeconds);
  return !heartbeat_at.empty() && heartbeat_at >= iso8601(lease_start);
}

std::string new_uuid() {
  std::random_device rd;
  char buf[33];
  for (int i = 0; i < 4; ++i) std::snprintf(buf + 8 * i, 9, "%08x", static_cast<unsigned>(rd()));
  return buf;
}

namespace {
std::string fmt_percent(unsigned char c) {
  char buf[4];
  std::snprintf(buf, sizeof buf, "%%%02X", c);
  return buf;
}

// "file:" URI of a path, percent-encoding what a URI would otherwise read (?, #, %, spaces).
std::string file_uri(const std::filesystem::path& path, const char* query) {
  std::string out = "file:";
  for (unsigned char c : std::filesystem::absolute(path).string()) {
    if (std::isalnum(c) || std::string_view("/-_.~").find(static_cast<char>(c)) != std::string_view::npos)
      out += static_cast<char>(c);
    else
      out += fmt_percent(c);
  }
  return out + "?" + query;
}
}  // namespace

Store::Store(const std::filesystem::path& path, bool read_only, bool leave_no_files) : path_(path) {
  if (!read_only && path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  std::string name = path.string();
  // A read-only open of a WAL database creates its -wal and -shm when no writer holds them; with
  // no -wal there is no writer and nothing uncheckpointed, so the file alone can be read immutable.
  if (read_only && leave_no_files && !std::filesystem::exists(path.string() + "-wal")) {
    name = file_uri(path, "immutable=1");
    flags |= SQLITE_OPEN_URI;
  }
  if (sqlite3_open_v2(name.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error("cannot open results database " + path.string() + ": " + msg);
  }
  try {  // a constructor that throws runs no destructor: close the handle here
    sqlite3_busy_timeout(db_, 30000);
    exec("PRAGMA foreign_keys = ON");
    if (!read_only) {
      // Switching a fresh file to WAL takes an exclusive lock and reports SQLITE_BUSY at once,
      // without the busy handler, when another process opens the same new DB at that moment.
      retry_while_busy([&] { exec("PRAGMA journal_mode = WAL"); });
      exec("PRAGMA synchronous = NORMAL");
      retry_while_busy([&] { migrate(); });
    } else if (schema_version() > kSchemaVersion) {
      throw std::runtime_error(path.string() + " was written by a newer flatbench (schema " +
                               std::to_string(schema_version()) + ")");
    }
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Store::~Store() { sqlite3_close(db_); }

void Store::retry_while_busy(const std::function<void()>& step) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    try {
      step();
      return;
    } catch (const std::runtime_error&) {
      int code = sqlite3_errcode(db_);
      if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || std::chrono::steady_clock::now() > deadline) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

void Store::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw StoreError(path_.string() + ": " + msg, sqlite3_extended_errcode(db_));
  }
}

int Store::schema_version() const {
  Stmt s(db_, "PRAGMA user_version");
  s.step();
  return static_cast<int>(s.integer(0));
}

void Store::migrate() {
  Transaction tx(db_);
  int v = schema_version();
  if (v > kSchemaVersion)
    throw std::runtime_error(path_.string() + " has schema " + std::to_string(v) + ", newer than this flatbench (" +
                             std::to_string(kSchemaVersion) + ")");
  for (; v < kSchemaVersion; ++v) {
    exec(kMigrations[v]);
    exec("PRAGMA user_version = " + std::to_string(v + 1));
  }
  tx.commit();
}

void Store::begin_run(const RunInfo& run) {
  Stmt s(db_,
         "INSERT INTO runs(uuid, started_at, provenance, config_path, config_hash, config_text, shard) "
         "VALUES (?,?,?,?,?,?,?)");
  s.bind(1, run.uuid).bind(2, run.started_at.empty() ? now_iso8601() : run.started_at).bind(3, run.provenance.dump());
  s.bind(4, run.config_path).bind(5, run.config_hash).bind(6, run.config_text).bind(7, run.shard);
  s.step();
}

void Store::end_run(const std::string& run_uuid) {
  Stmt s(db_, "UPDATE runs SET ended_at = ? WHERE uuid = ?");
  s.bind(1, now_iso8601()).bind(2, run_uuid);
  s.step();
}

std::string Store::job_status(const std::string& key) const {
  Stmt s(db_, "SELECT status FROM jobs WHERE key = ? ORDER BY (status = 'done') DESC, id DESC LIMIT 1");
  s.bind(1, key);
  return s.step() ? s.text(0) : "";
}

std::map<std::string, std::string> Store::job_statuses() const {
  // A key counts as done if any row for it is done; otherwise its newest status.
  std::map<std::string, std::string> out;
  Stmt s(db_, "SELECT key, status FROM jobs ORDER BY id");
  while (s.step()) {
    auto& st = out[s.text(0)];
    if (st != "done") st = s.text(1);
  }
  return out;
}

Claim Store::claim_job(const std::string& run_uuid, const std::string& key, const json& spec,
                       const std::string& label, const ClaimPolicy& policy) {
  auto name_of = [&](const char* part) -> std::string {
    if (!spec.contains(part) || spec[part].is_null()) return "";
    return spec[part].value("name", "");
  };
  Transaction tx(db_);  // IMMEDIATE: no other process claims between our check and our insert
  std::vector<KeyRow> rows;
  {
    Stmt s(db_, "SELECT id, status, owner, heartbeat_at, ended_at FROM jobs WHERE key = ? ORDER BY id");
    s.bind(1, key);
    while (s.step()) {
      KeyRow r;
      read_columns(s, r.id, r.status, r.owner, r.heartbeat_at, r.ended_at);
      rows.push_back(std::move(r));
    }
  }
  for (const KeyRow& r : rows)
    if (r.status == "running" && owner_is_alive(r.owner, r.heartbeat_at)) return {ClaimOutcome::running_elsewhere};
  if (ClaimOutcome o = settled_outcome(rows, policy); o != ClaimOutcome::claimed) return {o};
  // A job left 'running' by a dead process is forgotten (a running row holds no results:
  // finish_job writes them with the status); the redo replaces it.
  for (const KeyRow& r : rows) {
    if (r.status != "running") continue;
    Stmt del(db_, "DELETE FROM jobs WHERE id = ?");
    del.bind(1, r.id);
    del.step();
  }
  const std::string now = now_iso8601();
  Stmt s(db_,
         "INSERT INTO jobs(run_uuid, key, model, method, evaluation, label, spec, status, started_at, owner, "
         "heartbeat_at) VALUES (?,?,?,?,?,?,?,'running',?,?,?)");
  s.bind(1, run_uuid).bind(2, key).bind(3, name_of("model")).bind(4, name_of("method")).bind(5, name_of("eval"));
  s.bind(6, label).bind(7, spec.dump()).bind(8, now).bind(9, owner_).bind(10, now);
  s.step();
  long id = sqlite3_last_insert_rowid(db_);
  tx.commit();
  return {ClaimOutcome::claimed, id};
}

long Store::start_job(const std::string& run_uuid, const std::string& key, const json& spec,
                      const std::string& label) {
  Claim c = claim_job(run_uuid, key, spec, label, {true, true, ""});
  if (c.outcome != ClaimOutcome::claimed)
    throw std::runtime_error(path_.string() + ": job " + key + " is running in another live process");
  return c.job_id;
}

void Store::release_job(long job_id) noexcept {
  try {
    Stmt s(db_, "DELETE FROM jobs WHERE id = ? AND status = 'running' AND owner = ?");
    s.bind(1, job_id).bind(2, owner_);
    s.step();
  } catch (const std::exception&) {
    // Left 'running' under our owner: once this process ends, the next run reclaims it.
  }
}

void Store::heartbeat() {
  Stmt s(db_, "UPDATE jobs SET heartbeat_at = ? WHERE owner = ? AND status = 'running'");
  s.bind(1, now_iso8601()).bind(2, owner_);
  s.step();
}

void Store::finish_job(long job_id, const JobResult& r, double duration_s) {
  Transaction tx(db_);
  // First, and only if the row is still ours: a reclaimed row belongs to its new runner.
  Stmt mark(db_,
            "UPDATE jobs SET status='done', error=NULL, info=?, synthetic=?, ended_at=?, duration_s=? "
            "WHERE id=? AND status='running' AND owner=?");
  mark.bind(1, r.info.dump()).bind(2, r.synthetic ? 1 : 0).bind(3, now_iso8601()).bind(4, duration_s);
  mark.bind(5, job_id).bind(6, owner_);
  mark.step();
  if (sqlite3_changes(db_) != 1)
    throw std::runtime_error(path_.string() + ": job row " + std::to_string(job_id) +
                             " is no longer this process's running row (another process reclaimed it); "
                             "its outcome is not written");
  for (const auto& m : r.metrics) {
    Stmt s(db_, "INSERT INTO metrics(job_id, name, value, unit, n, stddev, samples) VALUES (?,?,?,?,?,?,?)");
    s.bind(1, job_id).bind(2, m.name).bind(3, m.value).bind(4, m.unit).bind(5, m.n).bind(6, m.stddev);
    if (m.samples.empty()) s.bind_null(7); else s.bind(7, json(m.samples).dump());
    s.step();
  }
  for (const auto& x : r.sites) {
    Stmt s(db_,
           "INSERT INTO sites(job_id, layer, role, w_bits, a_bits, k_in, k_flat, k_pad, w_scale, a_scale, kl, clip, "
           "mse, flops, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    s.bind(1, job_id).bind(2, x.layer).bind(3, x.role).bind(4, x.w_bits).bind(5, x.a_bits).bind(6, x.k_in);
    s.bind(7, x.k_flat).bind(8, x.k_pad).bind(9, x.w_scale).bind(10, x.a_scale).bind(11, x.kl).bind(12, x.clip);
    s.bind(13, x.mse).bind(14, x.flops).bind(15, x.extra.dump());
    s.step();
  }
  for (const auto& g : r.gemms) {
    Stmt s(db_,
           "INSERT INTO gemm(job_id, device, backend, dtype, m, n, k, reps, min_ms, median_ms, max_ms, gops, "
           "ratio_to_fp32, samples, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    s.bind(1, job_id).bind(2, g.device).bind(3, g.backend).bind(4, g.dtype).bind(5, g.m).bind(6, g.n).bind(7, g.k);
    s.bind(8, g.reps).bind(9, g.min_ms).bind(10, g.median_ms).bind(11, g.max_ms).bind(12, g.gops);
    s.bind(13, g.ratio_to_fp32).bind(14, json(g.samples_ms).dump()).bind(15, g.extra.dump());
    s.step();
  }
  tx.commit();
}

void Store::fail_job(long job_id, const std::string& error, double duration_s) {
  Stmt s(db_,
         "UPDATE jobs SET status='failed', error=?, ended_at=?, duration_s=? "
         "WHERE id=? AND status='running' AND owner=?");
  s.bind(1, error).bind(2, now_iso8601()).bind(3, duration_s).bind(4, job_id).bind(5, owner_);
  s.step();
}

std::vector<JobRow> Store::jobs(const std::string& where_sql, const std::vector<std::string>& args) const {
  Stmt s(db_, std::string("SELECT ") + kJobColumns + " FROM jobs " + where_sql);
  for (size_t i = 0; i < args.size(); ++i) s.bind(static_cast<int>(i + 1), args[i]);
  std::vector<JobRow> out;
  while (s.step()) out.push_back(read_job(s));
  return out;
}

std::vector<JobRow> Store::matching_jobs(const std::string& key_prefix) const {
  if (key_prefix.empty()) return {};
  // A plain prefix (substr, not LIKE: '%' and '_' are no wildcards) or a row id; per key its
  // newest done row, else its newest row, as `show` reports it.
  return jobs(
      "WHERE id IN (SELECT (SELECT j.id FROM jobs j WHERE j.key = k.key ORDER BY (j.status = 'done') DESC, j.id DESC "
      "LIMIT 1) FROM (SELECT DISTINCT key FROM jobs WHERE substr(key, 1, length(?1)) = ?1 OR CAST(id AS TEXT) = ?1) k) "
      "ORDER BY id DESC",
      {key_prefix});
}

std::vector<Metric> Store::metrics(long job_id) const {
  return rows_of_job<Metric>(db_, "metrics", kMetricColumns, job_id, [](const Stmt& s, Metric& m) {
    read_columns(s, m.name, m.value, m.unit, m.n, m.stddev, m.samples);
  });
}

std::vector<SiteRecord> Store::sites(long job_id) const {
  return rows_of_job<SiteRecord>(db_, "sites", kSiteColumns, job_id, [](const Stmt& s, SiteRecord& r) {
    read_columns(s, r.layer, r.role, r.w_bits, r.a_bits, r.k_in, r.k_flat, r.k_pad, r.w_scale, r.a_scale, r.kl, r.clip,
                 r.mse, r.flops, r.extra);
  });
}

std::vector<GemmRecord> Store::gemms(long job_id) const {
  return rows_of_job<GemmRecord>(db_, "gemm", kGemmColumns, job_id, [](const Stmt& s, GemmRecord& g) {
    read_columns(s, g.device, g.backend, g.dtype, g.m, g.n, g.k, g.reps, g.min_ms, g.median_ms, g.max_ms, g.gops,
                 g.ratio_to_fp32, g.samples_ms, g.extra);
  });
}

std::optional<RunInfo> Store::run(const std::string& uuid) const {
  Stmt s(db_,
         "SELECT uuid, started_at, ended_at, provenance, config_path, config_hash, config_text, shard FROM runs "
         "WHERE uuid = ?");
  s.bind(1, uuid);
  if (!s.step()) return std::nullopt;
  RunInfo r;
  read_columns(s, r.uuid, r.started_at, r.ended_at, r.provenance, r.config_path, r.config_hash, r.config_text, r.shard);
  return r;
}

std::vector<std::string> Store::jobs_with_non_finite_metrics(std::vector<long>* ids) const {
  std::vector<std::string> problems;
  for (const JobRow& j : jobs("WHERE status = 'done' ORDER BY id")) {
    for (const Metric& m : metrics(j.id)) {
      std::string why = non_finite_problem(m);
      if (why.empty()) continue;
      problems.push_back(fmt_job(j) + ": " + why);
      if (ids) ids->push_back(j.id);
      break;
    }
  }
  return problems;
}

std::string db_path_problem(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const std::string p = path.string();
  if (p.empty()) return "an empty path: results must go to a database file";
  if (p == ":memory:" || p.rfind("file:", 0) == 0)
    return "'" + p + "' is not a file (an in-memory or URI database is gone when flatbench exits): name a file";
  std::error_code ec;
  if (fs::is_directory(path, ec) || p.back() == '/') return "'" + p + "' is a directory, not a database file";
  if (fs::exists(path, ec) && !fs::is_regular_file(path, ec))
    return "'" + p + "' is not a regular file (a device, pipe or socket cannot hold a database)";
  for (fs::path up = fs::absolute(path, ec).parent_path(); !up.empty(); up = up.parent_path()) {
    if (fs::exists(up, ec)) {
      if (!fs::is_directory(up, ec)) return "'" + p + "': '" + up.string() + "' is a file, not a folder";
      break;
    }
    if (up == up.root_path()) break;
  }
  return "";
}

void check_results_database(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const std::string p = path.string();
  if (!fs::exists(path)) throw std::runtime_error(p + ": no such file (not a flatbench results database)");
  if (fs::is_directory(path)) throw std::runtime_error(p + ": a directory, not a flatbench results database");
  std::unique_ptr<Store> db;
  try {
    db = std::make_unique<Store>(path, true, true);  // also refuses a newer schema
    db->schema_version();                            // reads the header: a non-SQLite file fails here
  } catch (const std::exception& e) {
    throw std::runtime_error(p + ": not a readable flatbench results database: " + e.what());
  }
  for (const char* table : {"runs", "jobs", "metrics", "sites", "gemm"}) {
    Stmt s(db->handle(), "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?");
    s.bind(1, table);
    s.step();
    if (s.integer(0) == 0 || db->schema_version() < 1)
      throw std::runtime_error(p + ": an SQLite file but not a flatbench results database (no '" + table + "' table)");
  }
  std::string verdict;
  try {
    Stmt check(db->handle(), "PRAGMA quick_check(1)");
    verdict = check.step() ? check.text(0) : "no answer";
  } catch (const std::exception& e) {
    verdict = e.what();
  }
  if (verdict != "ok") throw std::runtime_error(p + ": corrupt database (" + verdict + ")");
}

long Store::merge_from(const std::filesystem::path& other, std::vector<std::string>* skipped) {
  check_results_database(other);
  // A done job with a NULL/NaN metric (an older flatbench stored NaN as NULL) stays out of a good DB.
  std::vector<long> bad_ids;
  for (const std::string& why : Store(other, true, true).jobs_with_non_finite_metrics(&bad_ids))
    if (skipped) skipped->push_back(other.string() + ": " + why + " (left out: not a finite number)");
  long added = 0;
  bool attached = false;
  try {
    Stmt attach(db_, "ATTACH DATABASE ? AS src");
    attach.bind(1, other.string());
    attach.step();
    attached = true;
    exec("CREATE TEMP TABLE merge_skip(src_id INTEGER PRIMARY KEY)");
    for (long id : bad_ids) {
      Stmt s(db_, "INSERT INTO merge_skip VALUES (?)");
      s.bind(1, id);
      s.step();
    }
    Transaction tx(db_);
    exec("INSERT OR IGNORE INTO runs SELECT * FROM src.runs");
    exec(
        "CREATE TEMP TABLE merge_map AS SELECT s.id AS src_id, s.run_uuid, s.key FROM src.jobs s "
        "WHERE s.status = 'done' AND s.id NOT IN (SELECT src_id FROM merge_skip) AND NOT EXISTS (SELECT 1 FROM main.jobs j WHERE j.run_uuid = s.run_uuid AND "
        "j.key = s.key AND j.status = 'done')");
    exec(
        "DELETE FROM main.jobs WHERE status != 'done' AND EXISTS (SELECT 1 FROM merge_map m WHERE "
        "m.run_uuid = main.jobs.run_uuid AND m.key = main.jobs.key)");
    exec(
        "INSERT INTO main.jobs(run_uuid, key, model, method, evaluation, label, spec, status, error, info, synthetic, "
        "started_at, ended_at, duration_s) SELECT s.run_uuid, s.key, s.model, s.method, s.evaluation, s.label, s.spec, "
        "s.status, s.error, s.info, s.synthetic, s.started_at, s.ended_at, s.duration_s FROM src.jobs s "
        "JOIN merge_map m ON m.src_id = s.id");
    const char* remap =
        " FROM %s x JOIN merge_map m ON m.src_id = x.job_id JOIN main.jobs j ON j.run_uuid = m.run_uuid AND "
        "j.key = m.key";
    auto copy = [&](const std::string& table, const std::string& cols) {
      char buf[512];
      std::snprintf(buf, sizeof buf, remap, ("src." + table).c_str());
      std::string xcols;
      size_t start = 0;
      while (start < cols.size()) {
        size_t comma = cols.find(',', start);
        if (comma == std::string::npos) comma = cols.size();
        std::string c = cols.substr(start, comma - start);
        while (!c.empty() && c.front() == ' ') c.erase(0, 1);
        xcols += ", x." + c;
        start = comma + 1;
      }
      exec("INSERT INTO main." + table + "(job_id, " + cols + ") SELECT j.id" + xcols + buf);
    };
    copy("metrics", kMetricColumns);
    copy("sites", kSiteColumns);
    copy("gemm", kGemmColumns);
    {
      Stmt count(db_, "SELECT COUNT(*) FROM merge_map");
      count.step();
      added = count.integer(0);
    }  // finalized before the DROP, which a live statement would block
    exec("DROP TABLE merge_map");
    exec("DROP TABLE merge_skip");
    tx.commit();
  } catch (const std::exception& e) {  // the transaction has rolled back: nothing of `other` is in
    sqlite3_exec(db_, "DROP TABLE IF EXISTS temp.merge_map", nullptr, nullptr, nullptr);
    sqlite3_exec(db_, "DROP TABLE IF EXISTS temp.merge_skip", nullptr, nullptr, nullptr);
    if (attached) sqlite3_exec(db_, "DETACH DATABASE src", nullptr, nullptr, nullptr);
    throw std::runtime_error("merging " + other.string() + " into " + path_.string() + " failed, " + path_.string() +
                             " is unchanged: " + e.what());
  }
  exec("DETACH DATABASE src");
  return added;
}

}  // namespace fb

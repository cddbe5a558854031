// SQLite store. Depends only on sqlite3 and nlohmann-json so the GPU tool can build it
// on a machine without the rest of the harness's libraries.
#include "harness/store.h"

#include "core/job_spec.h"

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
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>

namespace fb {

namespace {

void rekey_jobs(sqlite3* db);

// The `name` of one part of a job spec ("model", "method", "eval"), "" when the part is absent
// or null: what the jobs table's name columns hold.
std::string part_name_of(const json& spec, const char* part) {
  if (!spec.contains(part) || !spec[part].is_object()) return "";
  return spec[part].value("name", "");
}

// Each entry migrates schema version i → i+1: its SQL, then its code step (or none). Never edit a
// shipped entry: append a new one.
struct Migration {
  const char* sql;
  void (*code)(sqlite3* db);
};
const Migration kMigrations[] = {
    // 0 → 1
    {R"SQL(
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
)SQL", nullptr},
    // 1 → 2: who runs a running row, and its heartbeat, so that concurrent runs claim jobs
    // without taking over a live process's work (and reclaim a dead one's).
    {R"SQL(
ALTER TABLE jobs ADD COLUMN owner TEXT;        -- host:pid:start of the process running it
ALTER TABLE jobs ADD COLUMN heartbeat_at TEXT; -- refreshed while it runs: the lease other hosts see
)SQL", nullptr},
    // 2 → 3: each GEMM row's verify verdict and the error it rests on. Rows measured before
    // have no verdict: their disposition stays '' (unknown), not a claimed 'passed'.
    {R"SQL(
ALTER TABLE gemm ADD COLUMN disposition TEXT NOT NULL DEFAULT '';  -- passed | incorrect | not_supported | ''
ALTER TABLE gemm ADD COLUMN verify_error REAL;      -- max |C - C_ref| / max |C_ref|
ALTER TABLE gemm ADD COLUMN verify_tolerance REAL;  -- the backend's bound on verify_error
)SQL", nullptr},
    // 3 → 4: one job spec for CPU and GPU jobs (core/job_spec.h): every row's spec in the
    // canonical shape and its key by the one rule, so old and new rows of the same work meet.
    {"", rekey_jobs},
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

// The v3 → v4 step: each row's spec in the canonical shape (core/job_spec.h upgrade_job_spec),
// its key by the one rule, its name columns from that spec. A row whose spec no rule reads (not
// JSON, hand-written) keeps its key. Two rows of one run that become the same job (none such was
// ever written) fold into one: a done row over any other, else the later.
void rekey_jobs(sqlite3* db) {
  struct Row { long id; std::string run, key, status; json spec; };
  std::vector<Row> rows;
  {
    Stmt s(db, "SELECT id, run_uuid, key, status, spec FROM jobs ORDER BY id");
    while (s.step()) {
      json spec;
      try {
        spec = upgrade_job_spec(json::parse(s.text(4)), s.text(2));
      } catch (const std::exception&) {
        continue;
      }
      rows.push_back({s.integer(0), s.text(1), s.text(2), s.text(3), std::move(spec)});
    }
  }
  std::map<std::pair<std::string, std::string>, std::pair<long, std::string>> kept;  // (run, key) → (id, status)
  auto remove = [&](long id) {
    Stmt d(db, "DELETE FROM jobs WHERE id = ?");
    d.bind(1, id);
    d.step();
  };
  for (const Row& r : rows) {
    const std::string key = hash_text(r.spec.dump());
    auto [it, fresh] = kept.try_emplace({r.run, key}, r.id, r.status);
    if (!fresh) {
      if (it->second.second == "done" && r.status != "done") {
        remove(r.id);
        continue;
      }
      remove(it->second.first);
      it->second = {r.id, r.status};
    }
    Stmt u(db, "UPDATE jobs SET key = ?, spec = ?, model = ?, method = ?, evaluation = ? WHERE id = ?");
    u.bind(1, key).bind(2, r.spec.dump()).bind(3, part_name_of(r.spec, "model")).bind(4, part_name_of(r.spec, "method"));
    u.bind(5, part_name_of(r.spec, "eval")).bind(6, r.id);
    u.step();
  }
}

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

// Binds a record's member the way read_column reads it back: JSON and repetitions as JSON text.
void bind_value(Stmt& s, int i, const std::string& v) { s.bind(i, v); }
void bind_value(Stmt& s, int i, double v) { s.bind(i, v); }  // SQLite stores a NaN as NULL
void bind_value(Stmt& s, int i, long v) { s.bind(i, v); }
void bind_value(Stmt& s, int i, int v) { s.bind(i, v); }
void bind_value(Stmt& s, int i, bool v) { s.bind(i, v ? 1 : 0); }
void bind_value(Stmt& s, int i, const json& v) { s.bind(i, v.dump()); }
void bind_value(Stmt& s, int i, const std::vector<double>& v) { s.bind(i, json(v).dump()); }

// One column of a table and how a record R writes and reads it. A table's field list names its
// CURRENT columns in the migrations' order (StoreFields tests compare it with PRAGMA table_info);
// the INSERT, the SELECT list, the reader and merge_from's column lists are all made from it.
template <class R>
struct Field {
  const char* column;
  const char* type;                              // the declared type, as PRAGMA table_info reports it
  void (*bind)(Stmt&, int, const R&) = nullptr;  // null: not written from the record
  void (*read)(const Stmt&, int, R&) = nullptr;  // null: the record holds no copy
  bool merged = true;  // merge_from copies it (not a row id, nor a lease that means nothing in another DB)
};

template <class>
struct MemberOf;
template <class R, class V>
struct MemberOf<V R::*> {
  using Record = R;
};

// The field of member M, written and read as its type says.
template <auto M, class R = typename MemberOf<decltype(M)>::Record>
Field<R> field(const char* column, const char* type) {
  return {column, type, [](Stmt& s, int i, const R& r) { bind_value(s, i, r.*M); },
          [](const Stmt& s, int i, R& r) { read_column(s, i, r.*M); }};
}
// A text member stored as NULL while it is empty (a run's ended_at until end_run sets it).
template <auto M, class R = typename MemberOf<decltype(M)>::Record>
Field<R> optional_text(const char* column) {
  Field<R> f = field<M>(column, "TEXT");
  f.bind = [](Stmt& s, int i, const R& r) {
    if ((r.*M).empty()) s.bind_null(i); else s.bind(i, r.*M);
  };
  return f;
}
// A column the store writes with its own statements (claim, finish) and no record reads.
template <class R>
Field<R> unread(const char* column, const char* type, bool merged) {
  return {column, type, nullptr, nullptr, merged};
}

template <class R>
struct TableFields {
  const char* name;
  const char* parent_key;  // "job_id" for the rows of a job (bound by the writer, not a member), or nullptr
  std::vector<Field<R>> fields;
};

const TableFields<RunInfo>& run_fields() {
  static const TableFields<RunInfo> t{
      "runs",
      nullptr,
      {field<&RunInfo::uuid>("uuid", "TEXT"), field<&RunInfo::started_at>("started_at", "TEXT"),
       optional_text<&RunInfo::ended_at>("ended_at"), field<&RunInfo::provenance>("provenance", "TEXT"),
       field<&RunInfo::config_path>("config_path", "TEXT"), field<&RunInfo::config_hash>("config_hash", "TEXT"),
       field<&RunInfo::config_text>("config_text", "TEXT"), field<&RunInfo::shard>("shard", "TEXT")}};
  return t;
}

const TableFields<JobRow>& job_fields() {
  // The jobs table is written by claim_job (a running row) and finish_job / fail_job (its outcome),
  // not from a JobRow; the list drives its SELECT, reader and merge.
  static const TableFields<JobRow> t{
      "jobs",
      nullptr,
      {[] {
         Field<JobRow> id = field<&JobRow::id>("id", "INTEGER");
         id.merged = false;  // the target numbers its own rows
         return id;
       }(),
       field<&JobRow::run_uuid>("run_uuid", "TEXT"), field<&JobRow::key>("key", "TEXT"),
       field<&JobRow::model>("model", "TEXT"), field<&JobRow::method>("method", "TEXT"),
       field<&JobRow::evaluation>("evaluation", "TEXT"), field<&JobRow::label>("label", "TEXT"),
       field<&JobRow::spec>("spec", "TEXT"), field<&JobRow::status>("status", "TEXT"),
       field<&JobRow::error>("error", "TEXT"), unread<JobRow>("info", "TEXT", true),
       field<&JobRow::synthetic>("synthetic", "INTEGER"), field<&JobRow::started_at>("started_at", "TEXT"),
       field<&JobRow::ended_at>("ended_at", "TEXT"),
       {"duration_s", "REAL", [](Stmt& s, int i, const JobRow& j) { s.bind(i, j.duration_s); },
        [](const Stmt& s, int i, JobRow& j) { j.duration_s = s.is_null(i) ? 0 : s.real(i); }},  // a running row has none yet
       // The lease of a running row: whose process, how recently alive; only claim_job reads it.
       unread<JobRow>("owner", "TEXT", false), unread<JobRow>("heartbeat_at", "TEXT", false)}};
  return t;
}

const TableFields<Metric>& metric_fields() {
  static const TableFields<Metric> t{
      "metrics",
      "job_id",
      {field<&Metric::name>("name", "TEXT"), field<&Metric::value>("value", "REAL"), field<&Metric::unit>("unit", "TEXT"),
       field<&Metric::n>("n", "INTEGER"), field<&Metric::stddev>("stddev", "REAL"),
       {"samples", "TEXT",
        [](Stmt& s, int i, const Metric& m) {
          if (m.samples.empty()) s.bind_null(i); else bind_value(s, i, m.samples);
        },
        [](const Stmt& s, int i, Metric& m) { read_column(s, i, m.samples); }}}};
  return t;
}

const TableFields<SiteRecord>& site_fields() {
  static const TableFields<SiteRecord> t{
      "sites",
      "job_id",
      {field<&SiteRecord::layer>("layer", "INTEGER"), field<&SiteRecord::role>("role", "TEXT"),
       field<&SiteRecord::w_bits>("w_bits", "INTEGER"), field<&SiteRecord::a_bits>("a_bits", "INTEGER"),
       field<&SiteRecord::k_in>("k_in", "INTEGER"), field<&SiteRecord::k_flat>("k_flat", "INTEGER"),
       field<&SiteRecord::k_pad>("k_pad", "INTEGER"), field<&SiteRecord::w_scale>("w_scale", "REAL"),
       field<&SiteRecord::a_scale>("a_scale", "REAL"), field<&SiteRecord::kl>("kl", "REAL"),
       field<&SiteRecord::clip>("clip", "REAL"), field<&SiteRecord::mse>("mse", "REAL"),
       field<&SiteRecord::flops>("flops", "REAL"), field<&SiteRecord::extra>("extra", "TEXT")}};
  return t;
}

const TableFields<GemmRecord>& gemm_fields() {
  static const TableFields<GemmRecord> t{
      "gemm",
      "job_id",
      {field<&GemmRecord::device>("device", "TEXT"), field<&GemmRecord::backend>("backend", "TEXT"),
       field<&GemmRecord::dtype>("dtype", "TEXT"), field<&GemmRecord::m>("m", "INTEGER"),
       field<&GemmRecord::n>("n", "INTEGER"), field<&GemmRecord::k>("k", "INTEGER"),
       field<&GemmRecord::reps>("reps", "INTEGER"), field<&GemmRecord::min_ms>("min_ms", "REAL"),
       field<&GemmRecord::median_ms>("median_ms", "REAL"), field<&GemmRecord::max_ms>("max_ms", "REAL"),
       field<&GemmRecord::gops>("gops", "REAL"), field<&GemmRecord::ratio_to_fp32>("ratio_to_fp32", "REAL"),
       field<&GemmRecord::samples_ms>("samples", "TEXT"), field<&GemmRecord::extra>("extra", "TEXT"),
       field<&GemmRecord::disposition>("disposition", "TEXT"),
       field<&GemmRecord::verify_error>("verify_error", "REAL"),
       field<&GemmRecord::verify_tolerance>("verify_tolerance", "REAL")}};
  return t;
}

// Calls f on each table's field list.
template <class F>
void for_each_table(F f) {
  f(run_fields());
  f(job_fields());
  f(metric_fields());
  f(site_fields());
  f(gemm_fields());
}

// "prefix.a, prefix.b, …" of the fields that `keep` keeps.
template <class R, class Keep>
std::string column_list(const TableFields<R>& t, Keep keep, const std::string& prefix = "") {
  std::string out;
  for (const Field<R>& f : t.fields)
    if (keep(f)) out += (out.empty() ? "" : ", ") + prefix + f.column;
  return out;
}

// The columns `table` has in the attached database `schema`: a file an older flatbench wrote
// lacks the later migrations' columns, which merge_from then leaves to their defaults.
std::set<std::string> attached_columns(sqlite3* db, const std::string& schema, const std::string& table) {
  std::set<std::string> out;
  Stmt s(db, "PRAGMA " + schema + ".table_info(" + table + ")");
  while (s.step()) out.insert(s.text(1));
  return out;
}

template <class R>
bool is_read(const Field<R>& f) { return f.read != nullptr; }
template <class R>
bool is_written(const Field<R>& f) { return f.bind != nullptr; }
template <class R>
bool is_merged(const Field<R>& f) { return f.merged; }

template <class R>
std::string select_sql(const TableFields<R>& t) {
  return "SELECT " + column_list(t, is_read<R>) + " FROM " + t.name;
}

template <class R>
R read_record(const Stmt& s, const TableFields<R>& t) {
  R r;
  int c = 0;
  for (const Field<R>& f : t.fields)
    if (f.read) f.read(s, c++, r);
  return r;
}

// INSERT of one record (under the job `parent_id` for a job's rows).
template <class R>
void insert_record(sqlite3* db, const TableFields<R>& t, const R& r, long parent_id = 0) {
  const std::string parent = t.parent_key ? std::string(t.parent_key) + ", " : "";
  std::string marks = t.parent_key ? "?" : "";
  for (const Field<R>& f : t.fields)
    if (f.bind) marks += marks.empty() ? "?" : ",?";
  Stmt s(db, std::string("INSERT INTO ") + t.name + "(" + parent + column_list(t, is_written<R>) + ") VALUES (" + marks +
                 ")");
  int i = 1;
  if (t.parent_key) s.bind(i++, parent_id);
  for (const Field<R>& f : t.fields)
    if (f.bind) f.bind(s, i++, r);
  s.step();
}

// A job's rows of a per-job table, in insertion order.
template <class R>
std::vector<R> rows_of_job(sqlite3* db, const TableFields<R>& t, long job_id) {
  Stmt s(db, select_sql(t) + " WHERE " + t.parent_key + " = ? ORDER BY rowid");
  s.bind(1, job_id);
  std::vector<R> out;
  while (s.step()) out.push_back(read_record(s, t));
  return out;
}

// "job 1a2b3c4d5e6f (label)": how messages name a job.
std::string fmt_job(const JobRow& j) {
  return "job " + j.key.substr(0, 12) + (j.label.empty() ? "" : " (" + j.label + ")");
}

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
  bool by_live_run = false;  // written by a run that has not ended, in a process still alive
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
  // A sibling forced run that finished a job before this one even began still counts: two
  // "concurrent" forced runs start moments apart, and the later must not redo what the earlier
  // redid in between (StoreConcurrency.ForcedRerunsByTwoProcessesRedoEachJobOnce).
  const bool fresh = !policy.fresh_since.empty() &&
                     (newest_finished->ended_at >= policy.fresh_since || newest_finished->by_live_run);
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
    } else if (schema_version() >= 1 && schema_version() < kSchemaVersion) {
      migrate_a_copy_in_memory();  // version 0 is no flatbench DB: left for the caller to refuse
    }
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Store::~Store() { sqlite3_close(db_); }

// A read-only open of a DB an older flatbench wrote: the readers name today's columns, and the
// file must not change, so the DB is copied into memory and the copy is migrated.
void Store::migrate_a_copy_in_memory() {
  sqlite3* mem = nullptr;
  if (sqlite3_open(":memory:", &mem) != SQLITE_OK) {
    sqlite3_close(mem);
    throw std::runtime_error("cannot read " + path_.string() + ": no memory for a migrated copy");
  }
  sqlite3_backup* b = sqlite3_backup_init(mem, "main", db_, "main");
  const int rc = b ? sqlite3_backup_step(b, -1) : SQLITE_ERROR;
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) {
    std::string msg = sqlite3_errmsg(mem);
    sqlite3_close(mem);
    throw std::runtime_error("cannot read " + path_.string() + " (schema " + std::to_string(schema_version()) +
                             "): copying it to migrate failed: " + msg);
  }
  sqlite3* file = db_;
  db_ = mem;
  try {
    exec("PRAGMA foreign_keys = ON");
    migrate();
  } catch (const std::exception&) {  // a file no migration path fits: read it as it is
    sqlite3_close(mem);
    db_ = file;
    return;
  }
  sqlite3_close(file);
  migrated_copy_ = true;
}

void Store::save_as(const std::filesystem::path& file) const {
  sqlite3* out = nullptr;
  int rc = sqlite3_open(file.c_str(), &out);
  if (rc == SQLITE_OK) {
    sqlite3_backup* b = sqlite3_backup_init(out, "main", db_, "main");
    rc = b ? sqlite3_backup_step(b, -1) : sqlite3_errcode(out);
    sqlite3_backup_finish(b);
  }
  const std::string msg = out ? sqlite3_errmsg(out) : "out of memory";
  sqlite3_close(out);
  if (rc != SQLITE_DONE) throw std::runtime_error("cannot write a copy of " + path_.string() + " to " + file.string() + ": " + msg);
}

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
    exec(kMigrations[v].sql);
    if (kMigrations[v].code) kMigrations[v].code(db_);
    exec("PRAGMA user_version = " + std::to_string(v + 1));
  }
  tx.commit();
}

void Store::begin_run(const RunInfo& run) {
  RunInfo r = run;
  if (r.started_at.empty()) r.started_at = now_iso8601();
  r.ended_at.clear();  // end_run sets it
  insert_record(db_, run_fields(), r);
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

std::map<std::string, bool> Store::running_owner_alive() const {
  std::map<std::string, bool> out;
  if (schema_version() < 2) return out;
  std::map<std::string, std::pair<std::string, std::pair<std::string, std::string>>> newest;  // key → status, owner, beat
  Stmt s(db_, "SELECT key, status, COALESCE(owner, ''), COALESCE(heartbeat_at, '') FROM jobs ORDER BY id");
  while (s.step()) newest[s.text(0)] = {s.text(1), {s.text(2), s.text(3)}};
  for (const auto& [key, row] : newest)
    if (row.first == "running") out[key] = owner_is_alive(row.second.first, row.second.second);
  return out;
}

Claim Store::claim_job(const std::string& run_uuid, const std::string& key, const json& spec,
                       const std::string& label, const ClaimPolicy& policy) {
  Transaction tx(db_);  // IMMEDIATE: no other process claims between our check and our insert
  std::vector<KeyRow> rows;
  {
    Stmt s(db_,
           "SELECT j.id, j.status, j.owner, j.heartbeat_at, j.ended_at, r.uuid IS NOT NULL AND r.ended_at IS NULL "
           "FROM jobs j LEFT JOIN runs r ON r.uuid = j.run_uuid WHERE j.key = ? ORDER BY j.id");
    s.bind(1, key);
    while (s.step()) {
      KeyRow r;
      bool run_open = false;
      read_columns(s, r.id, r.status, r.owner, r.heartbeat_at, r.ended_at, run_open);
      r.by_live_run = run_open && r.status != "running" && owner_is_alive(r.owner, r.heartbeat_at);
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
  s.bind(1, run_uuid).bind(2, key).bind(3, part_name_of(spec, "model")).bind(4, part_name_of(spec, "method"))
      .bind(5, part_name_of(spec, "eval"));
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
    throw JobReclaimed(path_.string() + ": job row " + std::to_string(job_id) +
                       " is no longer this process's running row (another process reclaimed it); "
                       "its outcome is not written");
  for (const Metric& m : r.metrics) insert_record(db_, metric_fields(), m, job_id);
  for (const SiteRecord& x : r.sites) insert_record(db_, site_fields(), x, job_id);
  for (const GemmRecord& g : r.gemms) insert_record(db_, gemm_fields(), g, job_id);
  tx.commit();
}

void Store::fail_job(long job_id, const std::string& error, double duration_s) {
  Stmt s(db_,
         "UPDATE jobs SET status='failed', error=?, ended_at=?, duration_s=? "
         "WHERE id=? AND status='running' AND owner=?");
  s.bind(1, error).bind(2, now_iso8601()).bind(3, duration_s).bind(4, job_id).bind(5, owner_);
  s.step();
  if (sqlite3_changes(db_) != 1)
    throw JobReclaimed(path_.string() + ": job row " + std::to_string(job_id) +
                       " is no longer this process's running row (another process reclaimed it); its failure is "
                       "not written");
}

namespace {
// The job rows a WHERE / ORDER BY clause selects, its '?' bound to args in order.
std::vector<JobRow> select_jobs(sqlite3* db, const std::string& where_sql, const std::vector<std::string>& args = {}) {
  Stmt s(db, select_sql(job_fields()) + " " + where_sql);
  for (size_t i = 0; i < args.size(); ++i) s.bind(static_cast<int>(i + 1), args[i]);
  std::vector<JobRow> out;
  while (s.step()) out.push_back(read_record(s, job_fields()));
  return out;
}

std::optional<JobRow> first_of(std::vector<JobRow> rows) {
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}
}  // namespace

std::vector<JobRow> Store::jobs() const { return select_jobs(db_, "ORDER BY id"); }

std::optional<JobRow> Store::reported_job(const std::string& key) const {
  return first_of(select_jobs(db_, "WHERE key = ? ORDER BY (status='done') DESC, id DESC LIMIT 1", {key}));
}

std::optional<JobRow> Store::newest_failed_job(const std::string& key) const {
  return first_of(select_jobs(db_, "WHERE key = ? AND status = 'failed' ORDER BY id DESC LIMIT 1", {key}));
}

std::vector<JobRow> Store::matching_jobs(const std::string& key_prefix) const {
  if (key_prefix.empty()) return {};
  // A plain prefix (substr, not LIKE: '%' and '_' are no wildcards) or a row id; per key its
  // newest done row, else its newest row, as `show` reports it.
  return select_jobs(
      db_,
      "WHERE id IN (SELECT (SELECT j.id FROM jobs j WHERE j.key = k.key ORDER BY (j.status = 'done') DESC, j.id DESC "
      "LIMIT 1) FROM (SELECT DISTINCT key FROM jobs WHERE substr(key, 1, length(?1)) = ?1 OR CAST(id AS TEXT) = ?1) k) "
      "ORDER BY id DESC",
      {key_prefix});
}

std::vector<Metric> Store::metrics(long job_id) const { return rows_of_job(db_, metric_fields(), job_id); }
std::vector<SiteRecord> Store::sites(long job_id) const { return rows_of_job(db_, site_fields(), job_id); }
std::vector<GemmRecord> Store::gemms(long job_id) const { return rows_of_job(db_, gemm_fields(), job_id); }

std::optional<RunInfo> Store::run(const std::string& uuid) const {
  Stmt s(db_, select_sql(run_fields()) + " WHERE uuid = ?");
  s.bind(1, uuid);
  if (!s.step()) return std::nullopt;
  return read_record(s, run_fields());
}

long Store::max_job_id() const {
  Stmt s(db_, "SELECT COALESCE(MAX(id), 0) FROM jobs");
  s.step();
  return s.integer(0);
}

std::string Store::latest_run_uuid() const {
  Stmt s(db_, "SELECT uuid FROM runs ORDER BY started_at DESC LIMIT 1");
  return s.step() ? s.text(0) : "";
}

namespace {
// The first column of every row of a one-parameter query.
std::vector<std::string> text_column(sqlite3* db, const char* sql, const std::string& arg) {
  Stmt s(db, sql);
  s.bind(1, arg);
  std::vector<std::string> out;
  while (s.step())
    if (!s.is_null(0)) out.push_back(s.text(0));
  return out;
}
}  // namespace

std::vector<std::string> Store::runs_with_uuid_prefix(const std::string& prefix) const {
  // A case-insensitive plain prefix: substr, not LIKE, whose '%' and '_' would be wildcards.
  return text_column(db_, "SELECT uuid FROM runs WHERE lower(substr(uuid, 1, length(?1))) = lower(?1) ORDER BY started_at",
                     prefix);
}

std::vector<std::string> Store::runs_of_commit(const std::string& commit_prefix) const {
  return text_column(
      db_,
      "SELECT uuid FROM runs WHERE lower(substr(json_extract(provenance, '$.git.commit'), 1, length(?1))) = lower(?1) "
      "ORDER BY started_at",
      commit_prefix);
}

std::vector<JobRow> Store::done_jobs(const DoneJobsFilter& f) const {
  std::string where = "WHERE status = 'done'";
  std::vector<std::string> args;
  auto add = [&](const char* condition, std::string arg) {
    where += condition;
    args.push_back(std::move(arg));
  };
  if (!f.key.empty()) add(" AND key = ?", f.key);
  if (!f.run_uuid.empty()) add(" AND run_uuid = ?", f.run_uuid);
  if (f.after_id > 0) add(" AND id > CAST(? AS INTEGER)", std::to_string(f.after_id));
  if (f.before_id > 0) add(" AND id < CAST(? AS INTEGER)", std::to_string(f.before_id));
  if (!f.run_uuid_prefix.empty()) {  // a plain prefix, as runs_with_uuid_prefix
    add(" AND lower(substr(run_uuid, 1, length(?))) = lower(?)", f.run_uuid_prefix);
    args.push_back(f.run_uuid_prefix);
  }
  if (!f.not_run_uuid.empty()) add(" AND run_uuid != ?", f.not_run_uuid);
  return select_jobs(db_, where + (f.newest_first ? " ORDER BY id DESC" : " ORDER BY id"), args);
}

namespace {
// SQL filter for a method / evaluation name: "" any, "-" none.
void add_name_filter(std::string& where, std::vector<std::string>& args, const char* column, const std::string& name) {
  if (name.empty()) return;
  if (name == "-") {
    where += std::string(" AND (") + column + " IS NULL OR " + column + " = '')";
    return;
  }
  where += std::string(" AND ") + column + " = ?";
  args.push_back(name);
}
}  // namespace

std::vector<JobRow> Store::latest_done_jobs(const std::string& method, const std::string& evaluation) const {
  std::string where = "WHERE id IN (SELECT MAX(id) FROM jobs WHERE status = 'done' GROUP BY key)";
  std::vector<std::string> args;
  add_name_filter(where, args, "method", method);
  add_name_filter(where, args, "evaluation", evaluation);
  return select_jobs(db_, where + " ORDER BY id", args);
}

std::vector<std::string> store_tables() {
  std::vector<std::string> out;
  for_each_table([&](const auto& t) { out.push_back(t.name); });
  return out;
}

std::vector<StoreColumn> store_columns(const std::string& table) {
  std::vector<StoreColumn> out;
  for_each_table([&](const auto& t) {
    if (table != t.name) return;
    if (t.parent_key) out.push_back({t.parent_key, "INTEGER"});
    for (const auto& f : t.fields) out.push_back({f.column, f.type});
  });
  return out;
}

std::vector<std::string> Store::jobs_with_non_finite_metrics(std::vector<long>* ids) const {
  std::vector<std::string> problems;
  for (const JobRow& j : done_jobs()) {
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
  for (const std::string& table : store_tables()) {
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

namespace {
// A file removed when it goes out of scope (a merge's migrated copy of its source).
struct ScratchFile {
  std::filesystem::path path;
  ~ScratchFile() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove(path, ec);
  }
};
}  // namespace

bool holds_results(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return false;
  if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) == 0 && !ec) return false;
  check_results_database(path);
  return true;
}

long Store::merge_from(const std::filesystem::path& other, std::vector<std::string>* skipped) {
  check_results_database(other);
  const Store source(other, true, true);
  // A done job with a NULL/NaN metric (an older flatbench stored NaN as NULL) stays out of a good DB.
  std::vector<long> bad_ids;
  for (const std::string& why : source.jobs_with_non_finite_metrics(&bad_ids))
    if (skipped) skipped->push_back(other.string() + ": " + why + " (left out: not a finite number)");
  // An older source is merged from its migrated copy, so that its rows carry today's keys: the
  // same job from an old and a new DB is then one job, not two (docs/store.md).
  ScratchFile copy;
  if (source.reads_a_migrated_copy()) {
    copy.path = std::filesystem::temp_directory_path() / ("flatbench-merge-" + new_uuid() + ".db");
    source.save_as(copy.path);
  }
  long added = 0;
  bool attached = false;
  try {
    Stmt attach(db_, "ATTACH DATABASE ? AS src");
    attach.bind(1, copy.path.empty() ? other.string() : copy.path.string());
    attach.step();
    attached = true;
    exec("CREATE TEMP TABLE merge_skip(src_id INTEGER PRIMARY KEY)");
    for (long id : bad_ids) {
      Stmt s(db_, "INSERT INTO merge_skip VALUES (?)");
      s.bind(1, id);
      s.step();
    }
    Transaction tx(db_);
    const std::string run_columns = column_list(run_fields(), is_merged<RunInfo>);
    exec("INSERT OR IGNORE INTO main.runs(" + run_columns + ") SELECT " + run_columns + " FROM src.runs");
    exec(
        "CREATE TEMP TABLE merge_map AS SELECT s.id AS src_id, s.run_uuid, s.key FROM src.jobs s "
        "WHERE s.status = 'done' AND s.id NOT IN (SELECT src_id FROM merge_skip) AND NOT EXISTS (SELECT 1 FROM main.jobs j WHERE j.run_uuid = s.run_uuid AND "
        "j.key = s.key AND j.status = 'done')");
    exec(
        "DELETE FROM main.jobs WHERE status != 'done' AND EXISTS (SELECT 1 FROM merge_map m WHERE "
        "m.run_uuid = main.jobs.run_uuid AND m.key = main.jobs.key)");
    exec("INSERT INTO main.jobs(" + column_list(job_fields(), is_merged<JobRow>) + ") SELECT " +
         column_list(job_fields(), is_merged<JobRow>, "s.") + " FROM src.jobs s JOIN merge_map m ON m.src_id = s.id");
    // A job's rows go under the target's id of their job, in the source's order (without the
    // ORDER BY, a scan of the metrics' (job_id, name) index would sort them by name).
    auto copy_rows_of_jobs = [&](const auto& t) {
      const std::set<std::string> in_source = attached_columns(db_, "src", t.name);
      auto keep = [&](const auto& f) { return f.merged && in_source.count(f.column) > 0; };
      exec(std::string("INSERT INTO main.") + t.name + "(job_id, " + column_list(t, keep) +
           ") SELECT j.id, " + column_list(t, keep, "x.") + " FROM src." + t.name +
           " x JOIN merge_map m ON m.src_id = x.job_id JOIN main.jobs j ON j.run_uuid = m.run_uuid AND j.key = m.key ORDER BY x.rowid");
    };
    copy_rows_of_jobs(metric_fields());
    copy_rows_of_jobs(site_fields());
    copy_rows_of_jobs(gemm_fields());
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

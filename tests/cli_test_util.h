// Runs the flatbench binary the way a user does and keeps what it said, for the CLI tests.
#pragma once

#include "test_util.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace fb::test {

struct CliResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Single-quotes one argument for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// `flatbench ARGS...` run in `cwd` (so relative paths and defaults land inside a temp folder).
inline CliResult run_flatbench(const std::vector<std::string>& args, const std::filesystem::path& cwd = {}) {
  std::string cmd = cwd.empty() ? "" : "cd " + shell_quote(cwd.string()) + " && ";
  cmd += shell_quote(FLATBENCH_BINARY);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " 2>&1";
  CliResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline std::filesystem::path write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
  return p;
}

// Runs SQL on a database file directly (as an older binary or another tool would have written it).
inline void raw_sql(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(h);
  ASSERT_EQ(rc, SQLITE_OK) << msg << " in: " << sql;
}

// One number from a query on a database file (-1 when it returns no row).
inline long sql_count(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return -1;
  }
  sqlite3_stmt* st = nullptr;
  long n = -1;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

// A child `flatbench ARGS...` running beside the test, its output thrown away.
inline pid_t spawn_flatbench(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    std::vector<char*> argv{const_cast<char*>(FLATBENCH_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(FLATBENCH_BINARY, argv.data());
    _exit(127);
  }
  return pid;
}

// The child's exit code, or minus the signal that ended it.
inline int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

}  // namespace fb::test

// No SQL text lives outside harness/store.cpp: reports, the runner and the CLI ask the store
// by name (latest_done_jobs, done_jobs, ...), so a schema change touches one file and a second
// backend's store can answer the same questions.
#include "test_util.h"

#include <fstream>
#include <regex>

namespace fb {
namespace {

namespace fs = std::filesystem;

// SQL in a string literal: an upper-case statement keyword or a WHERE clause (also one that
// opens the literal, as `jobs("WHERE ...")` did). Upper case only, so prose is not flagged.
bool literal_has_sql(const std::string& literal) {
  const std::string padded = " " + literal;
  for (const char* keyword : {"SELECT ", "INSERT ", "UPDATE ", "DELETE ", " WHERE "})
    if (padded.find(keyword) != std::string::npos) return true;
  return false;
}

// The string literals of one source line that hold SQL; a comment line holds none.
std::vector<std::string> sql_literals(const std::string& line) {
  static const std::regex literal_re(R"re("((?:[^"\\]|\\.)*)")re");
  const size_t first = line.find_first_not_of(" \t");
  if (first == std::string::npos || line.compare(first, 2, "//") == 0 || line[first] == '*') return {};
  std::vector<std::string> out;
  for (std::sregex_iterator it(line.begin(), line.end(), literal_re), end; it != end; ++it)
    if (literal_has_sql((*it)[1])) out.push_back((*it)[1]);
  return out;
}

bool is_source(const fs::path& p) {
  static const std::vector<std::string> exts = {".h", ".cpp", ".cu", ".cuh", ".inc"};
  return std::find(exts.begin(), exts.end(), p.extension().string()) != exts.end();
}

// Tests may set up hostile rows with raw SQL; build trees hold generated code.
bool is_exempt(const fs::path& relative) {
  const std::string top = relative.begin()->string();
  return relative == fs::path("harness/store.cpp") || top == "tests" || top.starts_with("build") ||
         top.starts_with(".") || top == "third_party" || top == "_deps";
}

TEST(StoreSqlConfined, MatcherFlagsSqlLiteralsOnly) {
  EXPECT_FALSE(sql_literals(R"x(auto rows = store.jobs("WHERE key = ?", {k});)x").empty());
  EXPECT_FALSE(sql_literals(R"x(exec("DELETE FROM jobs");)x").empty());
  EXPECT_FALSE(sql_literals(R"x(f("id IN (SELECT MAX(id) FROM jobs)"))x").empty());
  EXPECT_FALSE(sql_literals(R"x(q("x", "a = 1 WHERE b"))x").empty());
  EXPECT_TRUE(sql_literals(R"x(msg("select a job where it fails"))x").empty()) << "prose is no SQL";
  EXPECT_TRUE(sql_literals(R"x(msg("the WHEREABOUTS"))x").empty());
  EXPECT_TRUE(sql_literals(R"x(  // store.jobs("WHERE key = ?") was here)x").empty()) << "a comment is no code";
  EXPECT_TRUE(sql_literals(R"x(msg("a \"quoted\" SELECTION"))x").empty());
}

TEST(StoreSqlConfined, NoSqlTextOutsideTheStore) {
  const fs::path root = FLATBENCH_SOURCE_ROOT;
  std::string violations;
  int files = 0;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path relative = fs::relative(it->path(), root);
    if (it->is_directory() && is_exempt(relative) && relative != fs::path("harness/store.cpp")) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file() || !is_source(it->path()) || is_exempt(relative)) continue;
    ++files;
    std::ifstream in(it->path());
    std::string line;
    for (int n = 1; std::getline(in, line); ++n)
      for (const std::string& sql : sql_literals(line))
        violations += "  " + relative.string() + ":" + std::to_string(n) + ": \"" + sql + "\"\n";
  }
  EXPECT_GT(files, 100) << "the walk found the sources under " << root;
  EXPECT_TRUE(violations.empty()) << "SQL text outside harness/store.cpp (add a named Store query instead):\n"
                                  << violations;
}

}  // namespace
}  // namespace fb

// Command-line options that used to be taken loosely: each bad one gets a located message and a
// non-zero exit before anything runs or is written (--dry-run, --db, --shard, show's prefix, merge's sources).
#include "cli_test_util.h"
#include "harness/runner.h"
#include "harness/store.h"
#include "reports_test_util.h"

#include <fstream>
#include <map>

namespace fb {
namespace {

using test::CliResult;
using test::run_flatbench;
using test::TempDir;

std::filesystem::path selftest_config(const TempDir& dir, int jobs = 2) {
  std::string values;
  for (int i = 0; i < jobs; ++i) values += (i ? ", " : "") + std::to_string(i + 1);
  return test::write_text(dir / "s.yaml", "evaluations:\n  - name: selftest\n    value: [" + values + "]\n");
}

// Every file under `root` with its size and contents, to see that nothing was created or changed.
std::map<std::string, std::string> snapshot(const std::filesystem::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) {
      out[e.path().string()] = "<dir>";
      continue;
    }
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().string()] = std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  return out;
}

TEST(CliOptions, DryRunCreatesNoFolderAndNoDatabase) {
  TempDir dir;
  auto cfg = selftest_config(dir);
  auto db = dir / "out" / "sub" / "r.db";
  CliResult r = run_flatbench({"run", cfg.string(), "--db", db.string(), "--data-dir", dir.path.string(), "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "out")) << "a dry run wrote " << (dir / "out");
}

TEST(CliOptions, DryRunReadsAnExistingDatabaseAndChangesNoFile) {
  TempDir dir;
  auto db = dir / "r.db";
  CliResult first = run_flatbench(
      {"run", selftest_config(dir, 1).string(), "--db", db.string(), "--data-dir", dir.path.string(), "-q"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto cfg = selftest_config(dir, 2);  // one job done, one new
  auto before = snapshot(dir.path);
  CliResult r = run_flatbench({"run", cfg.string(), "--db", db.string(), "--data-dir", dir.path.string(), "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 done before"), std::string::npos) << "it read the statuses: " << r.output;
  auto after = snapshot(dir.path);
  EXPECT_EQ(before.size(), after.size()) << "a dry run created a file (e.g. -wal / -shm)";
  EXPECT_TRUE(before == after) << "a dry run modified a file";
}

TEST(CliOptions, DatabasePathsThatCannotPersistAreRefusedBeforeRunning) {
  TempDir dir;
  auto cfg = selftest_config(dir);
  std::filesystem::create_directory(dir / "folder");
  for (std::string db : {std::string(""), std::string(":memory:"), (dir / "folder").string(), std::string("folder/"),
                         (cfg / "x.db").string(), std::string("/dev/null")}) {
    SCOPED_TRACE("--db '" + db + "'");
    auto before = snapshot(dir.path);
    CliResult r = run_flatbench({"run", cfg.string(), "--db", db, "--data-dir", dir.path.string(), "-q"}, dir.path);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("--db"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("done:"), std::string::npos) << "jobs ran: " << r.output;
    EXPECT_TRUE(before == snapshot(dir.path)) << "something was written";
  }
  test::ReportDb src;
  for (std::string db : {std::string(""), std::string(":memory:"), (dir / "folder").string()}) {
    SCOPED_TRACE("merge --db '" + db + "'");
    CliResult r = run_flatbench({"merge", src.path.string(), "--db", db}, dir.path);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("--db"), std::string::npos) << r.output;
  }
}

TEST(CliOptions, ShardIsParsedStrictly) {
  int i = -1, n = -1;
  EXPECT_TRUE(parse_shard("1/2", i, n));
  EXPECT_EQ(i, 0);
  EXPECT_EQ(n, 2);
  EXPECT_TRUE(parse_shard("12/12", i, n));
  EXPECT_EQ(i, 11);
  for (const char* bad : {"1/2abc", "1/2 ", " 1/2", "+1/2", "-1/2", "1/-2", "1/+2", "1/", "/2", "1//2", "1/2/3", "0/2",
                          "3/2", "1.0/2", "", "99999999999/99999999999", "1/ 2", "1 /2", "0x1/2"}) {
    i = n = -1;
    EXPECT_FALSE(parse_shard(bad, i, n)) << "'" << bad << "' was taken as " << i + 1 << "/" << n;
  }
  TempDir dir;
  CliResult r = run_flatbench({"list", selftest_config(dir).string(), "--shard", "1/2abc", "--db", (dir / "r.db").string()});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--shard"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1/2abc"), std::string::npos) << r.output;
}

// Two jobs whose keys share "abc", one of them with two rows (history is no ambiguity).
struct TwoJobDb : test::ReportDb {
  TwoJobDb() {
    std::string run1 = run(), run2 = run();
    for (const auto& [run_uuid, key, label] : {std::tuple{run1, "abc1110000", "first job"},
                                               std::tuple{run2, "abc1110000", "first job"},
                                               std::tuple{run1, "abc2220000", "second job"}}) {
      long id = store.start_job(run_uuid, key, test::make_spec("m", "", json(), "selftest"), label);
      JobResult r;
      r.add("value_0", 1.0);
      store.finish_job(id, r, 0.5);
    }
  }
};

TEST(CliOptions, ShowRefusesAnEmptyPrefix) {
  TwoJobDb db;
  CliResult r = run_flatbench({"show", "", "--db", db.path.string()});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("empty"), std::string::npos) << r.output;
}

TEST(CliOptions, ShowListsTheCandidatesOfAnAmbiguousPrefix) {
  TwoJobDb db;
  CliResult r = run_flatbench({"show", "abc", "--db", db.path.string()});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const char* want : {"ambiguous", "abc1110000", "first job", "abc2220000", "second job"})
    EXPECT_NE(r.output.find(want), std::string::npos) << want << " missing from: " << r.output;
  CliResult one = run_flatbench({"show", "abc1", "--db", db.path.string()});
  EXPECT_EQ(one.exit_code, 0) << one.output;
  EXPECT_NE(one.output.find("first job"), std::string::npos) << one.output;
  for (const char* wildcard : {"%", "abc_"}) {
    CliResult w = run_flatbench({"show", wildcard, "--db", db.path.string()});
    EXPECT_EQ(w.exit_code, 2) << wildcard << " is no wildcard: " << w.output;
  }
}

TEST(CliOptions, MergeNamesTheBadSourceAndLeavesTheTargetUntouched) {
  TempDir dir;
  test::ReportDb good_src;
  {
    JobResult r;
    r.add("value_0", 1.0);
    good_src.job(good_src.run(), test::make_spec("m", "", json(), "selftest"), r);
  }
  test::ReportDb target_db;
  {
    JobResult r;
    r.add("value_0", 2.0);
    target_db.job(target_db.run(), test::make_spec("m2", "", json(), "selftest"), r);
  }
  const auto target = target_db.path;

  auto text = test::write_text(dir / "notes.db", "this is not a database\n");
  auto foreign = dir / "foreign.db";
  test::raw_sql(foreign, "CREATE TABLE things(x); INSERT INTO things VALUES (1);");
  test::raw_sql(good_src.path, "PRAGMA wal_checkpoint(TRUNCATE)");  // its whole content in the main file, to copy
  auto newer = dir / "newer.db";
  std::filesystem::copy_file(good_src.path, newer);
  test::raw_sql(newer, "PRAGMA user_version = 99");
  auto corrupt = dir / "corrupt.db";
  {  // a valid header and schema page, garbage after it
    std::ifstream in(good_src.path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 3 * 4096u);
    for (size_t i = 4096; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xA5 ^ (i * 7));
    std::ofstream(corrupt, std::ios::binary) << bytes;
  }
  const long jobs_before = test::sql_count(target, "SELECT COUNT(*) FROM jobs");
  for (const auto& [bad, why] : {std::pair{text, "not"}, std::pair{foreign, "flatbench"}, std::pair{newer, "newer"},
                                 std::pair{corrupt, "corrupt"}, std::pair{dir / "missing.db", "exist"}}) {
    SCOPED_TRACE(bad.string());
    CliResult r = run_flatbench({"merge", good_src.path.string(), bad.string(), "--db", target.string()});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(bad.string()), std::string::npos) << "the bad source is named: " << r.output;
    EXPECT_NE(r.output.find(why), std::string::npos) << r.output;
    EXPECT_EQ(test::sql_count(target, "SELECT COUNT(*) FROM jobs"), jobs_before) << "the target was changed";
  }
  CliResult ok = run_flatbench({"merge", good_src.path.string(), "--db", target.string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(test::sql_count(target, "SELECT COUNT(*) FROM jobs"), jobs_before + 1);
}

}  // namespace
}  // namespace fb

// `flatbench list` tells a job a live process is running from one whose process is gone (the
// next run reclaims it), and reads the DB without leaving -wal / -shm files beside it.
#include "cli_test_util.h"
#include "harness/config.h"
#include "harness/store.h"

namespace fb {
namespace {

using test::TempDir;

TEST(CliList, RunningRowsOfDeadOwnersAreMarkedAndNoFileIsLeft) {
  TempDir dir;
  test::put(dir / "s.yaml", "evaluations:\n  - name: selftest\n    value: [1, 2]\n");
  const Config cfg = load_config(dir / "s.yaml", dir.path);
  ASSERT_EQ(cfg.jobs.size(), 2u);
  {
    Store store(dir / "r.db");
    store.begin_run({"r1"});
    for (const Job& j : cfg.jobs) store.claim_job("r1", j.key, j.spec.to_json(), j.label, {});  // this live process owns both
    // The second one's owner is a process on another host whose lease ran out long ago.
    ASSERT_EQ(sqlite3_exec(store.handle(),
                           ("UPDATE jobs SET owner = 'elsewhere:1:1', heartbeat_at = '2000-01-01T00:00:00.000Z' "
                            "WHERE key = '" + cfg.jobs[1].key + "'").c_str(),
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
  }
  std::filesystem::remove(dir / "r.db-wal");
  std::filesystem::remove(dir / "r.db-shm");
  test::CliResult r = test::run_flatbench({"list", (dir / "s.yaml").string(), "--db", (dir / "r.db").string(),
                                           "--data-dir", dir.path.string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t live = r.output.find(cfg.jobs[0].key.substr(0, 12));
  const size_t dead = r.output.find(cfg.jobs[1].key.substr(0, 12));
  ASSERT_NE(live, std::string::npos) << r.output;
  ASSERT_NE(dead, std::string::npos) << r.output;
  const std::string live_line = r.output.substr(live, r.output.find('\n', live) - live);
  const std::string dead_line = r.output.substr(dead, r.output.find('\n', dead) - dead);
  EXPECT_EQ(live_line.find("owner gone"), std::string::npos) << live_line;
  EXPECT_NE(dead_line.find("running (owner gone: the next run redoes it)"), std::string::npos) << dead_line;
  EXPECT_FALSE(std::filesystem::exists(dir / "r.db-wal")) << "list changed the database folder";
  EXPECT_FALSE(std::filesystem::exists(dir / "r.db-shm")) << "list changed the database folder";
}

// An empty file where the DB goes (`touch results/flatbench.db`) is an empty database: `run`
// makes it one, so `list` shows every job pending (it failed with "no such table: jobs"). A file
// that is not a flatbench DB is refused, naming it.
TEST(CliList, AnEmptyDbFileListsEveryJobPendingAndAForeignFileIsNamed) {
  TempDir dir;
  test::put(dir / "s.yaml", "evaluations:\n  - name: selftest\n");
  test::put(dir / "empty.db", "");
  test::CliResult r = test::run_flatbench({"list", (dir / "s.yaml").string(), "--db", (dir / "empty.db").string(),
                                           "--data-dir", dir.path.string()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("pending"), std::string::npos) << r.output;
  EXPECT_EQ(std::filesystem::file_size(dir / "empty.db"), 0u) << "list reads, never writes";
  test::put(dir / "notes.db", "these are my notes, not SQLite\n");
  r = test::run_flatbench({"list", (dir / "s.yaml").string(), "--db", (dir / "notes.db").string(), "--data-dir",
                           dir.path.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("notes.db"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not a readable flatbench results database"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace fb

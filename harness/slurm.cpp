#include "harness/slurm.h"

#include <fmt/format.h>

#include <fstream>
#include <stdexcept>

namespace fb {

namespace fs = std::filesystem;

namespace {

// Single-quoted for the shell (paths may contain spaces).
std::string sq(const fs::path& p) {
  std::string s = "'";
  for (char c : p.string()) s += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return s + "'";
}

std::string sbatch_header(const SlurmOptions& o, const std::string& name, const std::string& log) {
  std::string h = "#!/bin/bash\n";
  h += fmt::format("#SBATCH --job-name={}\n#SBATCH --output={}\n#SBATCH --time={}\n", name, log, o.time_limit);
  if (!o.partition.empty()) h += "#SBATCH --partition=" + o.partition + "\n";
  if (!o.account.empty()) h += "#SBATCH --account=" + o.account + "\n";
  if (o.cpus_per_task > 0) h += fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus_per_task);
  if (!o.mem.empty()) h += "#SBATCH --mem=" + o.mem + "\n";
  return h;
}

void write_executable(const fs::path& p, const std::string& text) {
  std::ofstream f(p);
  if (!f) throw std::runtime_error("cannot write " + p.string());
  f << text;
  f.close();
  fs::permissions(p, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
}

}  // namespace

SlurmScripts write_slurm_scripts(const SlurmOptions& o) {
  if (o.array < 1) throw std::invalid_argument("--array must be at least 1");
  if (o.gpus_per_task < 0) throw std::invalid_argument("--gpus-per-task must be 0 or more");
  fs::create_directories(o.out_dir / "logs");
  fs::create_directories(o.out_dir / "shards");
  const fs::path out = fs::absolute(o.out_dir), bin = fs::absolute(o.binary), cfg = fs::absolute(o.config),
                 data = fs::absolute(o.data_dir), db = fs::absolute(o.db);
  const std::string name = "flatbench-" + o.config.stem().string();
  SlurmScripts s{out / "array.sbatch", out / "merge.sbatch", out / "submit.sh"};

  std::string array = sbatch_header(o, name, (out / "logs" / "%A_%a.out").string());
  array += fmt::format("#SBATCH --array=1-{}\n", o.array);
  if (o.gpus_per_task > 0) array += fmt::format("#SBATCH --gres=gpu:{}\n", o.gpus_per_task);
  array += fmt::format(R"(
# One shard of the sweep per array task. The shard DB is written on node-local disk (SQLite
# wants a local file system for its locks and WAL) and copied to the shared folder at the end;
# a task that dies leaves its jobs to the next submission, which skips what is done.
set -euo pipefail
task=${{SLURM_ARRAY_TASK_ID:?run this script through sbatch (or set SLURM_ARRAY_TASK_ID)}}
local_db="{local}/flatbench-${{SLURM_ARRAY_JOB_ID:-0}}-${{task}}.db"
shared_db={out}/shards/shard-${{task}}-of-{n}.db
# Resume from this shard's earlier copy, if a previous submission left one.
if [ -f "$shared_db" ]; then cp "$shared_db" "$local_db"; fi
status=0
{bin} run {cfg} --shard "${{task}}/{n}" --db "$local_db" --data-dir {data} --quiet || status=$?
cp "$local_db" "$shared_db.tmp" && mv "$shared_db.tmp" "$shared_db"
rm -f "$local_db" "$local_db-wal" "$local_db-shm"
exit $status
)",
                       fmt::arg("local", o.local_dir), fmt::arg("out", sq(out)), fmt::arg("n", o.array),
                       fmt::arg("bin", sq(bin)), fmt::arg("cfg", sq(cfg)), fmt::arg("data", sq(data)));
  write_executable(s.array_script, array);

  std::string merge = sbatch_header(o, name + "-merge", (out / "logs" / "merge_%j.out").string());
  merge += fmt::format(R"(
# Folds every shard DB into the result DB; idempotent, so it can be rerun after a resubmission.
set -euo pipefail
shopt -s nullglob
shards=({out}/shards/shard-*-of-{n}.db)
if [ ${{#shards[@]}} -eq 0 ]; then echo "no shard databases in "{out}/shards >&2; exit 1; fi
{bin} merge "${{shards[@]}}" --db {db}
)",
                       fmt::arg("out", sq(out)), fmt::arg("n", o.array), fmt::arg("bin", sq(bin)),
                       fmt::arg("db", sq(db)));
  write_executable(s.merge_script, merge);

  std::string submit = fmt::format(R"(#!/bin/bash
# Submits the array, then the merge job to run after every array task has ended (afterany:
# shards that finished are merged even if another failed; rerun this script to retry).
set -euo pipefail
array_id=$(sbatch --parsable {array})
merge_id=$(sbatch --parsable --dependency=afterany:${{array_id%%;*}} {merge})
echo "array job ${{array_id}} ({n} tasks), merge job ${{merge_id}} -> "{db}
)",
                                   fmt::arg("array", sq(s.array_script)), fmt::arg("merge", sq(s.merge_script)),
                                   fmt::arg("n", o.array), fmt::arg("db", sq(db)));
  write_executable(s.submit_script, submit);
  return s;
}

}  // namespace fb

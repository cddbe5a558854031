// `flatbench slurm`: a Slurm job array for a sweep. Each array task runs one shard
// (`--shard $SLURM_ARRAY_TASK_ID/N`) into its own DB on node-local disk, copies it to the
// shared output folder when done, and a dependent job merges the shards into one DB.
#pragma once

#include <filesystem>
#include <string>

namespace fb {

struct SlurmOptions {
  std::filesystem::path config;     // the sweep
  std::filesystem::path out_dir;    // shared folder: scripts, logs, shard DBs
  std::filesystem::path db;         // the merged DB the merge job writes
  std::filesystem::path data_dir;
  std::filesystem::path binary;     // the flatbench executable the tasks run
  int array = 1;                    // number of shards / array tasks
  std::string local_dir = "${TMPDIR:-/tmp}";  // node-local disk for the shard DB while it is written
  std::string partition, time_limit = "04:00:00", account;
  int cpus_per_task = 0;            // 0 = leave to the cluster's default
  std::string mem;                  // e.g. 16G
  // GPUs per array task (GRES gpu:N; 0 = none). Slurm sets CUDA_VISIBLE_DEVICES in each task, so
  // a GPU sweep's shards spread over the cluster's GPUs. The merge job asks for none.
  int gpus_per_task = 0;
};

struct SlurmScripts {
  std::filesystem::path array_script, merge_script, submit_script;
};

// Writes the three scripts (array.sbatch, merge.sbatch, submit.sh) and returns their paths.
SlurmScripts write_slurm_scripts(const SlurmOptions& opt);

}  // namespace fb

#include "app/cli.h"

#include "harness/config.h"
#include "harness/evaluator.h"
#include "harness/runner.h"
#include "harness/slurm.h"
#include "harness/store.h"
#include "kernels/gemm_backend.h"
#include "methods/method.h"
#include "models/convert.h"
#include "models/source.h"
#include "reports/commands.h"
#include "reports/query.h"
#include "reports/summary.h"
#include "reports/tables.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

namespace fb {

namespace {

namespace fs = std::filesystem;

struct Options {
  std::string db = kDefaultDbPath;
  std::string data_dir;
  std::string config;
  std::string shard;
  std::string job;
  std::string format = "text";
  std::string table;  // report --table NAME
  std::vector<std::string> merge_inputs;
  std::string convert_in, convert_tokenizer, convert_out;
  SlurmOptions slurm;
  RunOptions run;
};

// --db must name a file that outlives the process; checked while parsing, before anything runs.
const CLI::Validator kDbFile(
    [](std::string& path) {
      return db_path_problem(path);  // CLI11 puts "--db: " before it
    },
    "FILE");

void add_common(CLI::App* cmd, Options& o) {
  cmd->add_option("--db", o.db, "results database (SQLite)")->capture_default_str()->check(kDbFile);
  cmd->add_option("--data-dir", o.data_dir, "where models and datasets live (default: $FLATBENCH_DATA_DIR or ../shared/data)");
}

void add_selection(CLI::App* cmd, Options& o) {
  cmd->add_option("CONFIG", o.config, "YAML sweep config")->required()->check(CLI::ExistingFile);
  cmd->add_option("--shard", o.shard, "run shard I of N (1-based, e.g. 2/4): every N-th job, starting at the I-th");
  cmd->add_flag("--json", o.run.json, "machine-readable output on stdout");
}

Config load(const Options& o) { return load_config(o.config, o.data_dir); }

void apply_shard(Options& o) {
  if (o.shard.empty()) return;
  if (!parse_shard(o.shard, o.run.shard_index, o.run.shard_count))
    throw CLI::ValidationError("--shard", "expected I/N, digits only, with 1 ≤ I ≤ N (e.g. 2/4), got '" + o.shard + "'");
}

// The jobs a run leaves unfinished, one line each: label, key prefix and error.
void print_run_problems(const RunCounts& c, std::ostream& err) {
  if (!c.failures.empty())
    err << fmt::format("{} failed job(s) in this selection (rerun with --retry-failed):\n", c.failures.size());
  for (const JobProblem& p : c.failures)
    err << fmt::format("  FAILED  {}  {}: {}\n", p.key.substr(0, 12), p.label, p.error);
  if (!c.interruptions.empty())
    err << fmt::format("{} job(s) interrupted by the machine (not recorded; the next run redoes them):\n",
                       c.interruptions.size());
  for (const JobProblem& p : c.interruptions)
    err << fmt::format("  INTERRUPTED  {}  {}: {}\n", p.key.substr(0, 12), p.label, p.error);
}

int cmd_run(Options& o) {
  apply_shard(o);
  Config cfg = load(o);
  o.run.db_path = o.db;
  if (o.run.dry_run) {  // reads the DB if there is one; creates and changes no file
    RunCounts plan = plan_sweep(cfg, o.run, existing_job_statuses(o.run.db_path));
    std::cerr << fmt::format("flatbench: {} — {} jobs, {} done before, {} failed before, {} would run\n", cfg.name,
                             plan.selected, plan.done_before, plan.failed_before, plan.todo.size());
    for (const Job& j : plan.todo) std::cout << j.key.substr(0, 12) << "  " << j.label << "\n";
    return 0;
  }
  Store store(o.run.db_path);
  RunCounts c = run_sweep(cfg, o.run, store);
  print_summary(store, c.selection, std::cout, o.run.json);
  if (!o.run.json) std::cout << "results: " << std::filesystem::absolute(o.run.db_path).lexically_normal().string() << "\n";
  if (!o.run.json) {
    std::cerr << fmt::format("done: {} ran, {} failed, {} already done, {} failed earlier (not retried)", c.ran,
                             c.failed, c.done_before, c.failed_before);
    if (c.done_elsewhere + c.failed_elsewhere + c.running_elsewhere > 0)
      std::cerr << fmt::format("; left to other processes: {} done, {} failed, {} running there", c.done_elsewhere,
                               c.failed_elsewhere, c.running_elsewhere);
    std::cerr << "\n";
  }
  print_run_problems(c, std::cerr);
  return c.complete() ? 0 : 1;
}

int cmd_list(Options& o) {
  apply_shard(o);
  Config cfg = load(o);
  auto jobs = shard_jobs(cfg.jobs, o.run.shard_index, o.run.shard_count);
  std::map<std::string, std::string> status;
  std::map<std::string, bool> alive;
  if (holds_results(o.db)) {
    Store store(o.db, /*read_only=*/true, /*leave_no_files=*/true);
    status = store.job_statuses();
    alive = store.running_owner_alive();
  }
  Table t{fmt::format("{}: {} jobs", cfg.name, jobs.size()), {"job", "status", "label"}, {}, {}};
  for (const auto& j : jobs) {
    std::string st = status.count(j.key) ? status[j.key] : "pending";
    if (st == "running" && alive.count(j.key) && !alive[j.key]) st = "running (owner gone: the next run redoes it)";
    t.add_row({j.key.substr(0, 12), st, j.label});
  }
  std::cout << t.render(o.run.json ? "json" : "text");
  return 0;
}

// The one job `prefix` names; an ambiguous prefix lists its candidates instead of picking one.
JobRow the_job(const Store& store, const std::string& prefix, const std::string& db) {
  auto rows = store.matching_jobs(prefix);
  if (rows.empty()) throw std::runtime_error("no job with key prefix or id '" + prefix + "' in " + db);
  if (rows.size() == 1) return rows.front();
  std::string list;
  const size_t shown = std::min<size_t>(rows.size(), 20);
  for (size_t i = 0; i < shown; ++i) list += fmt::format("\n  {}  {}", rows[i].key.substr(0, 12), rows[i].label);
  if (shown < rows.size()) list += fmt::format("\n  … and {} more", rows.size() - shown);
  throw std::runtime_error(fmt::format("job prefix '{}' is ambiguous in {}: {} jobs match; give more of the key:{}",
                                       prefix, db, rows.size(), list));
}

// The read-only commands' guard: a DB with results in it, else an error that says what to do.
void require_results(const std::string& db) {
  if (!holds_results(db)) throw std::runtime_error("no results in " + db + " (run a sweep first)");
}

int cmd_show(Options& o) {
  if (o.job.empty()) throw CLI::ValidationError("JOB", "is empty: give a job key prefix or row id (flatbench list CONFIG)");
  require_results(o.db);
  Store store(o.db, true);
  const std::optional<JobRow> row = the_job(store, o.job, o.db);  // always set: the_job throws instead
  const std::string problem = row->status == "done" ? row_problem(load_row(store, *row)) : "";
  nlohmann::json j = {{"id", row->id},       {"key", row->key},         {"label", row->label},
                      {"status", row->status}, {"error", row->error},   {"spec", row->spec},
                      {"run", row->run_uuid},  {"started_at", row->started_at}, {"duration_s", row->duration_s},
                      {"synthetic", row->synthetic}};
  auto metrics = store.metrics(row->id);
  auto sites = store.sites(row->id);
  auto gemms = store.gemms(row->id);
  auto run = store.run(row->run_uuid);
  if (o.run.json) {
    for (const auto& m : metrics) j["metrics"][m.name] = {{"value", m.value}, {"unit", m.unit}, {"n", m.n}, {"stddev", m.stddev}};
    if (run) j["provenance"] = run->provenance;
    j["warnings"] = problem.empty() ? json::array() : json::array({problem});
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("job {} (id {})\n  label:    {}\n  status:   {}{}\n  run:      {}  started {}  {:.3f} s\n",
                           row->key, row->id, row->label, row->status, row->error.empty() ? "" : " — " + row->error,
                           row->run_uuid, row->started_at, row->duration_s);
  if (!problem.empty())
    std::cout << "  WARNING:  " << problem
              << " (a NaN or Inf an older flatbench stored as NULL): not a result, left out of reports\n";
  if (row->synthetic) std::cout << "  model:    SYNTHETIC weights (latency/memory/mechanics only, no accuracy claims)\n";
  std::cout << "  spec:     " << row->spec.dump() << "\n";
  if (run) {
    // value() on each part: a run recorded by another tool may lack one, and [] on a const json would not check
    const json none = json::object();
    const json& p = run->provenance.is_object() ? run->provenance : none;
    auto part = [&](const char* name) { return p.contains(name) && p[name].is_object() ? p[name] : none; };
    std::cout << fmt::format("  commit:   {}{}\n  cpu:      {}\n  blas:     {}\n", part("git").value("commit", "?"),
                             part("git").value("dirty", false) ? " (dirty)" : "", part("cpu").value("model", "?"),
                             part("blas").value("openblas_core", "?"));
  }
  Table mt{"metrics", {"name", "value", "unit", "n", "stddev"}, {}, {}};
  for (const auto& m : metrics)
    mt.add_row({m.name, fmt_num(m.value, 6), m.unit, std::to_string(m.n), m.n > 1 ? fmt_num(m.stddev) : ""});
  std::cout << "\n" << mt.text();
  if (!sites.empty()) {
    Table st{"sites", {"layer", "role", "W bits", "A bits", "K in", "K flat", "K pad", "KL", "clip", "mse"}, {}, {}};
    for (const auto& s : sites)
      st.add_row({std::to_string(s.layer), s.role, std::to_string(s.w_bits), std::to_string(s.a_bits),
                  std::to_string(s.k_in), std::to_string(s.k_flat), std::to_string(s.k_pad),
                  s.kl >= 0 ? fmt_num(s.kl) : "", fmt_num(s.clip), s.mse >= 0 ? fmt_num(s.mse) : ""});
    std::cout << "\n" << st.text();
  }
  if (!gemms.empty()) {
    Table gt{"gemm", {"backend", "dtype", "M", "N", "K", "verify", "min ms", "median ms", "max ms", "GOP/s", "×fp32"}, {}, {}};
    for (const auto& g : gemms) {
      auto timing = [&](double v, int digits) { return gemm_row_timed(g) ? fmt_num(v, digits) : std::string(); };
      gt.add_row({g.backend, g.dtype, std::to_string(g.m), std::to_string(g.n), std::to_string(g.k),
                  g.disposition.empty() ? "unknown" : g.disposition, timing(g.min_ms, 4), timing(g.median_ms, 4),
                  timing(g.max_ms, 4), timing(g.gops, 4), timing(g.ratio_to_fp32, 3)});
    }
    std::cout << "\n" << gt.text();
  }
  return 0;
}

int cmd_report(Options& o) {
  require_results(o.db);
  if (!o.table.empty()) return report_table_command(o.db, o.table, o.format);
  Store store(o.db, true);
  std::vector<Table> tables;
  if (!o.config.empty())
    tables = summary_tables(store, load(o).jobs);
  else
    tables = summary_tables(store);
  for (const auto& t : tables) std::cout << t.render(o.format) << "\n";
  return 0;
}

int cmd_merge(Options& o) {
  // Every source is checked before the target is opened: a bad one (named) leaves the target as it was.
  for (const auto& in : o.merge_inputs) {
    try {
      check_results_database(in);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("merge source ") + e.what() + "; nothing was merged into " + o.db);
    }
  }
  Store store(o.db);
  long total = 0;
  for (size_t i = 0; i < o.merge_inputs.size(); ++i) {
    const std::string& in = o.merge_inputs[i];
    std::vector<std::string> skipped;
    long added = 0;
    try {
      added = store.merge_from(in, &skipped);  // one transaction per source
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(e.what()) +
                               (i ? fmt::format(" ({} source(s) before it were merged)", i) : ""));
    }
    for (const auto& s : skipped) std::cerr << "warning: " << s << "\n";
    std::cerr << fmt::format("merged {}: {} new jobs{}\n", in, added,
                             skipped.empty() ? "" : fmt::format(", {} left out (see above)", skipped.size()));
    total += added;
  }
  std::cerr << fmt::format("{}: {} jobs added\n", o.db, total);
  return 0;
}

int cmd_slurm(Options& o) {
  Config cfg = load(o);  // a broken config fails here, not on the cluster
  o.slurm.config = o.config;
  o.slurm.db = o.db;
  o.slurm.data_dir = cfg.data_dir;
  o.slurm.binary = fs::read_symlink("/proc/self/exe");
  if (o.slurm.out_dir.empty()) o.slurm.out_dir = fs::path("results") / ("slurm-" + cfg.name);
  if (o.slurm.array > static_cast<int>(cfg.jobs.size()))
    std::cerr << fmt::format("note: {} array tasks for {} jobs: some tasks will have nothing to do\n", o.slurm.array,
                             cfg.jobs.size());
  SlurmScripts s = write_slurm_scripts(o.slurm);
  std::cout << fmt::format("{} jobs in {} shards\n  array: {}\n  merge: {}\nsubmit with:\n  bash {}\n", cfg.jobs.size(),
                           o.slurm.array, s.array_script.string(), s.merge_script.string(), s.submit_script.string());
  return 0;
}

int cmd_convert(const Options& o) {
  convert_llama2c_to_hf(o.convert_in, o.convert_tokenizer, o.convert_out);
  std::cerr << fmt::format("wrote {} (config.json, model.safetensors{})\n", o.convert_out,
                           o.convert_tokenizer.empty() ? "" : ", tokenizer.model");
  return 0;
}

void print_schema(const std::string& title, const std::string& help, const ParamSchema& params) {
  std::cout << "  " << title << "\n      " << help << "\n";
  for (const auto& p : params) {
    std::string dflt = p.default_value.is_null() ? "required" : "default " + p.default_value.dump();
    std::string choices;
    for (const auto& c : p.choices) choices += (choices.empty() ? " {" : "|") + c;
    if (!choices.empty()) choices += "}";
    const char* role = p.role == ParamRole::file     ? "  [file under the data dir]"
                       : p.role == ParamRole::corpus   ? "  [corpus name or text file under the data dir]"
                       : p.role == ParamRole::task_list ? "  [task names; files under task_dir]"
                                                        : "";
    std::cout << fmt::format("      {:<18} {:<22} {}  ({}){}{}\n", p.name, describe_type(p), p.help, dflt, choices, role);
  }
}

int cmd_catalog() {
  std::cout << "Methods (`methods:` entries):\n";
  for (const auto& [n, m] : Registry<MethodInfo>::instance().all()) print_schema(n, m.help, m.params);
  std::cout << "\nEvaluations (`evaluations:` entries):\n";
  for (const auto& [n, e] : Registry<EvaluatorInfo>::instance().all())
    print_schema(n + (e.needs_model ? "" : "  (no model needed)") + (e.needs_tokenizer ? "  (needs a tokenizer)" : ""),
                 e.help, e.params);
  std::cout << "\nModel formats (`models:` entries, `format:`):\n";
  for (const auto& [n, m] : Registry<ModelSourceInfo>::instance().all()) print_schema(n, m.help, m.params);
  std::cout << "\nGEMM backends (gemm `backends:`):\n";
  for (const auto& [n, b] : Registry<GemmBackendInfo>::instance().all())
    std::cout << fmt::format("  {:<18} {:<14} {}{}\n", n, b.dtype, b.help,
                             b.available && !b.available() ? "  [not available on this CPU]" : "");
  return 0;
}

const char* kFooter = R"(
Examples:
  flatbench run configs/quickstart.yaml              run the default sweep (skips jobs already done)
  flatbench list configs/quickstart.yaml             the expanded jobs and their status
  flatbench run configs/baselines.yaml --shard 2/4   the 2nd of 4 shards (Slurm: $SLURM_ARRAY_TASK_ID/4)
  flatbench show 1a2b3c4d5e6f                        one job: metrics, sites, GEMM rows, provenance
  flatbench report --format md                       latest results as markdown
  flatbench report --table t10_gamma --format md     one paper table (--table all: every table)
  flatbench plot all --out-dir results/plots         PNG + SVG plots (gnuplot)
  flatbench dashboard --out results/dashboard.html   one offline HTML page: tables, plots, trends, drill-down
  flatbench nightly configs/nightly.yaml --report n.md   rerun, flag significant regressions, exit 1 if any
  flatbench compare 1a2b3c4d 5e6f7a8b                two runs or two commits: ratios and geometric mean
  flatbench merge shard1.db shard2.db --db all.db    fold shard or device DBs into one
  flatbench convert model.bin out/ --tokenizer t.model   a llama2.c checkpoint as a Hugging Face folder
  flatbench catalog                                  every method, evaluation, model format and parameter
)";

}  // namespace

int cli_main(int argc, char** argv) {
  Options o;
  CLI::App app{"flatbench — benchmark and accuracy harness for low-bit LLM quantization.\n"
               "A YAML config names models, methods and evaluations; flatbench expands it into jobs,\n"
               "runs each job and records every measurement, with provenance, in SQLite."};
  app.footer(kFooter);
  app.require_subcommand(1);

  auto* run = app.add_subcommand("run", "expand CONFIG into jobs, skip those already done, run the rest");
  add_selection(run, o);
  add_common(run, o);
  run->add_flag("--dry-run", o.run.dry_run, "print the jobs that would run, run nothing, write nothing");
  run->add_flag("--force", o.run.force, "rerun jobs that are already done (history is kept)");
  run->add_flag("--retry-failed", o.run.retry_failed, "rerun jobs whose last attempt failed");
  run->add_flag("-q,--quiet", o.run.quiet, "no progress on stderr");
  run->footer("\nExample:\n  flatbench run configs/quickstart.yaml --db results/flatbench.db\n");

  auto* list = app.add_subcommand("list", "list CONFIG's expanded jobs with their status in the DB");
  add_selection(list, o);
  add_common(list, o);
  list->footer("\nExample:\n  flatbench list configs/quickstart.yaml\n");

  auto* show = app.add_subcommand("show", "show one job (key prefix or id): metrics, sites, GEMM rows, provenance");
  show->add_option("JOB", o.job, "job key (a prefix is enough) or numeric id")->required();
  show->add_flag("--json", o.run.json, "machine-readable output");
  add_common(show, o);
  show->footer("\nExample:\n  flatbench show 3f2a9c1b\n");

  auto* report = app.add_subcommand("report", "tables of the latest results in the DB");
  report->add_option("--config", o.config, "only the jobs of this config")->check(CLI::ExistingFile);
  report->add_option("--format", o.format, "text | md | csv | json")->capture_default_str();
  report->add_option("--table", o.table, "a paper table by name (see below), or all");
  add_common(report, o);
  report->footer("\nTables (--table NAME):\n" + table_list_help() +
                 "\nExample:\n  flatbench report --format md > results.md\n"
                 "  flatbench report --table t4_int4_share --format csv\n");

  ReportCommands reports;  // plot, dashboard, nightly, compare (reports/commands.h)
  reports.add(app);

  auto* merge = app.add_subcommand("merge", "fold other result DBs (shards, device runs) into --db; idempotent");
  merge->add_option("DB", o.merge_inputs, "databases to fold in")->required()->check(CLI::ExistingFile);
  add_common(merge, o);
  merge->footer("\nExample:\n  flatbench merge results/gpu/h100.db --db results/flatbench.db\n");

  auto* convert = app.add_subcommand("convert", "write a llama2.c checkpoint out as a Hugging Face LLaMA folder");
  convert->add_option("CHECKPOINT", o.convert_in, "llama2.c .bin checkpoint")->required()->check(CLI::ExistingFile);
  convert->add_option("OUT_DIR", o.convert_out, "folder to write (created)")->required();
  convert->add_option("--tokenizer", o.convert_tokenizer, "SentencePiece .model to copy beside the weights")
      ->check(CLI::ExistingFile);
  convert->footer(
      "\nExample:\n  flatbench convert ../shared/data/stories260K/stories260K.bin /tmp/stories260K-hf \\\n"
      "      --tokenizer ../shared/data/stories260K/tok512.model\n"
      "  then use it with `format: hf, path: /tmp/stories260K-hf` in a config.\n");

  auto* slurm = app.add_subcommand("slurm", "write a Slurm job array (one shard per task) and a dependent merge job");
  slurm->add_option("CONFIG", o.config, "YAML sweep config")->required()->check(CLI::ExistingFile);
  slurm->add_option("--array", o.slurm.array, "number of array tasks (= shards)")->required()->check(CLI::PositiveNumber);
  slurm->add_option("--out", o.slurm.out_dir, "shared folder for scripts, logs and shard DBs (default results/slurm-NAME)");
  slurm->add_option("--partition", o.slurm.partition, "Slurm partition");
  slurm->add_option("--account", o.slurm.account, "Slurm account");
  slurm->add_option("--time", o.slurm.time_limit, "time limit per task")->capture_default_str();
  slurm->add_option("--cpus-per-task", o.slurm.cpus_per_task, "CPUs per task (0 = cluster default)");
  slurm->add_option("--mem", o.slurm.mem, "memory per task, e.g. 16G");
  slurm->add_option("--gpus-per-task", o.slurm.gpus_per_task,
                    "GPUs per array task (#SBATCH --gres=gpu:N; Slurm sets CUDA_VISIBLE_DEVICES per task)")
      ->check(CLI::NonNegativeNumber);
  slurm->add_option("--local-dir", o.slurm.local_dir, "node-local folder for shard DBs while written")->capture_default_str();
  add_common(slurm, o);
  slurm->footer("\nExample:\n  flatbench slurm configs/flattenquant_table8.yaml --array 8 --partition gpu\n"
                "  bash results/slurm-flattenquant_table8/submit.sh\n");

  auto* catalog = app.add_subcommand("catalog", "every registered method, evaluation, model format and GEMM backend");
  catalog->footer("\nExample:\n  flatbench catalog | less\n");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (*run) return cmd_run(o);
    if (*list) return cmd_list(o);
    if (*show) return cmd_show(o);
    if (*report) return cmd_report(o);
    if (auto rc = reports.run()) return *rc;
    if (*merge) return cmd_merge(o);
    if (*catalog) return cmd_catalog();
    if (*convert) return cmd_convert(o);
    if (*slurm) return cmd_slurm(o);
  } catch (const ConfigError& e) {
    std::cerr << "config error: " << e.what() << "\n";
    return 2;
  } catch (const CLI::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory: what this command was asked to hold does not fit this machine's memory "
                 "(a model, GEMM shape or sweep too large; `flatbench list` shows the jobs it expands to)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 3;
}

}  // namespace fb

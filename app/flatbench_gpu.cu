// flatbench-gpu: the GPU side of flatbench's speed measurements.
//
//   flatbench-gpu gemm --out FILE.db [--models opt-6.7b,...] [--tokens 1,16,...]
//                      [--shapes NxK,...] [--reps N] [--budget-ms X] [--flush-l2]
//                      [--git SHA] [--config FILE]
//   flatbench-gpu layer --out FILE.db [--models opt-6.7b,...] [--tokens 256,1024,...]
//                       [--reps N] [--git SHA]
//   flatbench-gpu probe MxNxK [MxNxK...] [--flush-l2]
//   flatbench-gpu info
//
// `gemm` times cuBLAS fp16, cuBLASLt int8 and fp8, and our Hopper kernels over the linear
// layers of the chosen models and writes its own SQLite DB in the CPU harness's schema
// (harness/store.h): one run (provenance: GPU, clocks, driver, CUDA, cuBLAS versions) and
// one job per (model, backend) holding that model's GemmRecord rows. `layer` times an
// OPT-style decoder layer (kernels/cuda/layer.h) in fp16 and with flatten + INT8/W4A8
// linears, one job per model. `flatbench merge` folds either file into the main DB.
#include "core/job_spec.h"
#include "harness/store.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/gemm_sweep.h"
#include "kernels/cuda/layer.h"
#include "kernels/cuda/shapes.h"

#include <cublas_v2.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <unistd.h>

namespace {

using fb::json;

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

json gpu_provenance() {
  int dev = 0;
  FB_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  FB_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  auto attr = [&](cudaDeviceAttr a) {
    int v = 0;
    if (cudaDeviceGetAttribute(&v, a, dev) != cudaSuccess) (void)cudaGetLastError();
    return v;
  };
  int driver = 0, runtime = 0, cublas = 0;
  FB_CUDA_CHECK(cudaDriverGetVersion(&driver));
  FB_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  cublasHandle_t h;
  if (cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) {
    cublasGetVersion(h, &cublas);
    cublasDestroy(h);
  }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return {{"name", prop.name},
          {"compute_capability", std::to_string(prop.major) + "." + std::to_string(prop.minor)},
          {"multiprocessors", prop.multiProcessorCount},
          {"l2_bytes", prop.l2CacheSize},
          {"memory_bytes", prop.totalGlobalMem},
          {"max_sm_clock_khz", attr(cudaDevAttrClockRate)},
          {"max_mem_clock_khz", attr(cudaDevAttrMemoryClockRate)},
          {"memory_bus_bits", attr(cudaDevAttrGlobalMemoryBusWidth)},
          {"cuda_driver_version", driver},
          {"cuda_runtime_version", runtime},
          {"cublas_version", cublas},
          {"nvcc_version", std::to_string(__CUDACC_VER_MAJOR__) + "." + std::to_string(__CUDACC_VER_MINOR__) + "." +
                               std::to_string(__CUDACC_VER_BUILD__)},
          {"host", host},
          {"nvidia_smi",
           run_command("nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,"
                       "power.limit,temperature.gpu,persistence_mode --format=csv 2>/dev/null")}};
}

struct GemmArgs {
  std::string out, git, config;
  std::vector<std::string> models = {"opt-6.7b", "opt-13b", "opt-30b", "opt-66b", "llama-2-7b", "llama-2-70b", "llama-3-8b"};
  std::vector<std::pair<long, long>> custom_nk;
  fb::cuda::SweepOptions sweep;
};

[[noreturn]] void usage(const std::string& error) {
  std::cerr << "flatbench-gpu: " << error << "\n"
            << "usage: flatbench-gpu gemm --out FILE.db [--models a,b] [--tokens 1,16,...] [--shapes NxK,...]\n"
               "                          [--reps N] [--budget-ms X] [--flush-l2] [--git SHA] [--config FILE]\n"
               "       flatbench-gpu layer --out FILE.db [--models opt-6.7b,...] [--tokens 256,...] [--reps N]\n"
               "       flatbench-gpu probe MxNxK [MxNxK...] [--flush-l2]   (tile/split tuning table)\n"
               "       flatbench-gpu info\n";
  std::exit(2);
}

GemmArgs parse_gemm_args(int argc, char** argv) {
  GemmArgs a;
  a.sweep.tokens = {1, 16, 64, 256, 1024, 2048, 4096, 16384};
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--out") a.out = value();
    else if (flag == "--git") a.git = value();
    else if (flag == "--config") a.config = value();
    else if (flag == "--models") a.models = split(value(), ',');
    else if (flag == "--flush-l2") a.sweep.flush_l2 = true;
    else if (flag == "--reps") a.sweep.max_reps = std::stoi(value());
    else if (flag == "--budget-ms") a.sweep.budget_ms = std::stod(value());
    else if (flag == "--tokens") {
      a.sweep.tokens.clear();
      for (const auto& t : split(value(), ',')) a.sweep.tokens.push_back(std::stol(t));
    } else if (flag == "--shapes") {
      for (const auto& s : split(value(), ',')) {
        const auto nk = split(s, 'x');
        if (nk.size() != 2) usage("--shapes takes NxK items, got '" + s + "'");
        a.custom_nk.push_back({std::stol(nk[0]), std::stol(nk[1])});
      }
    } else usage("unknown option " + flag);
  }
  if (a.out.empty()) usage("gemm needs --out FILE.db");
  for (long t : a.sweep.tokens)
    if (t < 1) usage("--tokens must be positive");
  for (auto [n, k] : a.custom_nk)
    if (n < 1 || k < 32 || k % 32) usage("--shapes: K must be a positive multiple of 32 and N positive");
  if (a.sweep.max_reps < 5) usage("--reps must be at least 5");
  return a;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read config file " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Shape sets: each model's linear layers, plus "custom" for --shapes.
std::map<std::string, fb::cuda::LinearShapes> shape_sets(const GemmArgs& a) {
  std::map<std::string, fb::cuda::LinearShapes> sets;
  for (const auto& m : a.models) sets[m] = fb::cuda::linear_shapes(fb::cuda::arch_by_name(m));
  for (auto nk : a.custom_nk) sets["custom"][nk] = "custom";
  return sets;
}

json layer_variant_names() {
  json out = json::array();
  for (const auto& v : fb::cuda::kLayerVariants) out.push_back(v.name);
  return out;
}

// A job of this tool: the same spec shape and key rule as the CPU harness's (core/job_spec.h),
// run by the "cuda" backend, on generated operands (no data files).
fb::JobSpec device_job(std::optional<fb::SpecPart> model, fb::SpecPart eval, uint64_t seed) {
  fb::JobSpec spec;
  spec.backend = "cuda";
  spec.model = std::move(model);
  spec.eval = std::move(eval);
  spec.seed = long(seed);
  return spec;
}

// Writes one finished job holding `rows` (and a ms metric per row).
void write_job(fb::Store& store, const fb::RunInfo& run, const fb::JobSpec& spec, const std::string& label,
               const std::vector<fb::GemmRecord>& rows, const json& info, double seconds) {
  fb::JobResult result;
  result.synthetic = true;  // random operands and weights, not a model's
  for (const auto& g : rows) fb::add_gemm_metric(result, g);
  result.gemms = rows;
  result.info = info;
  const long job = store.start_job(run.uuid, spec.key(), spec.to_json(), label);
  store.finish_job(job, result, seconds);
}

fb::RunInfo begin_run(fb::Store& store, const std::string& tool, const std::string& git, const json& gpu,
                      const json& options, const std::string& config) {
  fb::RunInfo run;
  run.uuid = fb::new_uuid();
  run.started_at = fb::now_iso8601();
  run.provenance = {{"tool", tool}, {"git", git}, {"gpu", gpu}, {"options", options}};
  if (!config.empty()) run.config_path = config, run.config_text = read_file(config);
  store.begin_run(run);
  return run;
}

int run_gemm(const GemmArgs& args) {
  const auto sets = shape_sets(args);
  std::set<std::pair<long, long>> unique_nk;
  for (const auto& [name, shapes] : sets)
    for (const auto& [nk, roles] : shapes) unique_nk.insert(nk);
  fb::cuda::SweepOptions opt = args.sweep;
  opt.nk.assign(unique_nk.begin(), unique_nk.end());

  const json gpu = gpu_provenance();
  fb::Store store(args.out);
  const fb::RunInfo run = begin_run(store, "flatbench-gpu gemm", args.git, gpu,
                                    {{"tokens", opt.tokens}, {"max_reps", opt.max_reps}, {"budget_ms", opt.budget_ms},
                                     {"flush_l2", opt.flush_l2}, {"flatten_ratio", opt.flatten_ratio}},
                                    args.config);

  const auto t0 = std::chrono::steady_clock::now();
  json notes = json::object();
  const auto records = fb::cuda::run_gemm_sweep(opt, gpu["name"].get<std::string>(), notes);
  const double sweep_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // One job per (shape set, backend).
  for (const auto& [set_name, shapes] : sets) {
    for (const char* backend : fb::cuda::kSweepBackends) {
      std::vector<fb::GemmRecord> rows;
      for (const auto& g : records) {
        auto it = shapes.find({g.n, g.k});
        if (g.backend != backend || it == shapes.end()) continue;
        rows.push_back(g);
        rows.back().extra["roles"] = it->second;
      }
      if (rows.empty()) continue;
      const json info = {{"notes", notes}, {"sweep_seconds", sweep_s},
                         {"ratio_to_fp32", "holds cuBLAS fp16 median / this median (GPU jobs have no fp32 baseline)"}};
      json params = {{"backends", {backend}}, {"tokens", opt.tokens}, {"reps", opt.max_reps},
                     {"budget_ms", opt.budget_ms}, {"flush_l2", opt.flush_l2}, {"flatten_ratio", opt.flatten_ratio}};
      if (set_name == "custom") {
        params["nk"] = json::array();
        for (const auto& [nk, role] : shapes) params["nk"].push_back({nk.first, nk.second});
      } else {
        params["layers_of"] = {set_name};
      }
      write_job(store, run, device_job(std::nullopt, {"gemm", "", params}, opt.seed),
                std::string(backend) + " gemm " + set_name, rows, info, sweep_s);
    }
  }
  store.end_run(run.uuid);
  std::printf("wrote %zu GEMM records to %s (run %s, sweep %.1f s)\n", records.size(), args.out.c_str(),
              run.uuid.c_str(), sweep_s);
  return 0;
}

int run_layer(int argc, char** argv) {
  std::string out, git;
  std::vector<std::string> models = {"opt-6.7b", "opt-13b", "opt-30b", "opt-66b"};
  fb::cuda::LayerOptions opt;
  opt.tokens = {256, 1024, 2048, 4096};
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--out") out = value();
    else if (flag == "--git") git = value();
    else if (flag == "--models") models = split(value(), ',');
    else if (flag == "--reps") opt.max_reps = std::stoi(value());
    else if (flag == "--tokens") {
      opt.tokens.clear();
      for (const auto& t : split(value(), ',')) opt.tokens.push_back(std::stol(t));
    } else usage("unknown option " + flag);
  }
  if (out.empty()) usage("layer needs --out FILE.db");
  const json gpu = gpu_provenance();
  fb::Store store(out);
  const fb::RunInfo run =
      begin_run(store, "flatbench-gpu layer", git, gpu, {{"tokens", opt.tokens}, {"max_reps", opt.max_reps}}, "");
  for (const auto& model : models) {
    const auto t0 = std::chrono::steady_clock::now();
    json notes = json::object();
    const auto rows = fb::cuda::run_layer_sweep(model, opt, gpu["name"].get<std::string>(), notes);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const json params = {{"variants", layer_variant_names()}, {"tokens", opt.tokens}, {"reps", opt.max_reps},
                         {"budget_ms", opt.budget_ms}, {"flatten_ratio", opt.flatten_ratio}};
    write_job(store, run,
              device_job(fb::SpecPart{model, "synthetic", {{"arch", model}}}, {"decoder_layer", "", params}, opt.seed),
              model + " decoder_layer", rows, {{"ratio_to_fp32", "holds the fp16 layer's median / this median"}}, secs);
  }
  store.end_run(run.uuid);
  std::printf("wrote decoder-layer timings to %s (run %s)\n", out.c_str(), run.uuid.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("missing command");
  const std::string cmd = argv[1];
  try {
    if (cmd == "info" || cmd == "gemm" || cmd == "probe" || cmd == "layer") {
      if (fb::cuda::cuda_device_count() == 0) {
        std::fprintf(stderr, "flatbench-gpu: no CUDA device\n");
        return 3;
      }
    }
    if (cmd == "info") {
      std::printf("%s\n", gpu_provenance().dump(2).c_str());
      return 0;
    }
    if (cmd == "gemm") return run_gemm(parse_gemm_args(argc, argv));
    if (cmd == "layer") return run_layer(argc, argv);
    if (cmd == "probe") {  // flatbench-gpu probe MxNxK [MxNxK...] [--flush-l2]
      std::vector<std::vector<long>> shapes;
      bool flush = false;
      for (int i = 2; i < argc; ++i) {
        if (std::string(argv[i]) == "--flush-l2") { flush = true; continue; }
        std::vector<long> mnk;
        for (const auto& v : split(argv[i], 'x')) mnk.push_back(std::stol(v));
        if (mnk.size() != 3) usage(std::string("probe takes MxNxK shapes, got ") + argv[i]);
        shapes.push_back(mnk);
      }
      fb::cuda::run_gemm_probe(shapes, flush, 30);
      return 0;
    }
    usage("unknown command " + cmd);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flatbench-gpu: %s\n", e.what());
    return 1;
  }
}

// The `gemm` evaluator: GEMM latency of every selected backend over a list of shapes.
//
// Phases per (shape, backend), as in the CUTLASS profiler: prepare operands → verify
// against the fp32 reference → profile. google/benchmark drives the profiling
// (warm-up time, then `reps` repetitions, each long enough for a stable timer) and a
// reporter hands each repetition's per-call time back here. Ratios compare each backend
// with the fastest fp32 baseline measured for the same shape in the same job, never
// across runs.
#include "harness/evaluator.h"
#include "core/resources.h"
#include "kernels/gemm_backend.h"
#include "models/synthetic.h"

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

namespace fb {

namespace {

// Linear-layer shapes (output N, input K) of a published architecture (the synthetic
// models' table): q/o d×d, k/v (d·kv_heads/heads)×d, MLP h×d and d×h (gate and up share one).
std::vector<GemmShape> arch_shapes(const std::string& arch, const std::vector<long>& tokens) {
  ModelConfig c;
  try {
    c = synthetic_config(arch);
  } catch (const std::invalid_argument&) {
    std::string known;
    for (const auto& a : synthetic_arch_names()) known += (known.empty() ? "" : ", ") + a;
    throw std::runtime_error("gemm: unknown architecture '" + arch + "' in layers_of (known: " + known + ")");
  }
  const long d = c.dim, h = c.hidden_dim, kv = long(c.dim) * c.n_kv_heads / c.n_heads;
  std::set<std::pair<long, long>> nk = {{d, d}, {kv, d}, {h, d}, {d, h}};
  std::vector<GemmShape> out;
  for (long t : tokens)
    for (auto [n, k] : nk) out.push_back({t, n, k});
  return out;
}

// Collects the per-call real time (ms) of each repetition.
class CollectingReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Iteration) continue;
      if (r.error_occurred) throw std::runtime_error("benchmark error: " + r.error_message);
      samples_ms.push_back(1e3 * r.real_accumulated_time / static_cast<double>(r.iterations));
    }
  }
  std::vector<double> samples_ms;
};

std::vector<double> profile(GemmProblem& p, const std::string& name, int reps, double min_time_s, double warmup_s) {
  benchmark::ClearRegisteredBenchmarks();
  benchmark::RegisterBenchmark(name.c_str(), [&p](benchmark::State& st) {
    for (auto _ : st) p.run();
  })
      ->Repetitions(reps)
      ->MinTime(min_time_s)
      ->MinWarmUpTime(warmup_s)
      ->UseRealTime()
      ->ReportAggregatesOnly(false);
  CollectingReporter reporter;
  // Only this benchmark is registered; "." matches it whatever suffixes (/min_time, /real_time) it carries.
  benchmark::RunSpecifiedBenchmarks(&reporter, ".");
  benchmark::ClearRegisteredBenchmarks();
  return reporter.samples_ms;
}

std::vector<const GemmBackendInfo*> selected_backends(const json& names) {
  auto& reg = Registry<GemmBackendInfo>::instance();
  std::vector<const GemmBackendInfo*> out;
  if (names.empty()) {
    for (const auto& [n, info] : reg.all()) out.push_back(&info);
    return out;
  }
  for (const auto& n : names) {
    const auto* info = reg.find(n.get<std::string>());
    if (!info) {
      std::string known;
      for (const auto& k : reg.names()) known += (known.empty() ? "" : ", ") + k;
      throw std::runtime_error("gemm: unknown backend '" + n.get<std::string>() + "' (known: " + known + ")");
    }
    out.push_back(info);
  }
  return out;
}

struct TimingParams {
  int reps = 0;
  double min_time_s = 0, warmup_s = 0;
};

// One backend on one shape: its row with a disposition. An unavailable backend is not_supported
// and an incorrect one (verify error above its tolerance) is not timed — a timing of a wrong
// product would only mislead — so both rows carry zeros for every latency field.
GemmRecord measure_backend(const GemmBackendInfo& b, const GemmShape& s, uint64_t seed, int threads, bool verify,
                           const TimingParams& timing) {
  GemmRecord g{"cpu", b.name, b.dtype, s.m, s.n, s.k};
  g.extra["is_fp32_baseline"] = b.is_fp32_baseline;
  if (b.available && !b.available()) {
    g.disposition = gemm_disposition::kNotSupported;
    return g;
  }
  auto problem = b.prepare(s, seed, threads);
  if (verify) {
    g.verify_error = problem->verify();
    g.verify_tolerance = problem->tolerance();
    // Written so that a NaN error is incorrect too.
    g.disposition = g.verify_error <= g.verify_tolerance ? gemm_disposition::kPassed : gemm_disposition::kIncorrect;
    if (g.disposition == gemm_disposition::kIncorrect) return g;
  }
  std::string name = fmt::format("{}/{}x{}x{}", b.name, s.m, s.n, s.k);
  g.samples_ms = profile(*problem, name, timing.reps, timing.min_time_s, timing.warmup_s);
  Summary sum = summarise(g.samples_ms);
  g.reps = static_cast<int>(g.samples_ms.size());
  g.min_ms = sum.min, g.median_ms = sum.median, g.max_ms = sum.max;
  g.gops = 2.0 * s.m * s.n * s.k / (sum.median * 1e-3) / 1e9;
  return g;
}

void run_gemm(EvalContext& ctx, JobResult& result) {
  const json& p = ctx.params;
  std::vector<GemmShape> shapes;
  for (const auto& s : p["shapes"]) shapes.push_back({s[0].get<long>(), s[1].get<long>(), s[2].get<long>()});
  auto tokens = p["tokens"].get<std::vector<long>>();
  for (const auto& arch : p["layers_of"]) {
    auto more = arch_shapes(arch.get<std::string>(), tokens);
    shapes.insert(shapes.end(), more.begin(), more.end());
  }
  if (shapes.empty()) throw std::runtime_error("gemm: no shapes (give `shapes:` or `layers_of:` + `tokens:`)");
  for (const auto& s : shapes) {
    if (s.m < 1 || s.n < 1 || s.k < 1)
      throw std::runtime_error(fmt::format("gemm: shape [{}, {}, {}] has a non-positive size", s.m, s.n, s.k));
    // fp32 A, B, C and the reference C, plus the int8 / int4 copies of A and B the backends make.
    const double values = double(s.m) * s.k + double(s.k) * s.n + 2.0 * double(s.m) * s.n;
    require_memory(values * 4 + (double(s.m) * s.k + double(s.k) * s.n) * 2,
                   fmt::format("gemm shape [{}, {}, {}]", s.m, s.n, s.k));
  }

  auto backends = selected_backends(p["backends"]);
  const int threads = param_int(p, "threads");
  const TimingParams timing{param_int(p, "reps"), param_float(p, "min_time_ms") / 1e3, param_float(p, "warmup_ms") / 1e3};
  const bool verify = param_bool(p, "verify");

  ctx.progress.begin("gemm", static_cast<long>(shapes.size() * backends.size()));
  long step = 0, timed = 0, incorrect = 0;
  for (const auto& s : shapes) {
    std::vector<GemmRecord> rows;
    for (const auto* b : backends) {
      ctx.progress.step(step++);
      GemmRecord g = measure_backend(*b, s, ctx.seed, threads, verify, timing);
      if (g.disposition == gemm_disposition::kNotSupported)
        result.info["skipped"].push_back(b->name + ": not available on this CPU");
      if (g.disposition == gemm_disposition::kIncorrect) {
        ++incorrect;
        result.info["incorrect"].push_back(fmt::format("{} [{}, {}, {}]: relative error {:.3g} > {:.3g}", b->name,
                                                       s.m, s.n, s.k, g.verify_error, g.verify_tolerance));
      }
      if (gemm_row_timed(g)) ++timed;
      rows.push_back(std::move(g));
    }
    double best_fp32 = 0;
    for (const auto& g : rows)
      if (gemm_row_timed(g) && g.extra["is_fp32_baseline"].get<bool>() && (best_fp32 == 0 || g.median_ms < best_fp32))
        best_fp32 = g.median_ms;
    for (auto& g : rows) {
      if (gemm_row_timed(g)) {
        if (best_fp32 > 0) g.ratio_to_fp32 = best_fp32 / g.median_ms;
        add_gemm_metric(result, g);
      }
      result.gemms.push_back(std::move(g));
    }
  }
  // One wrong backend is a row's verdict; a job in which every checked backend was wrong measured nothing.
  if (timed == 0 && incorrect > 0)
    throw std::runtime_error("gemm: every backend failed verification (" + result.info["incorrect"].dump() + ")");
  ctx.progress.end();
  result.info["threads"] = threads;
}

}  // namespace

FB_REGISTER_EVALUATOR({"gemm",
                       "GEMM latency of CPU backends over shapes: verify against fp32, then time with google/benchmark",
                       {
                           {"shapes", ParamType::ShapeList, json::array(), "explicit [M, N, K] shapes (M = tokens)", {}, {},
                            at_least(1)},
                           {"layers_of", ParamType::StringList, json::array(),
                            "architectures whose linear-layer shapes to add (opt-125m … llama-3-70b)", {}, {}, {},
                            synthetic_arch_names},
                           {"tokens", ParamType::IntList, json::array({16, 256, 2048}),
                            "token counts M used with layers_of", {}, {}, at_least(1)},
                           {"backends", ParamType::StringList, json::array(),
                            "backends to time (empty = every registered one available here)", {}, {}, {},
                            [] { return Registry<GemmBackendInfo>::instance().names(); }},
                           {"reps", ParamType::Int, 10, "timed repetitions per shape and backend", {}, {}, at_least(1)},
                           {"min_time_ms", ParamType::Float, 20.0, "minimum time of one repetition (ms)", {}, {}, at_least(0)},
                           {"warmup_ms", ParamType::Float, 50.0, "warm-up time before the repetitions (ms)", {}, {}, at_least(0)},
                           {"threads", ParamType::Int, 0, "threads for the kernels (0 = all cores)", {}, {}, between(0, 4096)},
                           {"verify", ParamType::Bool, true, "check each backend against the fp32 reference first"},
                       },
                       false, run_gemm});

}  // namespace fb

// What a job produces. Every evaluator and method fills one JobResult; the store
// writes it in a single transaction, so a job is either wholly recorded or absent.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace fb {

using json = nlohmann::json;

struct Metric {
  std::string name;
  double value = 0;
  std::string unit;            // "", "ms", "tok/s", "%", "bytes", ...
  int n = 1;                   // repetitions behind value
  double stddev = 0;
  std::vector<double> samples; // raw repetitions (kept for significance tests)
};

// One linear site's quantization decision (FlattenQuant Tables 4/8/10 are queries on these).
struct SiteRecord {
  int layer = -1;
  std::string role;           // q k v o gate up down fc1 fc2
  int w_bits = 16, a_bits = 16;
  int k_in = 0, k_flat = 0, k_pad = 0;  // input channels: original, after flatten, after padding
  double w_scale = 0, a_scale = 0;      // per-tensor scales (0 = not per-tensor)
  double kl = -1, clip = 1, mse = -1;   // KL value (-1 none), clip ratio, reconstruction MSE
  double flops = 0;                     // 2·N·K per token, for FLOP-weighted shares
  json extra = json::object();
};

struct GemmRecord {
  std::string device = "cpu";  // cpu | cuda:<name>
  std::string backend;         // openblas, eigen, onednn, ours, cublas, ...
  std::string dtype;           // fp32, s8s8s32, w4a8, fp16, fp8e4m3, flatten_quant, ...
  long m = 0, n = 0, k = 0;
  int reps = 0;
  double min_ms = 0, median_ms = 0, max_ms = 0;
  double gops = 0;             // 2·M·N·K / median, in GOP/s
  double ratio_to_fp32 = 0;    // fastest fp32 median of the same shape in this job / this median
  std::vector<double> samples_ms;
  json extra = json::object();
  // The verify step's verdict, kept apart from the job's status (as the CUTLASS profiler keeps
  // a kernel's disposition): gemm_disposition::kPassed, kIncorrect (its error exceeded the
  // tolerance: no timing, every ms/GOP/s field 0), kNotSupported (not available on this machine
  // or for this shape: no timing), or "" = unknown (not verified: verify off, the GPU sweep, or
  // a row stored before dispositions existed).
  std::string disposition;
  double verify_error = 0;      // max |C − C_ref| / max |C_ref| (GemmProblem::verify); 0 when not verified
  double verify_tolerance = 0;  // the backend's bound on it (GemmProblem::tolerance); 0 when not verified
};

namespace gemm_disposition {
inline constexpr const char* kPassed = "passed";
inline constexpr const char* kIncorrect = "incorrect";
inline constexpr const char* kNotSupported = "not_supported";
}  // namespace gemm_disposition

// Whether a GEMM row holds a timing: a passed or unverified one (incorrect and not_supported
// rows carry none, so readers that compare latencies leave them out).
inline bool gemm_row_timed(const GemmRecord& g) {
  return g.disposition != gemm_disposition::kIncorrect && g.disposition != gemm_disposition::kNotSupported;
}

struct JobResult {
  std::vector<Metric> metrics;
  std::vector<SiteRecord> sites;
  std::vector<GemmRecord> gemms;
  json info = json::object();  // free-form facts (e.g. which BLAS core ran), stored with the job
  bool synthetic = false;      // set when the model's weights were generated, not trained

  Metric& add(std::string name, double value, std::string unit = "") {
    metrics.push_back(Metric{std::move(name), value, std::move(unit)});
    return metrics.back();
  }
};

// Why a metric is no measurement: "metric 'ppl' is nan", "metric 'ms' repetition 2 of 5 is inf";
// "" when its value and every repetition are finite. The runner fails a job on one (SQLite would
// store a NaN as NULL), and the readers use it to flag such rows that older binaries stored.
std::string non_finite_problem(const Metric& m);
// The first such problem among a result's metrics, or "".
std::string non_finite_problem(const JobResult& r);

// Summary statistics over repetitions, shared by every timing evaluator.
struct Summary {
  double min = 0, median = 0, max = 0, mean = 0, stddev = 0;
};
Summary summarise(std::vector<double> samples);

// A GEMM timing as a job metric, as the CPU gemm evaluator and flatbench-gpu both record it:
// named "ms/<backend>/<M>x<N>x<K>" (reports/regression.cpp reads the "ms/" prefix as a latency),
// the median with every repetition.
std::string gemm_metric_name(const GemmRecord& g);
Metric& add_gemm_metric(JobResult& result, const GemmRecord& g);

}  // namespace fb

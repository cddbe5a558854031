// Regression checks: which direction each metric prefers, how large a change must be to count,
// and the verdict of one metric against its history (Mann-Whitney U on repetition samples,
// gated by a per-metric minimum change — both must hold, as in asv and LNT).
#pragma once

#include "core/results.h"
#include "reports/query.h"

#include <string>
#include <vector>

namespace fb {

enum class Better { Lower, Higher, Neither };

struct MetricPolicy {
  Better better = Better::Neither;
  double min_change = 0.01;   // relative change below which nothing is flagged
  bool deterministic = false;  // same inputs give the same value: any change above min_change is real
};

// Thresholds a user can tune (flatbench nightly --min-latency ...).
struct Thresholds {
  double latency = 0.05;     // ms, s
  double throughput = 0.05;  // tok/s, GOP/s
  double ppl = 0.005;        // ppl, mean_nll
  double accuracy = 0.005;   // acc*
  double memory = 0.001;     // bytes
  double other = 0.01;
};

MetricPolicy metric_policy(const std::string& name, const std::string& unit, const Thresholds& th = {});

struct Finding {
  std::string key, label, metric, unit;
  double baseline = NAN, current = NAN;  // medians of the history / the current samples
  double change = NAN;                   // (current − baseline) / |baseline|
  double p = NAN;                        // U test p-value when one ran
  int n_baseline = 0, n_current = 0;
  std::string test;     // "U exact", "U normal", "deterministic", "3σ history", "too few samples"
  std::string verdict;  // regression | improvement | changed | unchanged | new
};

struct CheckOptions {
  int window = 5;       // history: this many previous rows of the same job key on the same machine
  double alpha = 0.01;  // significance level of the U test
  Thresholds thresholds;
};

// The samples behind a metric: its raw repetitions, else its single value.
std::vector<double> samples_of(const Metric& m);

// Judges one metric's current samples against the pooled samples of its history.
Finding judge(const Metric& current, const std::vector<Metric>& history, const CheckOptions& opt);

// Previous done rows of the same job key on the same machine (provenance host and CPU model), newest first.
std::vector<ReportRow> machine_history(const Store& store, const ReportRow& current, int window);

struct CheckReport {
  std::vector<std::string> run_uuids;
  std::vector<Finding> findings;
  int count(const std::string& verdict) const;
  std::string markdown(const Store& store, const CheckOptions& opt) const;
};

// Checks every metric of these rows against their machine history.
CheckReport check_rows(const Store& store, const std::vector<ReportRow>& rows, const CheckOptions& opt);
// Checks every done job of a run (uuid prefix).
CheckReport check_run(const Store& store, const std::string& run_uuid_prefix, const CheckOptions& opt);

}  // namespace fb

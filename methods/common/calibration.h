// Calibration: seeded windows of a corpus, and per-site statistics of the linear inputs
// collected through Model::site_hook (channel abs-max for smoothing / static scales, a sample
// of input rows for reconstruction error, XᵀX for GPTQ).
#pragma once

#include "models/model.h"
#include "models/tokenizer.h"

#include <nlohmann/json.hpp>

#include <Eigen/Core>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace fb {

class Progress;

struct CalibConfig {
  std::string dataset = "wikitext2-valid";  // corpus name or path relative to the data dir
  int samples = 32;                          // windows
  int seqlen = 256;                          // tokens per window
  int max_rows = 1024;                       // input rows kept per site (reconstruction-error records)
  uint64_t seed = 0;
};

// Reads calib_dataset / calib_samples / calib_seqlen / calib_rows (optional) from a filled parameter object.
CalibConfig calib_config_from(const nlohmann::json& params, uint64_t seed);

// The calibration windows: the corpus tokenized once (with BOS) and `samples` windows of `seqlen`
// tokens at seeded offsets. Without a tokenizer (synthetic models) the windows are seeded
// random token ids. seqlen is capped at the model's context.
std::vector<std::vector<int>> calibration_windows(const Model& m, const Tokenizer* tok,
                                                  const std::filesystem::path& data_dir, const CalibConfig& cfg);

// Statistics of one site's input over the calibration windows.
struct SiteStats {
  Vec absmax;              // per input channel: max_t |x[t,k]|
  Vec ch_min, ch_max;      // per input channel: min_t / max_t x[t,k] (bracketing 0)
  float lo = 0, hi = 0;    // min / max over every element (bracketing 0)
  long tokens = 0;
  Mat rows;                // evenly strided sample of input rows (≤ CollectOptions::max_rows)
  Eigen::MatrixXd xtx;     // Σ_t x_tᵀ x_t (only when CollectOptions::hessian)
};

int site_key(const SiteId& id);  // layer·16 + role: a map key
using SiteStatsMap = std::map<int, SiteStats>;

struct CollectOptions {
  int max_rows = 1024;     // rows kept per site for reconstruction error (0: none)
  bool hessian = false;    // accumulate XᵀX
  std::function<bool(const SiteId&)> want;  // sites to observe (null: all)
  // The rows whose statistics are kept, from the site's input (null: the input itself); GPTQ
  // passes the rows an operator's GEMM multiplies (LinearOp::hessian_rows).
  std::function<Mat(const SiteId&, const Mat& x)> rows_of;
};

// Runs the model over the windows with `hook` as its site hook, then restores the previous hook
// (also when a forward throws). Progress, when given, counts windows under `label`.
void forward_with_site_hook(Model& m, const std::vector<std::vector<int>>& windows, SiteHook hook,
                            Progress* progress = nullptr, const char* label = "calibration");

// Runs the model over the windows with a site hook installed (the previous hook is restored).
SiteStatsMap collect_site_stats(Model& m, const std::vector<std::vector<int>>& windows, const CollectOptions& opt,
                                Progress* progress = nullptr);

// Rescales the statistics of inputs divided per channel by s (after smoothing): x' = x / s.
void rescale_stats(SiteStats& st, const Vec& s);

}  // namespace fb

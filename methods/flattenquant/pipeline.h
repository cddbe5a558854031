// The FlattenQuant pipeline as a plain function of a config struct (the registered method in
// flattenquant.cpp reads the struct from YAML parameters; tests call run_flattenquant directly).
#pragma once

#include "core/results.h"
#include "methods/common/calibration.h"
#include "methods/common/gptq.h"
#include "methods/flattenquant/channel_stats.h"
#include "methods/flattenquant/flatten_plan.h"
#include "models/model.h"
#include "models/tokenizer.h"

#include <filesystem>
#include <string>

namespace fb {

enum class BitsMode { kl, int8, int4, none };
enum class KlMode { abs, signed_values, input_weight, output };

struct FlattenQuantConfig {
  float beta = 0.5f;
  BetaReference beta_ref = BetaReference::max;
  long pad_to = 32;
  SplitMode split = SplitMode::equal;
  BitsMode bits_mode = BitsMode::kl;
  double gamma = 0.05;
  KlMode kl_mode = KlMode::abs;
  int kl_bins = 2048;
  bool smooth = true;
  float alpha = 0.5f;
  bool smooth_all = false;         // also fold into v_proj rows and fc1 / up rows
  bool suppress = true;
  ChannelStat stat = ChannelStat::percentile;
  double percentile = 99.99;
  bool a_dynamic = false;
  bool w_per_channel = false;
  bool gptq = true;
  bool w_mse = false;
  GptqOptions gptq_opt;
  int kv_bits = 16;
  bool real_quant = false;
  int check_windows = 2;
  CalibConfig calib;

  ChannelStat effective_stat() const { return suppress ? stat : ChannelStat::max; }
};

// Throws std::invalid_argument naming the bad parameter.
FlattenQuantConfig flattenquant_config_from(const nlohmann::json& params, uint64_t seed);

// Quantizes the model in place and fills `result` with one SiteRecord per linear site and the
// job metrics (int4_share_layers/flops, flatten_ratio(_padded), n_int4, n_int8, errors, bytes).
void run_flattenquant(Model& m, const FlattenQuantConfig& cfg, const Tokenizer* tok,
                      const std::filesystem::path& data_dir, JobResult& result);

}  // namespace fb

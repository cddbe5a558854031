// The job-spec parameters the report tables and plots read, each named once against the method
// (or model format) whose schema registers it. Every read goes through these helpers, which refuse a name
// the schema does not have (std::logic_error: a programming error of the report, not of the
// data), and every TableDef / PlotDef lists the ParamRefs it reads, so a test checks them all
// against the registry: a spelling no method has cannot show up as a silently empty column.
#pragma once

#include "core/params.h"

#include <optional>
#include <string>

namespace fb {

struct ParamRef {
  std::string owner;  // the registered method (or model format) declaring it; "" = whichever the job ran, when it declares it
  std::string name;
  std::string part = "method";  // the job spec's part: "method" (Registry<MethodInfo>) or "model" (Registry<ModelSourceInfo>)
};

// The parameters the reports read, by the names their methods register.
namespace report_params {
inline const ParamRef kBeta{"flattenquant", "beta"};          // flatten threshold (Table 8, regime study, β plot)
inline const ParamRef kBetaRef{"flattenquant", "beta_ref"};
inline const ParamRef kSplit{"flattenquant", "split"};
inline const ParamRef kBitsMode{"flattenquant", "bits_mode"};
inline const ParamRef kGamma{"flattenquant", "gamma"};        // KL threshold (Tables 4/10, γ plot)
inline const ParamRef kAlpha{"flattenquant", "alpha"};        // smoothing strength (Tables 7/9)
inline const ParamRef kSmooth{"flattenquant", "smooth"};
inline const ParamRef kSuppress{"flattenquant", "suppress"};
// Bit widths and the weight quantizer, read from whichever method the job ran (FlatQuant sets
// the two caches apart: k_bits / v_bits; the others both at once: kv_bits).
inline const ParamRef kWBits{"", "w_bits"};
inline const ParamRef kABits{"", "a_bits"};
inline const ParamRef kKvBits{"", "kv_bits"};
inline const ParamRef kKBits{"", "k_bits"};
inline const ParamRef kVBits{"", "v_bits"};
inline const ParamRef kWQuantizer{"", "w_quantizer"};
// The synthetic model format's outlier knobs (the regime study's rows).
inline const ParamRef kOutlierScale{"synthetic", "outlier_scale", "model"};
inline const ParamRef kOutlierChannels{"synthetic", "outlier_channels", "model"};
}  // namespace report_params

// "" when `ref` names a parameter of its owner's registered schema (for owner "": of at least
// one registered method or model format), else what is wrong, naming the owner and the parameter.
std::string param_ref_problem(const ParamRef& ref);

// The value of `ref` among the job spec's method parameters, nullptr when the spec leaves it
// unset or (method "") the job's method does not declare it. Throws std::logic_error when
// param_ref_problem(ref) is not empty.
const json* method_param(const json& spec, const ParamRef& ref);
std::optional<double> method_num(const json& spec, const ParamRef& ref);  // numbers, booleans as 0/1, numeric strings
std::string method_text(const json& spec, const ParamRef& ref);           // "" when unset
// The same for a model parameter (part "model"): spec.model holds them directly.
std::optional<double> model_num(const json& spec, const ParamRef& ref);

// `ref` in method parameters `params` already taken out of a spec (e.g. completed with the
// schema's defaults), or `fallback` when absent or not a number; checked as method_param is.
int int_param_or(const json& params, const ParamRef& ref, int fallback);
std::string text_param_or(const json& params, const ParamRef& ref, const std::string& fallback);
double num_param_or(const json& params, const ParamRef& ref, double fallback);

}  // namespace fb

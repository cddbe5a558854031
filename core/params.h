// Parameter schemas: every method, evaluator and model source declares the knobs it
// takes, with type, default and one line of help. The config loader checks YAML
// against the schema (unknown keys, wrong types, suggestions for misspellings),
// and the schema tells a sweep axis (a list given for a scalar knob) from a value
// that is itself a list (e.g. GEMM shapes).
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace fb {

using json = nlohmann::json;

enum class ParamType { Int, Float, Bool, String, IntList, FloatList, StringList, ShapeList };

const char* param_type_name(ParamType t);

// What a parameter's value names outside the config. Data-naming values are checked to exist
// when the config loads, and the content of what they name enters the job key
// (core/fingerprint.h), so a changed file never passes for a finished job.
enum class ParamRole {
  value,      // a plain setting
  file,       // a file or folder under the data directory
  corpus,     // a corpus name (datasets/corpus.h: wikitext2, ...) or a text file under the data directory
  task_list,  // zero-shot task names (datasets/tasks/task.h), read from the folder of the `task_dir` parameter
};

// The numbers a numeric parameter (or each element of a numeric list) accepts. Only finite
// numbers are ever accepted: NaN would poison results, and a job spec is JSON, which has no ∞
// (nlohmann writes it as null, so .inf and -.inf would even share one job key).
struct NumberRange {
  double min = std::numeric_limits<double>::lowest();
  double max = std::numeric_limits<double>::max();
  std::vector<double> also = {};  // accepted outside [min, max] (16 = "off" for bit widths)
  bool accepts(double v) const;
  std::string describe() const;  // "2..8 or 16", "≥ 1", "" for any finite number
};

NumberRange at_least(double min);
NumberRange between(double min, double max);
NumberRange bit_width();  // 2..8, or 16 = left in floating point

struct ParamSpec {
  std::string name;
  ParamType type;
  json default_value;  // null = required
  std::string help;
  std::vector<std::string> choices = {};  // for String: the allowed values (empty = any)
  ParamRole role = ParamRole::value;
  NumberRange range = {};  // for Int / Float (and their lists)
  // For String / StringList: the names a value must be one of, asked when a config loads
  // (a registry is only complete after static initialisation, so `choices` cannot hold it).
  std::function<std::vector<std::string>()> known_names = {};
  bool is_path() const { return role == ParamRole::file; }
  bool names_data() const { return role != ParamRole::value; }
};

using ParamSchema = std::vector<ParamSpec>;

// True when a YAML/JSON value fits the parameter's type (ints are accepted as floats).
bool value_fits(const ParamSpec& spec, const json& value);
// "" when every number of the value lies in the parameter's range, else what is wrong.
std::string range_error(const ParamSpec& spec, const json& value);
// The parameter's type and range as `catalog` and errors print them: "integer, 2..8 or 16".
std::string describe_type(const ParamSpec& spec);

// What is wrong with one value of a parameter. The config loader (located errors) and the model
// loader (exceptions) share these checks and word the report each in its own style.
struct ValueProblem {
  enum class Kind { wrong_type, out_of_range, unknown_name };
  Kind kind;
  std::string detail;               // out_of_range: range_error's text; unknown_name: the name; else empty
  std::vector<std::string> known;   // unknown_name: the names known_names gave, for suggestions
};
// The first problem of `value`, checked in this order: type (and choices), range, known names.
std::optional<ValueProblem> value_problem(const ParamSpec& spec, const json& value);
// The first problem among the keys of `given` that `schema` declares, with its key (others are skipped:
// whether an undeclared key is an error is the caller's business).
std::optional<std::pair<std::string, ValueProblem>> first_param_problem(const ParamSchema& schema, const json& given);

// Canonical form of a value of that type (ints for Int, doubles for Float, ...).
json normalise_value(const ParamSpec& spec, const json& value);

// Parameters of one expanded job: schema defaults overlaid with the given values.
json fill_defaults(const ParamSchema& schema, const json& given);

const ParamSpec* find_param(const ParamSchema& schema, const std::string& name);

// Typed accessors used by methods and evaluators on a filled parameter object.
int param_int(const json& p, const char* name);
double param_float(const json& p, const char* name);
bool param_bool(const json& p, const char* name);
std::string param_string(const json& p, const char* name);

}  // namespace fb

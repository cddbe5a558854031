// Parameter schemas: every method, evaluator and model source declares the knobs it
// takes, with type, default and one line of help. The config loader checks YAML
// against the schema (unknown keys, wrong types, suggestions for misspellings),
// and the schema tells a sweep axis (a list given for a scalar knob) from a value
// that is itself a list (e.g. GEMM shapes).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace fb {

using json = nlohmann::json;

enum class ParamType { Int, Float, Bool, String, IntList, FloatList, StringList, ShapeList };

const char* param_type_name(ParamType t);

struct ParamSpec {
  std::string name;
  ParamType type;
  json default_value;  // null = required
  std::string help;
  std::vector<std::string> choices = {};  // for String: the allowed values (empty = any)
  bool is_path = false;  // a file under the data directory: checked to exist when the config loads
};

using ParamSchema = std::vector<ParamSpec>;

// True when a YAML/JSON value fits the parameter's type (ints are accepted as floats).
bool value_fits(const ParamSpec& spec, const json& value);

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

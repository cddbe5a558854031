#include "core/params.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb {

const char* param_type_name(ParamType t) {
  switch (t) {
    case ParamType::Int: return "integer";
    case ParamType::Float: return "number";
    case ParamType::Bool: return "boolean";
    case ParamType::String: return "string";
    case ParamType::IntList: return "list of integers";
    case ParamType::FloatList: return "list of numbers";
    case ParamType::StringList: return "list of strings";
    case ParamType::ShapeList: return "list of [M, N, K] shapes";
  }
  return "?";
}

namespace {
bool all_of(const json& v, bool (json::*pred)() const noexcept) {
  if (!v.is_array()) return false;
  for (const auto& e : v)
    if (!(e.*pred)()) return false;
  return true;
}
}  // namespace

bool value_fits(const ParamSpec& spec, const json& v) {
  switch (spec.type) {
    case ParamType::Int: return v.is_number_integer();
    case ParamType::Float: return v.is_number();
    case ParamType::Bool: return v.is_boolean();
    case ParamType::String:
      if (!v.is_string()) return false;
      if (spec.choices.empty()) return true;
      for (const auto& c : spec.choices)
        if (c == v.get<std::string>()) return true;
      return false;
    case ParamType::IntList: return all_of(v, &json::is_number_integer);
    case ParamType::FloatList: return all_of(v, &json::is_number);
    case ParamType::StringList: return all_of(v, &json::is_string);
    case ParamType::ShapeList:
      if (!v.is_array() || v.empty()) return false;
      for (const auto& s : v)
        if (!all_of(s, &json::is_number_integer) || s.size() != 3) return false;
      return true;
  }
  return false;
}

json normalise_value(const ParamSpec& spec, const json& v) {
  if (spec.type == ParamType::Float) return v.get<double>();
  if (spec.type == ParamType::FloatList) {
    json out = json::array();
    for (const auto& e : v) out.push_back(e.get<double>());
    return out;
  }
  return v;
}

json fill_defaults(const ParamSchema& schema, const json& given) {
  json out = json::object();
  for (const auto& spec : schema) {
    if (given.contains(spec.name))
      out[spec.name] = normalise_value(spec, given.at(spec.name));
    else if (!spec.default_value.is_null())
      out[spec.name] = normalise_value(spec, spec.default_value);
  }
  return out;
}

bool NumberRange::accepts(double v) const {
  if (std::isnan(v)) return false;
  if (std::isinf(v)) return false;
  for (double a : also)
    if (v == a) return true;
  return v >= min && v <= max;
}

std::string NumberRange::describe() const {
  const bool low = min != std::numeric_limits<double>::lowest(), high = max != std::numeric_limits<double>::max();
  std::string out = low && high ? fmt::format("{:g}..{:g}", min, max)
                    : low       ? fmt::format("≥ {:g}", min)
                    : high      ? fmt::format("≤ {:g}", max)
                                : "";
  for (double a : also) out += fmt::format("{}{:g}", out.empty() ? "" : " or ", a);
  return out;
}

NumberRange at_least(double min) { return NumberRange{min}; }
NumberRange between(double min, double max) { return NumberRange{min, max}; }
NumberRange bit_width() { return NumberRange{2, 8, {16}}; }

namespace {
bool numeric(ParamType t) {
  return t == ParamType::Int || t == ParamType::Float || t == ParamType::IntList || t == ParamType::FloatList ||
         t == ParamType::ShapeList;
}

std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  return fmt::format("{:g}", v);
}
}  // namespace

std::string range_error(const ParamSpec& spec, const json& value) {
  if (!numeric(spec.type)) return "";
  std::vector<double> numbers;
  if (spec.type == ParamType::ShapeList)
    for (const auto& shape : value)
      for (const auto& e : shape) numbers.push_back(e.get<double>());
  else if (value.is_array())
    for (const auto& e : value) numbers.push_back(e.get<double>());
  else
    numbers.push_back(value.get<double>());
  const bool integer = spec.type == ParamType::Int || spec.type == ParamType::IntList || spec.type == ParamType::ShapeList;
  for (double v : numbers) {
    // Integer parameters are read as int (param_int): a larger value would silently wrap.
    if (integer && (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()))
      return fmt::format("{} does not fit a 32-bit integer", number_text(v));
    if (spec.range.accepts(v)) continue;
    std::string want = spec.range.describe();
    if (std::isnan(v)) return fmt::format("nan is not a number{}", want.empty() ? "" : " (expects " + want + ")");
    if (std::isinf(v))
      return fmt::format("{} is not a finite number (job specs are JSON, which has no infinity: use a large "
                         "finite value such as {}1e30)",
                         number_text(v), v < 0 ? "-" : "");
    return fmt::format("{} is out of range (expects {})", number_text(v), want);
  }
  return "";
}

std::string describe_type(const ParamSpec& spec) {
  std::string out = param_type_name(spec.type);
  if (!numeric(spec.type)) return out;
  std::string range = spec.range.describe();
  return range.empty() ? out : out + ", " + range;
}

std::optional<ValueProblem> value_problem(const ParamSpec& spec, const json& value) {
  using Kind = ValueProblem::Kind;
  if (!value_fits(spec, value)) return ValueProblem{Kind::wrong_type, "", {}};
  if (std::string bad = range_error(spec, value); !bad.empty()) return ValueProblem{Kind::out_of_range, bad, {}};
  if (!spec.known_names) return std::nullopt;
  std::vector<std::string> known = spec.known_names();
  for (const auto& name : value.is_array() ? value : json::array({value}))
    if (std::find(known.begin(), known.end(), name.get<std::string>()) == known.end())
      return ValueProblem{Kind::unknown_name, name.get<std::string>(), std::move(known)};
  return std::nullopt;
}

std::optional<std::pair<std::string, ValueProblem>> first_param_problem(const ParamSchema& schema, const json& given) {
  for (const auto& [key, value] : given.items())
    if (const ParamSpec* spec = find_param(schema, key))
      if (std::optional<ValueProblem> problem = value_problem(*spec, value)) return std::pair{key, std::move(*problem)};
  return std::nullopt;
}

const ParamSpec* find_param(const ParamSchema& schema, const std::string& name) {
  for (const auto& s : schema)
    if (s.name == name) return &s;
  return nullptr;
}

namespace {
const json& at(const json& p, const char* name) {
  auto it = p.find(name);
  if (it == p.end()) throw std::runtime_error(std::string("missing parameter '") + name + "'");
  return *it;
}
}  // namespace

int param_int(const json& p, const char* name) { return at(p, name).get<int>(); }
double param_float(const json& p, const char* name) { return at(p, name).get<double>(); }
bool param_bool(const json& p, const char* name) { return at(p, name).get<bool>(); }
std::string param_string(const json& p, const char* name) { return at(p, name).get<std::string>(); }

}  // namespace fb

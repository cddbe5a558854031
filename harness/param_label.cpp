#include "harness/param_label.h"

#include <algorithm>

namespace fb {

namespace {

bool is_default(const ParamSpec& spec, const json& value) {
  return !spec.default_value.is_null() && normalise_value(spec, spec.default_value) == value;
}

}  // namespace

std::string param_label(const ParamSchema& schema, const json& params, const std::function<std::string(const json&)>& show,
                        const std::vector<std::string>& leave_out) {
  if (!params.is_object()) return "";
  auto left_out = [&](const std::string& name) {
    return std::find(leave_out.begin(), leave_out.end(), name) != leave_out.end();
  };
  std::string out;
  auto add = [&](const std::string& name, const json& value) { out += (out.empty() ? "" : ",") + name + "=" + show(value); };
  for (const ParamSpec& s : schema)
    if (params.contains(s.name) && !s.is_path() && !left_out(s.name) && !is_default(s, params.at(s.name)))
      add(s.name, params.at(s.name));
  for (const auto& [name, value] : params.items())
    if (!find_param(schema, name) && !left_out(name)) add(name, value);
  return out;
}

}  // namespace fb

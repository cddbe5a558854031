#include "reports/param_reads.h"

#include "core/registry.h"
#include "methods/method.h"
#include "models/source.h"
#include "reports/query.h"

#include <stdexcept>

namespace fb {

namespace {

// The schema of `owner` in the registry of `part`'s entries, nullptr when none is registered.
const ParamSchema* schema_of(const std::string& part, const std::string& owner) {
  if (part == "model") {
    const ModelSourceInfo* info = Registry<ModelSourceInfo>::instance().find(owner);
    return info ? &info->params : nullptr;
  }
  const MethodInfo* info = Registry<MethodInfo>::instance().find(owner);
  return info ? &info->params : nullptr;
}

template <class Info>
bool any_declares(const std::string& name) {
  for (const auto& [owner, info] : Registry<Info>::instance().all())
    if (find_param(info.params, name)) return true;
  return false;
}

void check(const ParamRef& ref, const char* part) {
  if (ref.part != part)
    throw std::logic_error("report parameter read: '" + ref.name + "' is a " + ref.part + " parameter, read as a " + part +
                           " one");
  if (std::string why = param_ref_problem(ref); !why.empty()) throw std::logic_error("report parameter read: " + why);
}

// Owner "" reads only from a job whose method (model format) declares the name: fp16 has no w_bits.
bool job_declares(const json& spec, const ParamRef& ref) {
  if (!ref.owner.empty()) return true;
  const std::string owner = part_entry(spec, ref.part);
  const ParamSchema* schema = schema_of(ref.part, owner);
  return schema && find_param(*schema, ref.name);
}

}  // namespace

std::string param_ref_problem(const ParamRef& ref) {
  if (ref.part != "method" && ref.part != "model") return "'" + ref.name + "': unknown spec part '" + ref.part + "'";
  const char* kind = ref.part == "model" ? "model format" : "method";
  if (ref.owner.empty()) {
    const bool found = ref.part == "model" ? any_declares<ModelSourceInfo>(ref.name) : any_declares<MethodInfo>(ref.name);
    return found ? "" : "'" + ref.name + "' is a parameter of no registered " + kind;
  }
  const ParamSchema* schema = schema_of(ref.part, ref.owner);
  if (!schema) return std::string(kind) + " '" + ref.owner + "' (read for '" + ref.name + "') is not registered";
  if (!find_param(*schema, ref.name)) return "'" + ref.name + "' is not a parameter of " + kind + " " + ref.owner + "'s schema";
  return "";
}

const json* method_param(const json& spec, const ParamRef& ref) {
  check(ref, "method");
  return job_declares(spec, ref) ? spec_param(spec, "method", {ref.name.c_str()}) : nullptr;
}

std::optional<double> method_num(const json& spec, const ParamRef& ref) {
  check(ref, "method");
  return job_declares(spec, ref) ? num_param(spec, "method", {ref.name.c_str()}) : std::nullopt;
}

std::string method_text(const json& spec, const ParamRef& ref) {
  check(ref, "method");
  return job_declares(spec, ref) ? text_param(spec, "method", {ref.name.c_str()}) : "";
}

std::optional<double> model_num(const json& spec, const ParamRef& ref) {
  check(ref, "model");
  return job_declares(spec, ref) ? num_param(spec, "model", {ref.name.c_str()}) : std::nullopt;
}

int int_param_or(const json& params, const ParamRef& ref, int fallback) {
  check(ref, "method");
  return params.contains(ref.name) && params[ref.name].is_number() ? params[ref.name].get<int>() : fallback;
}

std::string text_param_or(const json& params, const ParamRef& ref, const std::string& fallback) {
  check(ref, "method");
  return params.contains(ref.name) && params[ref.name].is_string() ? params[ref.name].get<std::string>() : fallback;
}

double num_param_or(const json& params, const ParamRef& ref, double fallback) {
  check(ref, "method");
  return params.contains(ref.name) && params[ref.name].is_number() ? params[ref.name].get<double>() : fallback;
}

}  // namespace fb

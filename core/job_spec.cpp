#include "core/job_spec.h"

// Header-only XXH3, so the device machine's standalone build of the GPU tool (kernels/cuda/CMakeLists.txt)
// needs the header alone.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <stdexcept>

namespace fb {

namespace {

const std::set<std::string> kMembers = {"backend", "data", "eval", "method", "model", "rep", "seed"};

[[noreturn]] void bad(const std::string& member, const std::string& why) {
  throw std::runtime_error("job spec: '" + member + "' " + why);
}

SpecPart part_from_json(const json& doc, const std::string& member, bool is_model) {
  if (!doc.is_object()) bad(member, "must be an object, got " + doc.dump());
  for (const auto& [k, v] : doc.items())
    if (k != "name" && k != "params" && !(is_model && k == "format")) bad(member + "." + k, "is not a member");
  SpecPart p;
  if (!doc.contains("name") || !doc["name"].is_string()) bad(member + ".name", "must be a string");
  p.name = doc["name"];
  if (is_model) {
    if (!doc.contains("format") || !doc["format"].is_string()) bad(member + ".format", "must be a string");
    p.format = doc["format"];
  }
  if (!doc.contains("params") || !doc["params"].is_object()) bad(member + ".params", "must be an object");
  p.params = doc["params"];
  return p;
}

long integer(const json& doc, const std::string& member) {
  if (!doc.contains(member) || !doc[member].is_number_integer()) bad(member, "must be an integer");
  return doc[member].get<long>();
}

// Earlier flat model part: {"name", "format", parameters...}.
json nested_model(const json& flat) {
  if (flat.is_null()) return nullptr;
  json params = flat;
  params.erase("name");
  params.erase("format");
  return {{"name", flat.value("name", "")}, {"format", flat.value("format", "")}, {"params", params}};
}

// The GPU tool's fixed generator seed before it became part of the spec (kernels/cuda/gemm_sweep.h).
constexpr long kOldGpuSeed = 1;

json upgraded_gpu_gemm(const json& old) {
  const json& e = old.value("eval", json::object());
  const std::string set = old.value("model", json::object()).value("name", "");
  json params = {{"backends", json::array({old.value("method", json::object()).value("name", "")})},
                 {"tokens", e.value("tokens", json::array())},
                 {"reps", e.value("max_reps", 0)},
                 {"flush_l2", e.value("flush_l2", false)}};
  if (set == "custom")
    params["nk"] = nullptr;  // the custom shapes were never in the spec: only in the job's GEMM rows
  else
    params["layers_of"] = json::array({set});
  return {{"backend", "cuda"}, {"data", nullptr}, {"model", nullptr}, {"method", nullptr},
          {"eval", {{"name", "gemm"}, {"params", params}}}, {"seed", kOldGpuSeed}, {"rep", 0}};
}

json upgraded_gpu_layer(const json& old) {
  const std::string arch = old.value("model", json::object()).value("name", "");
  json variants = json::array();
  const std::string joined = old.value("method", json::object()).value("name", "");
  for (size_t at = 0; at <= joined.size();) {  // "fp16|w8a8_flatten|w4a8_flatten"
    const size_t bar = std::min(joined.find('|', at), joined.size());
    variants.push_back(joined.substr(at, bar - at));
    at = bar + 1;
  }
  json params = {{"variants", variants}, {"tokens", old.value("eval", json::object()).value("tokens", json::array())}};
  return {{"backend", "cuda"}, {"data", nullptr},
          {"model", {{"name", arch}, {"format", "synthetic"}, {"params", {{"arch", arch}}}}},
          {"method", nullptr}, {"eval", {{"name", "decoder_layer"}, {"params", params}}},
          {"seed", kOldGpuSeed}, {"rep", 0}};
}

}  // namespace

json SpecPart::to_json() const {
  json out = {{"name", name}, {"params", params}};
  if (!format.empty()) out["format"] = format;
  return out;
}

json JobSpec::to_json() const {
  return {{"backend", backend},
          {"data", data},
          {"eval", eval.to_json()},
          {"method", method ? method->to_json() : json()},
          {"model", model ? model->to_json() : json()},
          {"rep", rep},
          {"seed", seed}};
}

JobSpec JobSpec::from_json(const json& doc) {
  if (!doc.is_object()) throw std::runtime_error("job spec: expected a JSON object, got " + doc.dump());
  for (const auto& [k, v] : doc.items())
    if (!kMembers.count(k)) bad(k, "is not a member (members: backend, data, eval, method, model, rep, seed)");
  for (const auto& k : kMembers)
    if (!doc.contains(k)) bad(k, "is missing");
  JobSpec s;
  if (!doc["backend"].is_string()) bad("backend", "must be a string");
  s.backend = doc["backend"];
  if (!doc["data"].is_object() && !doc["data"].is_null()) bad("data", "must be an object or null");
  s.data = doc["data"];
  s.eval = part_from_json(doc["eval"], "eval", false);
  if (!doc["method"].is_null()) s.method = part_from_json(doc["method"], "method", false);
  if (!doc["model"].is_null()) s.model = part_from_json(doc["model"], "model", true);
  s.seed = integer(doc, "seed");
  s.rep = integer(doc, "rep");
  return s;
}

std::string JobSpec::key() const { return hash_text(to_json().dump()); }

json upgrade_job_spec(const json& stored, const std::string& old_key) {
  if (!stored.is_object()) throw std::runtime_error("job spec: expected a JSON object, got " + stored.dump());
  if (stored.contains("backend")) return JobSpec::from_json(stored).to_json();  // already canonical
  if (old_key.rfind("gpu-gemm/", 0) == 0) return upgraded_gpu_gemm(stored);
  if (old_key.rfind("gpu-layer/", 0) == 0) return upgraded_gpu_layer(stored);
  json out = {{"backend", "cpu"},
              {"data", stored.value("data", json())},
              {"eval", stored.value("eval", json())},
              {"method", stored.value("method", json())},
              {"model", nested_model(stored.value("model", json()))},
              {"rep", stored.value("rep", 0)},
              {"seed", stored.value("seed", 0)}};
  if (out["eval"].is_object() && !out["eval"].contains("params")) out["eval"]["params"] = json::object();
  if (out["method"].is_object() && !out["method"].contains("params")) out["method"]["params"] = json::object();
  return JobSpec::from_json(out).to_json();
}

std::string hash_text(const std::string& text) {
  const XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return hex;
}

}  // namespace fb

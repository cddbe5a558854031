#include "harness/config.h"

#include "datasets/corpus.h"
#include "harness/evaluator.h"
#include "methods/method.h"
#include "models/source.h"

#include <fmt/format.h>
#include <xxhash.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace fb {

namespace fs = std::filesystem;

ConfigError::ConfigError(std::string f, int l, int c, std::string fld, std::string msg)
    : std::runtime_error(fmt::format("{}:{}:{}: {}{}", f, l, c, fld.empty() ? "" : fld + ": ", msg)),
      file(std::move(f)), field(std::move(fld)), message(std::move(msg)), line(l), column(c) {}

std::string hash_text(const std::string& text) {
  XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

fs::path default_data_dir() {
  if (const char* env = std::getenv("FLATBENCH_DATA_DIR")) return env;
  return "../shared/data";
}

std::string suggest(const std::string& word, const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = 4;
  for (const auto& c : candidates) {
    size_t d = distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::vector<Job> shard_jobs(const std::vector<Job>& jobs, int index, int count) {
  std::vector<Job> out;
  for (size_t i = 0; i < jobs.size(); ++i)
    if (static_cast<int>(i % count) == index) out.push_back(jobs[i]);
  return out;
}

namespace {

// A YAML node and the file it came from: errors point at both.
struct Located {
  YAML::Node node;
  std::string file;
};

[[noreturn]] void fail(const Located& at, const std::string& field, const std::string& msg) {
  auto m = at.node.Mark();
  throw ConfigError(at.file, m.line + 1, m.column + 1, field, msg);
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& known) {
  std::string s = suggest(word, known);
  return s.empty() ? fmt::format(" (known: {})", joined(known)) : fmt::format("; did you mean '{}'?", s);
}

const std::vector<std::string> kTopLevelKeys = {"include",     "name",  "description", "data_dir", "seeds",
                                                "repetitions", "models", "methods",    "evaluations"};

// Reads a file and its includes; later files override earlier ones key by key at the top level.
void read_file(const fs::path& path, std::map<std::string, Located>& top, std::string& text,
               std::vector<fs::path>& chain) {
  fs::path canon = fs::weakly_canonical(path);
  if (std::find(chain.begin(), chain.end(), canon) != chain.end())
    throw ConfigError(path.string(), 1, 1, "include", "include cycle through " + canon.string());
  std::ifstream in(path);
  if (!in) throw ConfigError(path.string(), 1, 1, "", "cannot read config file");
  std::stringstream buf;
  buf << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(buf.str());
  } catch (const YAML::Exception& e) {
    throw ConfigError(path.string(), e.mark.line + 1, e.mark.column + 1, "", "YAML syntax error: " + e.msg);
  }
  Located whole{root, path.string()};
  if (!root.IsMap()) fail(whole, "", "a config must be a mapping with models / methods / evaluations");
  chain.push_back(canon);
  if (auto inc = root["include"]) {
    std::vector<YAML::Node> items;
    if (inc.IsSequence())
      for (auto i : inc) items.push_back(i);
    else
      items.push_back(inc);
    for (auto& i : items) {
      if (!i.IsScalar()) fail({i, path.string()}, "include", "expected a file path");
      fs::path p = path.parent_path() / i.as<std::string>();
      if (!fs::exists(p)) fail({i, path.string()}, "include", "included file not found: " + p.string());
      read_file(p, top, text, chain);
    }
  }
  chain.pop_back();
  text += "# ---- " + path.string() + "\n" + buf.str() + "\n";
  for (auto kv : root) {
    std::string key = kv.first.as<std::string>();
    if (std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), key) == kTopLevelKeys.end())
      fail({kv.first, path.string()}, key, "unknown top-level key" + did_you_mean(key, kTopLevelKeys));
    if (key != "include") top[key] = Located{kv.second, path.string()};
  }
}

// YAML scalar → JSON value: quoted scalars stay strings; plain ones become int/float/bool when they read as such.
json to_json(const YAML::Node& n) {
  if (n.IsSequence()) {
    json a = json::array();
    for (auto e : n) a.push_back(to_json(e));
    return a;
  }
  if (n.IsMap()) {
    json o = json::object();
    for (auto kv : n) o[kv.first.as<std::string>()] = to_json(kv.second);
    return o;
  }
  if (n.IsNull()) return nullptr;
  const std::string s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  char* end = nullptr;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (!s.empty() && *end == '\0') return i;
  double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && *end == '\0') return d;
  if (s == ".inf" || s == "inf") return std::numeric_limits<double>::infinity();
  return s;
}

std::string describe(const json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

struct Schema {
  std::string kind;  // "method", "evaluation", "model format"
  std::string name;
  const ParamSchema* params;
};

// One sweep axis: a parameter name (or several, for zip) and its values.
struct Axis {
  std::vector<std::string> names;
  std::vector<std::vector<json>> values;  // values[i] = one point: a value per name
};

void check_value(const Located& at, const std::string& field, const ParamSpec& spec, const json& v,
                 const Schema& sc) {
  if (value_fits(spec, v)) return;
  std::string want = param_type_name(spec.type);
  if (!spec.choices.empty()) want = "one of: " + joined(spec.choices);
  fail(at, field, fmt::format("{} '{}' expects {}, got {}", sc.kind, sc.name, want, describe(v)));
}

void check_path(const Located& at, const std::string& field, const json& v, const fs::path& data_dir,
                std::vector<fs::path>& files) {
  fs::path p = v.get<std::string>();
  fs::path full = p.is_absolute() ? p : data_dir / p;
  if (!fs::exists(full))
    fail(at, field, fmt::format("file not found: {} (data directory: {}; set it with --data-dir)", full.string(),
                                data_dir.string()));
  files.push_back(full);
}

// Expands one `models:` / `methods:` / `evaluations:` entry into its grid points (params filled with defaults).
std::vector<json> expand_entry(const Located& entry, const std::string& where, const Schema& sc,
                               const std::vector<std::string>& reserved, const fs::path& data_dir,
                               std::vector<fs::path>& files) {
  json fixed = json::object();
  std::vector<Axis> axes;
  std::set<std::string> seen;
  auto param = [&](const YAML::Node& key_node, const std::string& key,
                   const std::string& field) -> const ParamSpec& {
    const ParamSpec* spec = find_param(*sc.params, key);
    if (!spec) {
      std::vector<std::string> known;
      for (const auto& p : *sc.params) known.push_back(p.name);
      if (known.empty())
        fail({key_node, entry.file}, field, fmt::format("{} '{}' takes no parameters", sc.kind, sc.name));
      fail({key_node, entry.file}, field,
           fmt::format("unknown parameter of {} '{}'", sc.kind, sc.name) + did_you_mean(key, known));
    }
    if (!seen.insert(key).second) fail({key_node, entry.file}, field, "parameter given twice (directly and in zip)");
    return *spec;
  };
  auto is_axis = [](const ParamSpec& s, const YAML::Node& n) {
    bool scalar_type = s.type == ParamType::Int || s.type == ParamType::Float || s.type == ParamType::Bool ||
                       s.type == ParamType::String;
    return scalar_type && n.IsSequence();
  };
  for (auto kv : entry.node) {
    std::string key = kv.first.as<std::string>();
    std::string field = where + "." + key;
    Located val{kv.second, entry.file};
    if (std::find(reserved.begin(), reserved.end(), key) != reserved.end()) continue;
    if (key == "zip") {
      if (!kv.second.IsMap()) fail(val, field, "zip expects a mapping of parameter: [values...]");
      Axis axis;
      size_t len = 0;
      for (auto z : kv.second) {
        std::string zk = z.first.as<std::string>();
        const ParamSpec& spec = param(z.first, zk, field + "." + zk);
        Located zv{z.second, entry.file};
        if (!z.second.IsSequence()) fail(zv, field + "." + zk, "zip values must be lists");
        if (z.second.size() == 0) fail(zv, field + "." + zk, "empty list: the grid would have no jobs");
        if (!axis.names.empty() && z.second.size() != len)
          fail(zv, field + "." + zk,
               fmt::format("zip lists must have equal lengths ({} has {}, expected {})", zk, z.second.size(), len));
        len = z.second.size();
        axis.names.push_back(zk);
        for (size_t i = 0; i < len; ++i) {
          json v = to_json(z.second[i]);
          check_value({z.second[i], entry.file}, field + "." + zk, spec, v, sc);
          if (axis.values.size() <= i) axis.values.emplace_back();
          axis.values[i].push_back(v);
        }
      }
      if (axis.names.empty()) fail(val, field, "empty zip block");
      axes.push_back(std::move(axis));
      continue;
    }
    const ParamSpec& spec = param(kv.first, key, field);
    if (is_axis(spec, kv.second)) {
      if (kv.second.size() == 0) fail(val, field, "empty list: the grid would have no jobs");
      Axis axis{{key}, {}};
      for (auto e : kv.second) {
        json v = to_json(e);
        check_value({e, entry.file}, field, spec, v, sc);
        if (spec.is_path) check_path({e, entry.file}, field, v, data_dir, files);
        axis.values.push_back({v});
      }
      axes.push_back(std::move(axis));
    } else {
      json v = to_json(kv.second);
      check_value(val, field, spec, v, sc);
      if (spec.is_path) check_path(val, field, v, data_dir, files);
      fixed[key] = v;
    }
  }
  for (const auto& p : *sc.params)
    if (p.default_value.is_null() && !seen.count(p.name))
      fail(entry, where, fmt::format("{} '{}' needs parameter '{}' ({})", sc.kind, sc.name, p.name, p.help));

  std::vector<json> points{fixed};
  for (const auto& axis : axes) {
    std::vector<json> next;
    for (const auto& base : points)
      for (const auto& point : axis.values) {
        json p = base;
        for (size_t i = 0; i < axis.names.size(); ++i) p[axis.names[i]] = point[i];
        next.push_back(p);
      }
    points = std::move(next);
  }
  for (auto& p : points) p = fill_defaults(*sc.params, p);
  return points;
}

// Non-default parameters as "a=1,b=x" for labels.
std::string short_params(const ParamSchema& schema, const json& filled) {
  std::string out;
  for (const auto& s : schema) {
    if (!filled.contains(s.name) || s.is_path) continue;
    const json& v = filled.at(s.name);
    if (!s.default_value.is_null() && normalise_value(s, s.default_value) == v) continue;
    std::string vs = v.is_string() ? v.get<std::string>()
                     : v.is_array() && v.dump().size() > 24 ? "[" + std::to_string(v.size()) + " items]"
                                                             : v.dump();
    out += (out.empty() ? "" : ",") + s.name + "=" + vs;
  }
  return out;
}

std::vector<Located> entries_of(const std::map<std::string, Located>& top, const std::string& section) {
  std::vector<Located> out;
  auto it = top.find(section);
  if (it == top.end()) return out;
  const Located& sec = it->second;
  if (sec.node.IsMap()) return {sec};
  if (!sec.node.IsSequence()) fail(sec, section, "expected a list of entries");
  for (auto e : sec.node) {
    if (!e.IsMap()) fail({e, sec.file}, section, "each entry must be a mapping with at least `name:`");
    out.push_back({e, sec.file});
  }
  return out;
}

std::string required_string(const Located& e, const std::string& where, const char* key) {
  YAML::Node n = e.node[key];
  if (!n) fail(e, where, fmt::format("missing `{}:`", key));
  if (!n.IsScalar()) fail({n, e.file}, where + "." + key, "expected a string");
  return n.as<std::string>();
}

template <class Info>
const Info& lookup(const Located& e, const std::string& field, const std::string& name, const char* kind) {
  const Info* info = Registry<Info>::instance().find(name);
  if (!info)
    fail({e.node[field == "format" ? "format" : "name"], e.file}, field,
         fmt::format("unknown {} '{}'", kind, name) + did_you_mean(name, Registry<Info>::instance().names()));
  return *info;
}

struct Expanded {
  json spec;
  std::string label;
};

std::vector<Expanded> expand_models(const std::map<std::string, Located>& top, const fs::path& data_dir,
                                    std::vector<fs::path>& files) {
  std::vector<Expanded> out;
  auto entries = entries_of(top, "models");
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string where = fmt::format("models[{}]", i);
    std::string name = required_string(entries[i], where, "name");
    std::string format = required_string(entries[i], where, "format");
    const auto& info = lookup<ModelSourceInfo>(entries[i], where + ".format", format, "model format");
    Schema sc{"model format", format, &info.params};
    for (auto& p : expand_entry(entries[i], where, sc, {"name", "format"}, data_dir, files)) {
      std::string extra = short_params(info.params, p);
      p["name"] = name;
      p["format"] = format;
      out.push_back({p, extra.empty() ? name : name + "(" + extra + ")"});
    }
  }
  return out;
}

template <class Info>
std::vector<std::pair<Expanded, const Info*>> expand_named(const std::map<std::string, Located>& top,
                                                           const std::string& section, const char* kind,
                                                           const fs::path& data_dir, std::vector<fs::path>& files) {
  std::vector<std::pair<Expanded, const Info*>> out;
  auto entries = entries_of(top, section);
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string where = fmt::format("{}[{}]", section, i);
    std::string name = required_string(entries[i], where, "name");
    const Info& info = lookup<Info>(entries[i], where + ".name", name, kind);
    Schema sc{kind, name, &info.params};
    for (auto& p : expand_entry(entries[i], where, sc, {"name"}, data_dir, files)) {
      std::string extra = short_params(info.params, p);
      json spec = {{"name", name}, {"params", p}};
      out.push_back({{spec, extra.empty() ? name : name + "(" + extra + ")"}, &info});
    }
  }
  return out;
}

std::vector<long> int_list(const std::map<std::string, Located>& top, const char* key, long dflt, long min) {
  auto it = top.find(key);
  if (it == top.end()) return {dflt};
  json v = to_json(it->second.node);
  if (v.is_number_integer()) v = json::array({v});
  if (!v.is_array() || v.empty()) fail(it->second, key, "expected an integer or a non-empty list of integers");
  std::vector<long> out;
  for (const auto& e : v) {
    if (!e.is_number_integer() || e.get<long>() < min)
      fail(it->second, key, fmt::format("expected integers ≥ {}, got {}", min, describe(e)));
    out.push_back(e.get<long>());
  }
  return out;
}

}  // namespace

Config load_config(const fs::path& path, const fs::path& data_dir_override) {
  Config cfg;
  cfg.path = path;
  std::map<std::string, Located> top;
  std::vector<fs::path> chain;
  read_file(path, top, cfg.text, chain);
  cfg.hash = hash_text(cfg.text);
  cfg.name = top.count("name") ? top["name"].node.as<std::string>() : path.stem().string();

  if (!data_dir_override.empty())
    cfg.data_dir = data_dir_override;
  else if (top.count("data_dir"))
    cfg.data_dir = fs::path(top["data_dir"].file).parent_path() / top["data_dir"].node.as<std::string>();
  else
    cfg.data_dir = default_data_dir();

  auto models = expand_models(top, cfg.data_dir, cfg.data_files);
  auto methods = expand_named<MethodInfo>(top, "methods", "method", cfg.data_dir, cfg.data_files);
  auto evals = expand_named<EvaluatorInfo>(top, "evaluations", "evaluation", cfg.data_dir, cfg.data_files);
  auto seeds = int_list(top, "seeds", 0, 0);
  long reps = int_list(top, "repetitions", 1, 1).front();

  Located whole{YAML::Node(), path.string()};
  if (evals.empty()) throw ConfigError(path.string(), 1, 1, "evaluations", "no evaluations: nothing to measure");
  bool any_model_eval = false;
  for (const auto& [e, info] : evals) any_model_eval |= info->needs_model;
  if (any_model_eval && models.empty())
    throw ConfigError(path.string(), 1, 1, "models", "an evaluation needs a model, but the config lists no models");
  if (any_model_eval && methods.empty())
    throw ConfigError(path.string(), 1, 1, "methods",
                      "an evaluation needs a model, but the config lists no methods (use `- name: fp16` for none)");

  auto add_job = [&](const json* model, const std::string& model_label, const json* method,
                     const std::string& method_label, const Expanded& eval, long seed, long rep) {
    Job j;
    j.spec = {{"model", model ? *model : json()}, {"method", method ? *method : json()}, {"eval", eval.spec},
              {"seed", seed}, {"rep", rep}};
    j.key = hash_text(j.spec.dump());
    j.label = (model ? model_label + " " + method_label + " " : std::string()) + eval.label;
    if (seeds.size() > 1) j.label += fmt::format(" seed={}", seed);
    if (reps > 1) j.label += fmt::format(" rep={}", rep);
    cfg.jobs.push_back(std::move(j));
  };
  // Model-major order: consecutive jobs share one prepared (quantized) model.
  for (const auto& m : models)
    for (const auto& [meth, minfo] : methods)
      for (long seed : seeds)
        for (const auto& [e, einfo] : evals)
          if (einfo->needs_model)
            for (long r = 0; r < reps; ++r) add_job(&m.spec, m.label, &meth.spec, meth.label, e, seed, r);
  for (long seed : seeds)
    for (const auto& [e, einfo] : evals)
      if (!einfo->needs_model)
        for (long r = 0; r < reps; ++r) add_job(nullptr, "", nullptr, "", e, seed, r);

  std::set<std::string> keys;
  std::vector<Job> unique;
  for (auto& j : cfg.jobs)
    if (keys.insert(j.key).second) unique.push_back(std::move(j));
  cfg.jobs = std::move(unique);
  // Corpora named by evaluations and methods are data too: hash them into the run's provenance.
  for (const auto& j : cfg.jobs)
    for (const char* part : {"eval", "method"}) {
      if (j.spec[part].is_null()) continue;
      for (const char* key : {"dataset", "calib_dataset"}) {
        const json& params = j.spec[part]["params"];
        if (params.contains(key) && params[key].is_string()) {
          fs::path p = corpus_path(params[key].get<std::string>(), cfg.data_dir);
          if (fs::is_regular_file(p)) cfg.data_files.push_back(p);
        }
      }
    }
  std::sort(cfg.data_files.begin(), cfg.data_files.end());
  cfg.data_files.erase(std::unique(cfg.data_files.begin(), cfg.data_files.end()), cfg.data_files.end());
  return cfg;
}

}  // namespace fb

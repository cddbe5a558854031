#include "harness/config.h"

#include "backends/backend.h"

#include "datasets/corpus.h"
#include "datasets/tasks/task.h"
#include "core/fingerprint.h"
#include "harness/evaluator.h"
#include "harness/param_label.h"
#include "methods/method.h"
#include "models/source.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <limits>
#include <optional>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace fb {

namespace fs = std::filesystem;

std::string ConfigIssue::text() const {
  return fmt::format("{}:{}:{}: {}{}", file, line, column, field.empty() ? "" : field + ": ", message);
}

ConfigError::ConfigError(std::string f, int l, int c, std::string fld, std::string msg)
    : ConfigError(std::vector<ConfigIssue>{{std::move(f), std::move(fld), std::move(msg), l, c}}) {}

namespace {
std::string issues_text(const std::vector<ConfigIssue>& issues) {
  std::string out;
  for (const auto& i : issues) out += (out.empty() ? "" : "\n") + i.text();
  return out;
}
}  // namespace

ConfigError::ConfigError(std::vector<ConfigIssue> all)
    : std::runtime_error(issues_text(all)),
      file(all.empty() ? "" : all[0].file), field(all.empty() ? "" : all[0].field),
      message(all.empty() ? "" : all[0].message), line(all.empty() ? 0 : all[0].line),
      column(all.empty() ? 0 : all[0].column), issues(std::move(all)) {}

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

// Collects every error of a config: each check runs under guard(), which records a
// ConfigError and lets the loader go on with the next value or entry.
class Errors {
 public:
  template <class F>
  bool guard(F&& check) {
    try {
      check();
      return true;
    } catch (const ConfigError& e) {
      for (const auto& i : e.issues) add(i);
      return false;
    }
  }
  void add(const ConfigIssue& issue) {
    if (issues_.size() < kMaxReported) issues_.push_back(issue);
    else ++left_out_;
  }
  bool any() const { return !issues_.empty(); }
  // Grid points expanded so far over every entry: the sweep bound holds before expansion, not after.
  double points_expanded = 0;
  void throw_if_any(const std::string& file) const {
    if (!any()) return;
    std::vector<ConfigIssue> all = issues_;
    if (left_out_) all.push_back({file, "", fmt::format("... and {} more errors", left_out_), 1, 1});
    throw ConfigError(std::move(all));
  }

 private:
  static constexpr size_t kMaxReported = 100;
  std::vector<ConfigIssue> issues_;
  long left_out_ = 0;
};

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& known) {
  std::string s = suggest(word, known);
  return s.empty() ? fmt::format(" (known: {})", joined(known)) : fmt::format("; did you mean '{}'?", s);
}

// A scalar as text; a list or mapping where a name or path belongs is an error at that node
// (yaml-cpp's own "bad conversion" names neither file nor field).
std::string scalar_text(const Located& at, const std::string& field, const char* what = "a string") {
  if (!at.node.IsScalar()) fail(at, field, fmt::format("expected {}, got a {}", what, at.node.IsSequence() ? "list" : at.node.IsMap() ? "mapping" : "null"));
  return at.node.Scalar();
}

const std::vector<std::string> kTopLevelKeys = {"include", "name",        "description", "data_dir",
                                                "seeds",   "repetitions", "device",      "gpu_dtype",
                                                "models",  "methods",     "evaluations"};

// Nodes of the document with every alias expanded, counted up to the bound: a few hundred
// bytes of nested aliases (a "billion laughs") would otherwise expand to gigabytes.
// Nesting deeper than this (a chain or a cycle of aliases) is refused before any recursion
// over the document could overflow the stack.
constexpr int kMaxConfigDepth = 256;

long expanded_nodes(const YAML::Node& n, long budget, int depth = 0) {
  if (depth > kMaxConfigDepth) return budget + 1;
  long count = 1;
  if (n.IsSequence() || n.IsMap())
    for (auto it = n.begin(); it != n.end() && count <= budget; ++it)
      count += n.IsMap() ? expanded_nodes(it->first, budget - count, depth + 1) +
                               expanded_nodes(it->second, budget - count, depth + 1)
                         : expanded_nodes(*it, budget - count, depth + 1);
  return count;
}

std::string read_bounded(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw ConfigError(path.string(), 1, 1, "", "cannot read config file (" + ec.message() + ")");
  if (size > static_cast<uintmax_t>(kMaxConfigBytes))
    throw ConfigError(path.string(), 1, 1, "",
                      fmt::format("config file is {} bytes; at most {} are read (a sweep config is a few KB: "
                                  "use axes and zip instead of long literal lists)",
                                  size, kMaxConfigBytes));
  std::ifstream in(path);
  if (!in) throw ConfigError(path.string(), 1, 1, "", "cannot read config file");
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Reads a file and its includes; later files override earlier ones key by key at the top level.
void read_file(const fs::path& path, std::map<std::string, Located>& top, std::string& text,
               std::vector<fs::path>& chain, Errors& errors, int& files_read) {
  constexpr int kMaxConfigFiles = 256;
  if (++files_read > kMaxConfigFiles)
    throw ConfigError(path.string(), 1, 1, "include",
                      fmt::format("more than {} config files read through includes (an include listed many times "
                                  "is read each time)",
                                  kMaxConfigFiles));
  fs::path canon = fs::weakly_canonical(path);
  if (std::find(chain.begin(), chain.end(), canon) != chain.end())
    throw ConfigError(path.string(), 1, 1, "include", "include cycle through " + canon.string());
  const std::string body = read_bounded(path);
  if (text.size() + body.size() > size_t(kMaxConfigBytes))
    throw ConfigError(path.string(), 1, 1, "include",
                      fmt::format("the config and its includes exceed {} bytes in all (an include listed many times "
                                  "is read each time)",
                                  kMaxConfigBytes));
  YAML::Node root;
  try {
    root = YAML::Load(body);
  } catch (const YAML::Exception& e) {
    throw ConfigError(path.string(), e.mark.line + 1, e.mark.column + 1, "", "YAML syntax error: " + e.msg);
  }
  Located whole{root, path.string()};
  if (!root.IsMap()) fail(whole, "", "a config must be a mapping with models / methods / evaluations");
  if (expanded_nodes(root, kMaxConfigNodes) > kMaxConfigNodes)
    fail(whole, "", fmt::format("the config expands to more than {} YAML nodes or nests deeper than {} levels "
                                "(aliases expanded); refusing to read it",
                                kMaxConfigNodes, kMaxConfigDepth));
  chain.push_back(canon);
  if (auto inc = root["include"]) {
    std::vector<YAML::Node> items;
    if (inc.IsSequence())
      for (auto i : inc) items.push_back(i);
    else
      items.push_back(inc);
    for (auto& i : items) {
      fs::path p = path.parent_path() / scalar_text({i, path.string()}, "include", "a file path");
      if (!fs::exists(p)) fail({i, path.string()}, "include", "included file not found: " + p.string());
      read_file(p, top, text, chain, errors, files_read);
    }
  }
  chain.pop_back();
  text += "# ---- " + path.string() + "\n" + body + "\n";
  for (auto kv : root) {
    errors.guard([&] {
      std::string key = scalar_text({kv.first, path.string()}, "", "a key");
      if (std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), key) == kTopLevelKeys.end())
        fail({kv.first, path.string()}, key, "unknown top-level key" + did_you_mean(key, kTopLevelKeys));
      if (key != "include") top[key] = Located{kv.second, path.string()};
    });
  }
}

// YAML scalar → JSON value: quoted scalars stay strings; plain ones become int/float/bool when
// they read as such (YAML 1.2 core schema, including .inf and .nan, which the range checks refuse
// where a parameter does not allow them).
json to_json(const YAML::Node& n) {
  if (n.IsSequence()) {
    json a = json::array();
    for (auto e : n) a.push_back(to_json(e));
    return a;
  }
  if (n.IsMap()) {
    json o = json::object();
    for (auto kv : n) o[kv.first.IsScalar() ? kv.first.Scalar() : "?"] = to_json(kv.second);
    return o;
  }
  if (n.IsNull()) return nullptr;
  const std::string s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  for (const char* inf : {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "inf"})
    if (s == inf) return std::numeric_limits<double>::infinity();
  for (const char* inf : {"-.inf", "-.Inf", "-.INF", "-inf"})
    if (s == inf) return -std::numeric_limits<double>::infinity();
  for (const char* nan : {".nan", ".NaN", ".NAN", "nan", "NaN"})
    if (s == nan) return std::numeric_limits<double>::quiet_NaN();
  char* end = nullptr;
  errno = 0;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (!s.empty() && *end == '\0' && errno != ERANGE) return i;
  double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && *end == '\0') return d;
  return s;
}

std::string describe(const json& v) {
  if (v.is_number_float() && !std::isfinite(v.get<double>()))
    return std::isnan(v.get<double>()) ? "nan" : (v.get<double>() > 0 ? ".inf" : "-.inf");
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

void check_file(const Located& at, const std::string& field, const ParamSpec& spec, const std::string& value,
                const fs::path& data_dir) {
  if (value.empty() && spec.default_value.is_null()) fail(at, field, "must name a file under the data directory");
  if (value.empty()) return;  // "" = the parameter's default (e.g. the tokenizer beside the checkpoint)
  fs::path p = value;
  fs::path full = p.is_absolute() ? p : data_dir / p;
  if (!fs::exists(full))
    fail(at, field, fmt::format("file not found: {} (data directory: {}; set it with --data-dir)", full.string(),
                                data_dir.string()));
}

void check_corpus(const Located& at, const std::string& field, const std::string& value, const fs::path& data_dir) {
  const fs::path p = corpus_path(value, data_dir);
  if (fs::is_regular_file(p)) return;
  const auto& names = corpus_names();
  if (std::find(names.begin(), names.end(), value) != names.end())
    fail(at, field, fmt::format("corpus '{}' reads {}, which is not there (data directory: {}; set it with --data-dir)",
                                value, p.string(), data_dir.string()));
  std::string hint = suggest(value, names);
  fail(at, field, fmt::format("unknown corpus '{}'{}: give one of {} or a text file under the data directory ({} "
                              "is not a file)",
                              value, hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint), joined(names),
                              p.string()));
}

void check_tasks(const Located& at, const std::string& field, const json& names) {
  std::vector<std::string> known;
  for (const TaskSpec& t : task_specs()) known.push_back(t.name);
  for (const auto& n : names)
    if (!find_task(n.get<std::string>()))
      fail(at, field, fmt::format("unknown task '{}'", n.get<std::string>()) + did_you_mean(n.get<std::string>(), known));
}

// The config's wording of a problem the shared checker (core/params.h value_problem) found.
std::string problem_message(const ValueProblem& p, const ParamSpec& spec, const json& v, const Schema& sc) {
  switch (p.kind) {
    case ValueProblem::Kind::wrong_type: {
      std::string want = param_type_name(spec.type);
      if (!spec.choices.empty()) want = "one of: " + joined(spec.choices);
      return fmt::format("{} '{}' expects {}, got {}", sc.kind, sc.name, want, describe(v));
    }
    case ValueProblem::Kind::out_of_range: return fmt::format("{} '{}': {}", sc.kind, sc.name, p.detail);
    case ValueProblem::Kind::unknown_name:
      return fmt::format("{} '{}': unknown {} '{}'", sc.kind, sc.name, spec.name, p.detail) + did_you_mean(p.detail, p.known);
  }
  return fmt::format("{} '{}': bad value {}", sc.kind, sc.name, describe(v));
}

void check_value(const Located& at, const std::string& field, const ParamSpec& spec, const json& v,
                 const Schema& sc, const fs::path& data_dir) {
  if (std::optional<ValueProblem> problem = value_problem(spec, v)) fail(at, field, problem_message(*problem, spec, v, sc));
  switch (spec.role) {
    case ParamRole::value: break;
    case ParamRole::file: check_file(at, field, spec, v.get<std::string>(), data_dir); break;
    case ParamRole::corpus: check_corpus(at, field, v.get<std::string>(), data_dir); break;
    case ParamRole::task_list: check_tasks(at, field, v); break;
  }
}

double grid_points(const std::vector<Axis>& axes) {
  double n = 1;
  for (const auto& a : axes) n *= static_cast<double>(a.values.size());
  return n;
}

std::string grid_shape(const std::vector<Axis>& axes) {
  std::string out;
  for (const auto& a : axes) out += fmt::format("{}{} {}", out.empty() ? "" : " × ", a.values.size(), joined(a.names));
  return out;
}

// Expands one `models:` / `methods:` / `evaluations:` entry into its grid points (params filled
// with defaults). Every bad value is recorded in `errors`; an entry with any error yields no points.
std::vector<json> expand_entry(const Located& entry, const std::string& where, const Schema& sc,
                               const std::vector<std::string>& reserved, const fs::path& data_dir, Errors& errors) {
  json fixed = json::object();
  std::vector<Axis> axes;
  std::set<std::string> seen;
  bool ok = true;
  auto check = [&](auto&& f) { ok &= errors.guard(f); };
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
  auto expand_zip = [&](const YAML::Node& block, const std::string& field) {
    Located val{block, entry.file};
    if (!block.IsMap()) fail(val, field, "zip expects a mapping of parameter: [values...]");
    Axis axis;
    size_t len = 0;
    for (auto z : block) {
      std::string zk = scalar_text({z.first, entry.file}, field, "a parameter name");
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
        check([&] { check_value({z.second[i], entry.file}, field + "." + zk, spec, v, sc, data_dir); });
        if (axis.values.size() <= i) axis.values.emplace_back();
        axis.values[i].push_back(v);
      }
    }
    if (axis.names.empty()) fail(val, field, "empty zip block");
    axes.push_back(std::move(axis));
  };
  for (auto kv : entry.node) {
    check([&] {
      std::string key = scalar_text({kv.first, entry.file}, where, "a parameter name");
      std::string field = where + "." + key;
      Located val{kv.second, entry.file};
      if (std::find(reserved.begin(), reserved.end(), key) != reserved.end()) return;
      if (key == "zip") return expand_zip(kv.second, field);
      const ParamSpec& spec = param(kv.first, key, field);
      if (is_axis(spec, kv.second)) {
        if (kv.second.size() == 0) fail(val, field, "empty list: the grid would have no jobs");
        Axis axis{{key}, {}};
        for (auto e : kv.second) {
          json v = to_json(e);
          check([&] { check_value({e, entry.file}, field, spec, v, sc, data_dir); });
          axis.values.push_back({v});
        }
        axes.push_back(std::move(axis));
      } else {
        json v = to_json(kv.second);
        check_value(val, field, spec, v, sc, data_dir);
        fixed[key] = v;
      }
    });
  }
  for (const auto& p : *sc.params)
    if (p.default_value.is_null() && !seen.count(p.name))
      check([&] { fail(entry, where, fmt::format("{} '{}' needs parameter '{}' ({})", sc.kind, sc.name, p.name, p.help)); });
  if (grid_points(axes) > kMaxSweepJobs)
    check([&] {
      fail(entry, where, fmt::format("the grid has {} = {:.0f} points; a sweep expands to at most {} jobs",
                                     grid_shape(axes), grid_points(axes), kMaxSweepJobs));
    });
  else if (errors.points_expanded + grid_points(axes) > kMaxSweepJobs)
    check([&] {
      fail(entry, where, fmt::format("the entries so far expand to more than {} grid points; a sweep expands to at "
                                     "most {} jobs",
                                     kMaxSweepJobs, kMaxSweepJobs));
    });
  if (!ok) return {};
  errors.points_expanded += grid_points(axes);

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
  return param_label(schema, filled, [](const json& v) {
    return v.is_string() ? v.get<std::string>()
           : v.is_array() && v.dump().size() > 24 ? "[" + std::to_string(v.size()) + " items]"
                                                   : v.dump();
  });
}

std::vector<Located> entries_of(const std::map<std::string, Located>& top, const std::string& section,
                                Errors& errors) {
  std::vector<Located> out;
  auto it = top.find(section);
  if (it == top.end()) return out;
  const Located& sec = it->second;
  if (sec.node.IsMap()) return {sec};
  if (!sec.node.IsSequence()) {
    errors.guard([&] { fail(sec, section, "expected a list of entries"); });
    return out;
  }
  for (auto e : sec.node) {
    if (e.IsMap()) out.push_back({e, sec.file});
    else errors.guard([&] { fail({e, sec.file}, section, "each entry must be a mapping with at least `name:`"); });
  }
  return out;
}

std::string required_string(const Located& e, const std::string& where, const char* key) {
  YAML::Node n = e.node[key];
  if (!n) fail(e, where, fmt::format("missing `{}:`", key));
  return scalar_text({n, e.file}, where + "." + key);
}

template <class Info>
const Info& lookup(const Located& e, const std::string& field, const std::string& name, const char* kind) {
  const Info* info = Registry<Info>::instance().find(name);
  if (!info)
    fail({e.node[field.ends_with("format") ? "format" : "name"], e.file}, field,
         fmt::format("unknown {} '{}'", kind, name) + did_you_mean(name, Registry<Info>::instance().names()));
  return *info;
}

struct Expanded {
  SpecPart part;
  std::string label;
  Located at;  // the entry it came from, for errors found after expansion
  std::string where;
};

std::vector<Expanded> expand_models(const std::map<std::string, Located>& top, const fs::path& data_dir,
                                    Errors& errors) {
  std::vector<Expanded> out;
  auto entries = entries_of(top, "models", errors);
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string where = fmt::format("models[{}]", i);
    errors.guard([&] {
      std::string name = required_string(entries[i], where, "name");
      std::string format = required_string(entries[i], where, "format");
      const auto& info = lookup<ModelSourceInfo>(entries[i], where + ".format", format, "model format");
      Schema sc{"model format", format, &info.params};
      for (auto& p : expand_entry(entries[i], where, sc, {"name", "format"}, data_dir, errors)) {
        std::string extra = short_params(info.params, p);
        out.push_back({{name, format, p}, extra.empty() ? name : name + "(" + extra + ")", entries[i], where});
      }
    });
  }
  return out;
}

template <class Info>
std::vector<std::pair<Expanded, const Info*>> expand_named(const std::map<std::string, Located>& top,
                                                           const std::string& section, const char* kind,
                                                           const fs::path& data_dir, Errors& errors) {
  std::vector<std::pair<Expanded, const Info*>> out;
  auto entries = entries_of(top, section, errors);
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string where = fmt::format("{}[{}]", section, i);
    errors.guard([&] {
      std::string name = required_string(entries[i], where, "name");
      const Info& info = lookup<Info>(entries[i], where + ".name", name, kind);
      Schema sc{kind, name, &info.params};
      for (auto& p : expand_entry(entries[i], where, sc, {"name"}, data_dir, errors)) {
        std::string extra = short_params(info.params, p);
        out.push_back({{{name, "", p}, extra.empty() ? name : name + "(" + extra + ")", entries[i], where}, &info});
      }
    });
  }
  return out;
}

std::vector<long> int_list(const std::map<std::string, Located>& top, const char* key, long dflt, long min,
                           Errors& errors) {
  auto it = top.find(key);
  if (it == top.end()) return {dflt};
  std::vector<long> out;
  errors.guard([&] {
    json v = to_json(it->second.node);
    if (v.is_number_integer()) v = json::array({v});
    if (!v.is_array() || v.empty()) fail(it->second, key, "expected an integer or a non-empty list of integers");
    for (const auto& e : v) {
      if (!e.is_number_integer() || e.get<long>() < min)
        fail(it->second, key, fmt::format("expected integers ≥ {}, got {}", min, describe(e)));
      out.push_back(e.get<long>());
    }
  });
  return out.empty() ? std::vector<long>{dflt} : out;
}

// Where the model jobs run: `device` (one or a list of cpu, cuda, cuda:N), each GPU in
// `gpu_dtype` (its backend's default when absent) unless it names its own (cuda/fp32). The
// devices are a sweep axis.
std::vector<Placement> placements(const std::map<std::string, Located>& top, Errors& errors) {
  std::string gpu_dtype;
  auto dt = top.find("gpu_dtype");
  if (dt != top.end()) errors.guard([&] { gpu_dtype = scalar_text(dt->second, "gpu_dtype"); });
  auto it = top.find("device");
  std::vector<Placement> out;
  if (it == top.end()) {
    out.push_back(parse_placement("cpu", ""));
  } else {
    errors.guard([&] {
      json v = to_json(it->second.node);
      if (v.is_string()) v = json::array({v});
      if (!v.is_array() || v.empty()) fail(it->second, "device", "expected cpu, cuda, cuda:N or a list of them");
      for (const json& d : v) {
        if (!d.is_string()) fail(it->second, "device", fmt::format("expected a device name, got {}", describe(d)));
        const std::string text = d.get<std::string>();
        const size_t slash = text.find('/');  // cuda/fp32: this device's own dtype
        const std::string name = text.substr(0, slash);
        const std::string dtype = slash != std::string::npos ? text.substr(slash + 1) : name.starts_with("cpu") ? "" : gpu_dtype;
        try {
          out.push_back(parse_placement(name, dtype));
        } catch (const std::invalid_argument& e) {
          const bool dtype_at_device = name.starts_with("cpu") || dt == top.end() || slash != std::string::npos;
          fail(dtype_at_device ? it->second : dt->second, dtype_at_device ? "device" : "gpu_dtype", e.what());
        }
      }
    });
  }
  bool any_gpu = false;
  for (const Placement& p : out) any_gpu |= p.backend != "cpu";
  if (dt != top.end() && !any_gpu)
    errors.guard([&] { fail(dt->second, "gpu_dtype", "is set, but no device of this config is a GPU (device: cuda)"); });
  return out.empty() ? std::vector<Placement>{parse_placement("cpu", "")} : out;
}

// The files one method or evaluation entry reads, by its parameters' roles.
std::vector<fs::path> param_files(const ParamSchema& schema, const json& params, const fs::path& data_dir,
                                  const Located& at, const std::string& where) {
  std::vector<fs::path> out;
  for (const auto& spec : schema) {
    if (!spec.names_data() || !params.contains(spec.name)) continue;
    const json& v = params[spec.name];
    if (spec.role == ParamRole::file && !v.get<std::string>().empty())
      for (const auto& f : files_under(fs::path(v.get<std::string>()).is_absolute() ? fs::path(v.get<std::string>())
                                                                                    : data_dir / v.get<std::string>()))
        out.push_back(f);
    if (spec.role == ParamRole::corpus) {  // a default corpus is checked here, a given one already was
      check_corpus({at.node[spec.name] ? at.node[spec.name] : at.node, at.file}, where + "." + spec.name,
                   v.get<std::string>(), data_dir);
      out.push_back(corpus_path(v.get<std::string>(), data_dir));
    }
    if (spec.role == ParamRole::task_list) {
      const std::string sub = params.contains("task_dir") ? params["task_dir"].get<std::string>() : "";
      const fs::path dir = sub.empty() ? data_dir : data_dir / sub;
      for (const auto& name : v) {
        std::vector<fs::path> tried;
        auto files = task_files(*find_task(name.get<std::string>()), dir, &tried);
        if (files.empty()) {
          std::string looked;
          for (const auto& t : tried) looked += (looked.empty() ? "" : ", ") + t.string();
          fail({at.node[spec.name] ? at.node[spec.name] : at.node, at.file}, where + "." + spec.name,
               fmt::format("task '{}' has no file; looked for {}", name.get<std::string>(), looked));
        }
        out.insert(out.end(), files.begin(), files.end());
      }
    }
  }
  return out;
}

// A runtime_error of a loader or of fingerprinting, reported at the entry it concerns.
template <class F>
auto at_entry(const Expanded& e, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& ex) {
    fail(e.at, e.where, ex.what());
  }
}

// The data every job of the sweep reads: files per model / method / evaluation point, checked
// once each, plus the tokenizer an evaluation needs. Fills cfg.data_files.
class DataOfJobs {
 public:
  DataOfJobs(const fs::path& data_dir, Errors& errors) : data_dir_(data_dir), errors_(errors) {}

  std::optional<std::vector<fs::path>> model(const Expanded& m) {
    return memo(m, [&] { return model_files(m.part, data_dir_); });
  }
  template <class Info>
  std::optional<std::vector<fs::path>> entry(const Expanded& e, const Info& info) {
    return memo(e, [&] { return param_files(info.params, e.part.params, data_dir_, e.at, e.where); });
  }
  bool has_tokenizer(const Expanded& m) {
    auto key = m.part.to_json().dump();
    if (!tokenizer_.count(key)) tokenizer_[key] = model_tokenizer(m.part, data_dir_).has_value();
    return tokenizer_[key];
  }
  json fingerprint_of(const std::vector<const std::vector<fs::path>*>& parts) {
    std::vector<fs::path> files;
    for (const auto* p : parts)
      if (p) files.insert(files.end(), p->begin(), p->end());
    all_.insert(all_.end(), files.begin(), files.end());
    return fingerprint(files, data_dir_);
  }
  std::vector<fs::path> all_files() const {
    std::vector<fs::path> out = all_;
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

 private:
  template <class F>
  std::optional<std::vector<fs::path>> memo(const Expanded& e, F&& files) {
    const std::string key = e.where + e.part.to_json().dump();
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    std::optional<std::vector<fs::path>> out;
    errors_.guard([&] {
      auto list = at_entry(e, files);
      for (const auto& f : list) at_entry(e, [&] { return file_digest(f); });  // readable, and cached for the key
      out = std::move(list);
    });
    return cache_[key] = out;
  }
  fs::path data_dir_;
  Errors& errors_;
  std::map<std::string, std::optional<std::vector<fs::path>>> cache_;
  std::map<std::string, bool> tokenizer_;
  std::vector<fs::path> all_;
};

}  // namespace

Config load_config(const fs::path& path, const fs::path& data_dir_override) {
  Config cfg;
  cfg.path = path;
  std::map<std::string, Located> top;
  std::vector<fs::path> chain;
  Errors errors;
  int files_read = 0;
  read_file(path, top, cfg.text, chain, errors, files_read);
  cfg.hash = hash_text(cfg.text);
  cfg.name = path.stem().string();
  if (top.count("name")) errors.guard([&] { cfg.name = scalar_text(top["name"], "name"); });

  if (!data_dir_override.empty())
    cfg.data_dir = data_dir_override;
  else if (top.count("data_dir"))
    errors.guard([&] {
      cfg.data_dir = fs::path(top["data_dir"].file).parent_path() / scalar_text(top["data_dir"], "data_dir", "a folder");
    });
  if (cfg.data_dir.empty()) cfg.data_dir = default_data_dir();

  auto models = expand_models(top, cfg.data_dir, errors);
  auto methods = expand_named<MethodInfo>(top, "methods", "method", cfg.data_dir, errors);
  auto evals = expand_named<EvaluatorInfo>(top, "evaluations", "evaluation", cfg.data_dir, errors);
  auto seeds = int_list(top, "seeds", 0, 0, errors);
  long reps = int_list(top, "repetitions", 1, 1, errors).front();
  const std::vector<Placement> devices = placements(top, errors);
  errors.throw_if_any(path.string());

  if (evals.empty()) throw ConfigError(path.string(), 1, 1, "evaluations", "no evaluations: nothing to measure");
  size_t model_evals = 0;
  for (const auto& [e, info] : evals) model_evals += info->needs_model;
  if (model_evals && models.empty())
    throw ConfigError(path.string(), 1, 1, "models", "an evaluation needs a model, but the config lists no models");
  if (model_evals && methods.empty())
    throw ConfigError(path.string(), 1, 1, "methods",
                      "an evaluation needs a model, but the config lists no methods (use `- name: fp16` for none)");
  const double total = (double(models.size()) * double(methods.size()) * double(model_evals) * double(devices.size()) +
                        double(evals.size() - model_evals)) *
                       double(seeds.size()) * double(reps);
  if (total > kMaxSweepJobs)
    throw ConfigError(path.string(), 1, 1, "",
                      fmt::format("the sweep would make {:.0f} jobs ({} model points × {} method points × {} "
                                  "evaluation points × {} seeds × {} repetitions); at most {} are expanded",
                                  total, models.size(), methods.size(), evals.size(), seeds.size(), reps,
                                  kMaxSweepJobs));

  DataOfJobs data(cfg.data_dir, errors);
  for (const auto& m : models)
    for (const auto& [e, einfo] : evals)
      if (einfo->needs_tokenizer)
        errors.guard([&] {
          if (!at_entry(m, [&] { return data.has_tokenizer(m); }))
            fail({m.at.node["name"] ? m.at.node["name"] : m.at.node, m.at.file}, m.where,
                 fmt::format("model '{}' has no tokenizer, but evaluation '{}' ({}) needs one: give the entry "
                             "`tokenizer:` (a SentencePiece .model, tokenizer.json, vocab.json + merges.txt, or a "
                             "folder holding one)",
                             m.part.name, einfo->name, e.where));
        });

  auto add_job = [&](const Expanded* model, const Expanded* method, const MethodInfo* minfo, const Expanded& eval,
                     const EvaluatorInfo& einfo, long seed, long rep, const Placement& where) {
    auto model_data = model ? data.model(*model) : std::optional<std::vector<fs::path>>{std::vector<fs::path>{}};
    auto method_data = method ? data.entry(*method, *minfo) : std::optional<std::vector<fs::path>>{std::vector<fs::path>{}};
    auto eval_data = data.entry(eval, einfo);
    if (!model_data || !method_data || !eval_data) return;  // recorded in errors
    Job j;
    j.spec.backend = where.spec_backend();
    j.device_index = where.device;
    if (model) j.spec.model = model->part;
    if (method) j.spec.method = method->part;
    j.spec.eval = eval.part;
    j.spec.seed = seed;
    j.spec.rep = rep;
    j.spec.data = data.fingerprint_of({&*model_data, &*method_data, &*eval_data});
    j.key = j.spec.key();
    j.label = (model ? model->label + " " + method->label + " " : std::string()) + eval.label;
    if (devices.size() > 1 || where.backend != "cpu") j.label += " @" + j.spec.backend;
    if (seeds.size() > 1) j.label += fmt::format(" seed={}", seed);
    if (reps > 1) j.label += fmt::format(" rep={}", rep);
    cfg.jobs.push_back(std::move(j));
  };
  // Model-major order: consecutive jobs share one prepared (quantized) model, and its devices one upload.
  // Evaluations without a model (gemm) time the CPU's kernels: they run on the CPU whatever `device` says.
  const Placement cpu = parse_placement("cpu", "");
  for (const auto& m : models)
    for (const auto& [meth, minfo] : methods)
      for (long seed : seeds)
        for (const Placement& where : devices)
          for (const auto& [e, einfo] : evals)
            if (einfo->needs_model)
              for (long r = 0; r < reps; ++r) add_job(&m, &meth, minfo, e, *einfo, seed, r, where);
  for (long seed : seeds)
    for (const auto& [e, einfo] : evals)
      if (!einfo->needs_model)
        for (long r = 0; r < reps; ++r) add_job(nullptr, nullptr, nullptr, e, *einfo, seed, r, cpu);
  errors.throw_if_any(path.string());

  std::set<std::string> keys;
  std::vector<Job> unique;
  for (auto& j : cfg.jobs)
    if (keys.insert(j.key).second) unique.push_back(std::move(j));
  cfg.jobs = std::move(unique);
  cfg.data_files = data.all_files();
  return cfg;
}

}  // namespace fb

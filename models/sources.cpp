// The model formats a config's `models:` entry can name, one registration each, and
// load_model which dispatches on the model part's format.
#include "models/source.h"

#include "core/resources.h"
#include "models/loaders.h"
#include "models/safetensors.h"
#include "models/synthetic.h"

#include <fmt/format.h>

#include <optional>
#include <stdexcept>

namespace fb {
namespace {

namespace fs = std::filesystem;

std::string joined_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::vector<std::string> schema_names(const ParamSchema& schema) {
  std::vector<std::string> out;
  for (const auto& p : schema) out.push_back(p.name);
  return out;
}

fs::path resolve(const fs::path& data_dir, const std::string& p) {
  const fs::path path(p);
  return path.is_absolute() ? path : data_dir / path;
}

// The tokenizer a llama2c / hf entry uses: its `tokenizer` parameter, else the default
// beside the weights when that exists, else none.
std::optional<fs::path> tokenizer_path(const json& p, const fs::path& data_dir, const fs::path& fallback,
                                       bool fallback_exists) {
  const std::string tok = param_string(p, "tokenizer");
  if (!tok.empty()) return resolve(data_dir, tok);
  if (fallback_exists) return fallback;
  return std::nullopt;
}

std::optional<fs::path> llama2c_tokenizer(const json& p, const fs::path& data_dir) {
  const fs::path beside = resolve(data_dir, param_string(p, "path")).parent_path() / "tokenizer.model";
  return tokenizer_path(p, data_dir, beside, fs::exists(beside));
}

std::optional<fs::path> hf_tokenizer(const json& p, const fs::path& data_dir) {
  const fs::path folder = resolve(data_dir, param_string(p, "path"));
  bool has_files = false;
  for (const char* f : {"tokenizer.model", "tokenizer.json", "vocab.json", "encoder.json"})
    has_files |= fs::exists(folder / f);
  return tokenizer_path(p, data_dir, folder, has_files);
}

void add_tokenizer(LoadedModel& out, const std::optional<fs::path>& tok) {
  if (!tok) return;
  out.tokenizer = load_tokenizer(*tok);
  for (const auto& f : tokenizer_files(*tok)) out.files.push_back(f);
}

std::vector<fs::path> with_tokenizer(std::vector<fs::path> files, const std::optional<fs::path>& tok) {
  if (tok)
    for (const auto& f : tokenizer_files(*tok)) files.push_back(f);
  return files;
}

LoadedModel load_llama2c_source(const json& p, const fs::path& data_dir) {
  LoadedModel out;
  const fs::path bin = resolve(data_dir, param_string(p, "path"));
  out.model = load_llama2c(bin);
  out.files.push_back(bin);
  add_tokenizer(out, llama2c_tokenizer(p, data_dir));
  return out;
}

std::vector<fs::path> llama2c_files(const json& p, const fs::path& data_dir) {
  const fs::path bin = resolve(data_dir, param_string(p, "path"));
  if (!fs::is_regular_file(bin)) throw std::runtime_error(bin.string() + ": not a file (a llama2c checkpoint is one .bin file)");
  return with_tokenizer({bin}, llama2c_tokenizer(p, data_dir));
}

LoadedModel load_hf_source(const json& p, const fs::path& data_dir) {
  LoadedModel out;
  out.model = load_hf(resolve(data_dir, param_string(p, "path")), &out.files);
  add_tokenizer(out, hf_tokenizer(p, data_dir));
  return out;
}

// config.json and the safetensors files (the index and every shard it names); the headers are
// read to find the shards, the weights are not.
std::vector<fs::path> hf_files(const json& p, const fs::path& data_dir) {
  const fs::path folder = resolve(data_dir, param_string(p, "path"));
  if (!fs::is_directory(folder)) throw std::runtime_error(folder.string() + ": not a folder (an hf model is a folder)");
  std::vector<fs::path> files{folder / "config.json"};
  if (!fs::is_regular_file(files[0])) throw std::runtime_error(files[0].string() + ": not found");
  const fs::path index = folder / "model.safetensors.index.json";
  if (!fs::exists(folder / "model.safetensors") && fs::exists(index)) files.push_back(index);
  for (const auto& f : SafetensorsSet(folder).files()) files.push_back(f);
  return with_tokenizer(std::move(files), hf_tokenizer(p, data_dir));
}

// fp32 weights of the model the options build, twice: the base model and the prepared copy a
// method quantizes (harness/runner.cpp keeps both).
double synthetic_weight_bytes(const ModelConfig& c, const SyntheticOptions& o) {
  const double layers = o.layers > 0 ? o.layers : c.n_layers, vocab = o.vocab > 0 ? o.vocab : c.vocab_size;
  const double dim = c.dim, kv = double(c.n_kv_heads) * c.head_dim();
  const double per_layer = 2 * dim * dim + 2 * dim * kv + 3 * dim * double(c.hidden_dim);
  return 2 * 4 * (layers * per_layer + 2 * vocab * dim);
}

// A synthetic model reads text only through a tokenizer it is given: real evaluation paths
// (ppl, zeroshot) timed on published shapes, their scores meaningless and marked synthetic.
std::optional<fs::path> synthetic_tokenizer(const json& p, const fs::path& data_dir) {
  return tokenizer_path(p, data_dir, {}, false);
}

LoadedModel load_synthetic_source(const json& p, const fs::path& data_dir) {
  SyntheticOptions o;
  o.layers = param_int(p, "layers");
  o.seed = static_cast<uint64_t>(param_int(p, "seed"));
  o.outlier_channels = param_int(p, "outlier_channels");
  o.outlier_scale = static_cast<float>(param_float(p, "outlier_scale"));
  o.vocab = param_int(p, "vocab");
  o.max_seq_len = param_int(p, "max_seq_len");
  if (o.layers < 0 || o.outlier_channels < 0 || o.vocab < 0 || o.max_seq_len < 0)
    throw std::runtime_error("synthetic model: layers, outlier_channels, vocab and max_seq_len must be ≥ 0");
  ModelConfig shape = synthetic_config(param_string(p, "arch"));
  require_memory(synthetic_weight_bytes(shape, o), fmt::format("synthetic {} with {} layers (weights, fp32, and the "
                                                               "method's prepared copy)",
                                                               param_string(p, "arch"), o.layers ? o.layers : shape.n_layers));
  LoadedModel out;
  out.model = make_synthetic_model(shape, o);
  out.model.cfg.name = "synthetic-" + param_string(p, "arch") + "-L" + std::to_string(out.model.cfg.n_layers);
  add_tokenizer(out, synthetic_tokenizer(p, data_dir));
  if (out.tokenizer && out.tokenizer->vocab_size() > out.model.cfg.vocab_size)
    throw std::runtime_error(fmt::format("synthetic model: its tokenizer has {} tokens, more than the model's vocabulary "
                                         "of {} (set vocab: or pick the arch the tokenizer belongs to)",
                                         out.tokenizer->vocab_size(), out.model.cfg.vocab_size));
  return out;
}

FB_REGISTER_MODEL_SOURCE(ModelSourceInfo{
    "llama2c",
    "A llama2.c checkpoint (karpathy/llama2.c run.c format), e.g. stories260K.",
    {
        {"path", ParamType::String, nullptr, "checkpoint .bin, relative to the data directory", {}, ParamRole::file},
        {"tokenizer", ParamType::String, "", "SentencePiece .model (default: tokenizer.model beside the checkpoint, if any)", {}, ParamRole::file},
    },
    load_llama2c_source, llama2c_files, llama2c_tokenizer});

FB_REGISTER_MODEL_SOURCE(ModelSourceInfo{
    "hf",
    "A Hugging Face folder: config.json + model.safetensors (or sharded with an index); "
    "LlamaForCausalLM (attention_bias, mlp_bias, rope_scaling linear/llama3/dynamic), MistralForCausalLM, "
    "Qwen2ForCausalLM or OPTForCausalLM; F32/F16/BF16 weights. Every tensor must be used; a sliding_window "
    "caps the evaluation window.",
    {
        {"path", ParamType::String, nullptr, "model folder, relative to the data directory", {}, ParamRole::file},
        {"tokenizer", ParamType::String, "", "tokenizer file or folder (default: the model folder, if it has one)", {}, ParamRole::file},
    },
    load_hf_source, hf_files, hf_tokenizer});

FB_REGISTER_MODEL_SOURCE(ModelSourceInfo{
    "synthetic",
    "Published OPT / LLaMA shapes with seeded random weights and an optional outlier profile. "
    "For latency, memory and method mechanics only: results are marked synthetic.",
    {
        {"arch", ParamType::String, nullptr, "published shape", synthetic_arch_names()},
        {"layers", ParamType::Int, 2, "number of layers to build (0 = the published count)", {}, {}, at_least(0)},
        {"seed", ParamType::Int, 0, "weight seed"},
        {"outlier_channels", ParamType::Int, 0, "hidden channels made large at every norm output", {}, {}, at_least(0)},
        {"outlier_scale", ParamType::Float, 30.0, "magnitude of the outlier channels relative to the rest", {}, {}, at_least(0)},
        {"vocab", ParamType::Int, 0, "vocabulary size override (0 = published)", {}, {}, at_least(0)},
        {"max_seq_len", ParamType::Int, 0, "context length override (0 = published)", {}, {}, at_least(0)},
        {"tokenizer", ParamType::String, "",
         "a tokenizer to read text with (e.g. llama_tokenizer/tokenizer.model for llama-2-7b), so ppl and zeroshot "
         "can be timed on the shape; none by default",
         {}, ParamRole::file},
    },
    load_synthetic_source,
    [](const json& p, const fs::path& data_dir) { return with_tokenizer({}, synthetic_tokenizer(p, data_dir)); },
    synthetic_tokenizer});

}  // namespace

namespace {

// "parameter 'layers' must be a integer", "parameter 'layers': -3 is out of range (expects ≥ 0)".
std::string problem_text(const ParamSchema& schema, const std::pair<std::string, ValueProblem>& problem) {
  const auto& [key, p] = problem;
  const ParamSpec& spec = *find_param(schema, key);
  switch (p.kind) {
    case ValueProblem::Kind::wrong_type:
      return "parameter '" + key + "' must be " +
             (spec.choices.empty() ? std::string("a ") + param_type_name(spec.type) : "one of " + joined_names(spec.choices));
    case ValueProblem::Kind::out_of_range: return "parameter '" + key + "': " + p.detail;
    case ValueProblem::Kind::unknown_name:
      return "parameter '" + key + "': unknown " + spec.name + " '" + p.detail + "' (" + joined_names(p.known) + ")";
  }
  return "parameter '" + key + "' is invalid";
}

// The model format's registration and the model's parameters, checked and filled with defaults.
std::pair<const ModelSourceInfo*, json> source_and_params(const SpecPart& model) {
  const ModelSourceInfo* src = Registry<ModelSourceInfo>::instance().find(model.format);
  if (!src)
    throw std::runtime_error((model.format.empty() ? std::string("model part lacks a format")
                                                   : "unknown model format '" + model.format + "'") +
                             " (" + joined_names(Registry<ModelSourceInfo>::instance().names()) + ")");
  for (const auto& [name, value] : model.params.items())
    if (!find_param(src->params, name))
      throw std::runtime_error("model format '" + model.format + "': unknown parameter '" + name + "' (known: " +
                               joined_names(schema_names(src->params)) + ")");
  if (auto problem = first_param_problem(src->params, model.params))
    throw std::runtime_error("model format '" + model.format + "': " + problem_text(src->params, *problem));
  json params = fill_defaults(src->params, model.params);
  for (const auto& ps : src->params)
    if (!params.contains(ps.name))
      throw std::runtime_error("model format '" + model.format + "': missing required parameter '" + ps.name + "'");
  return {src, params};
}

}  // namespace

LoadedModel load_model(const SpecPart& spec, const fs::path& data_dir) {
  auto [src, params] = source_and_params(spec);
  LoadedModel out = src->load(params, data_dir);
  return out;
}

std::vector<fs::path> model_files(const SpecPart& spec, const fs::path& data_dir) {
  auto [src, params] = source_and_params(spec);
  return src->files(params, data_dir);
}

std::optional<fs::path> model_tokenizer(const SpecPart& spec, const fs::path& data_dir) {
  auto [src, params] = source_and_params(spec);
  return src->tokenizer(params, data_dir);
}

}  // namespace fb

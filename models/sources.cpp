// The model formats a config's `models:` entry can name, one registration each, and
// load_model which dispatches on spec["format"].
#include "models/source.h"

#include "models/loaders.h"
#include "models/synthetic.h"

#include <stdexcept>

namespace fb {
namespace {

namespace fs = std::filesystem;

fs::path resolve(const fs::path& data_dir, const std::string& p) {
  const fs::path path(p);
  return path.is_absolute() ? path : data_dir / path;
}

LoadedModel load_llama2c_source(const json& p, const fs::path& data_dir) {
  LoadedModel out;
  const fs::path bin = resolve(data_dir, param_string(p, "path"));
  out.model = load_llama2c(bin);
  out.files.push_back(bin);
  std::string tok = param_string(p, "tokenizer");
  fs::path tok_path = tok.empty() ? bin.parent_path() / "tokenizer.model" : resolve(data_dir, tok);
  if (!tok.empty() || fs::exists(tok_path)) {
    out.tokenizer = load_tokenizer(tok_path);
    out.files.push_back(tok_path);
  }
  return out;
}

LoadedModel load_hf_source(const json& p, const fs::path& data_dir) {
  LoadedModel out;
  const fs::path folder = resolve(data_dir, param_string(p, "path"));
  out.model = load_hf(folder, &out.files);
  const std::string tok = param_string(p, "tokenizer");
  const fs::path tok_path = tok.empty() ? folder : resolve(data_dir, tok);
  const bool has_tokenizer_files = fs::exists(folder / "tokenizer.model") || fs::exists(folder / "tokenizer.json") ||
                                   fs::exists(folder / "vocab.json") || fs::exists(folder / "encoder.json");
  if (!tok.empty() || has_tokenizer_files) {
    out.tokenizer = load_tokenizer(tok_path);
    out.files.push_back(tok_path);
  }
  return out;
}

LoadedModel load_synthetic_source(const json& p, const fs::path&) {
  SyntheticOptions o;
  o.layers = param_int(p, "layers");
  o.seed = static_cast<uint64_t>(param_int(p, "seed"));
  o.outlier_channels = param_int(p, "outlier_channels");
  o.outlier_scale = static_cast<float>(param_float(p, "outlier_scale"));
  o.vocab = param_int(p, "vocab");
  o.max_seq_len = param_int(p, "max_seq_len");
  if (o.layers < 0 || o.outlier_channels < 0 || o.vocab < 0 || o.max_seq_len < 0)
    throw std::runtime_error("synthetic model: layers, outlier_channels, vocab and max_seq_len must be ≥ 0");
  LoadedModel out;
  out.model = make_synthetic_model(synthetic_config(param_string(p, "arch")), o);
  out.model.cfg.name = "synthetic-" + param_string(p, "arch") + "-L" + std::to_string(out.model.cfg.n_layers);
  return out;
}

FB_REGISTER_MODEL_SOURCE(ModelSourceInfo{
    "llama2c",
    "A llama2.c checkpoint (karpathy/llama2.c run.c format), e.g. stories260K.",
    {
        {"path", ParamType::String, nullptr, "checkpoint .bin, relative to the data directory", {}, true},
        {"tokenizer", ParamType::String, "", "SentencePiece .model (default: tokenizer.model beside the checkpoint, if any)", {}, true},
    },
    load_llama2c_source});

FB_REGISTER_MODEL_SOURCE(ModelSourceInfo{
    "hf",
    "A Hugging Face folder: config.json + model.safetensors (or sharded with an index); "
    "LlamaForCausalLM or OPTForCausalLM; F32/F16/BF16 weights.",
    {
        {"path", ParamType::String, nullptr, "model folder, relative to the data directory", {}, true},
        {"tokenizer", ParamType::String, "", "tokenizer file or folder (default: the model folder, if it has one)", {}, true},
    },
    load_hf_source});

FB_REGISTER_MODEL_SOURCE(ModelSourceInfo{
    "synthetic",
    "Published OPT / LLaMA shapes with seeded random weights and an optional outlier profile. "
    "For latency, memory and method mechanics only: results are marked synthetic.",
    {
        {"arch", ParamType::String, nullptr, "published shape", synthetic_arch_names()},
        {"layers", ParamType::Int, 2, "number of layers to build (0 = the published count)"},
        {"seed", ParamType::Int, 0, "weight seed"},
        {"outlier_channels", ParamType::Int, 0, "hidden channels made large at every norm output"},
        {"outlier_scale", ParamType::Float, 30.0, "magnitude of the outlier channels relative to the rest"},
        {"vocab", ParamType::Int, 0, "vocabulary size override (0 = published)"},
        {"max_seq_len", ParamType::Int, 0, "context length override (0 = published)"},
    },
    load_synthetic_source});

}  // namespace

LoadedModel load_model(const json& spec, const fs::path& data_dir) {
  if (!spec.is_object() || !spec.contains("format") || !spec["format"].is_string())
    throw std::runtime_error("model spec lacks a string 'format' (llama2c, hf or synthetic)");
  const std::string format = spec["format"].get<std::string>();
  const ModelSourceInfo* src = Registry<ModelSourceInfo>::instance().find(format);
  if (!src) throw std::runtime_error("unknown model format '" + format + "' (llama2c, hf or synthetic)");
  json given = spec;
  given.erase("format");
  for (const auto& [key, value] : given.items()) {
    const ParamSpec* ps = find_param(src->params, key);
    if (!ps) continue;  // extra keys (e.g. a display name) are the config loader's business
    if (!value_fits(*ps, value)) {
      std::string want = std::string("a ") + param_type_name(ps->type);
      if (!ps->choices.empty()) {
        want = "one of";
        for (const auto& c : ps->choices) want += " " + c;
      }
      throw std::runtime_error("model format '" + format + "': parameter '" + key + "' must be " + want);
    }
  }
  json params = fill_defaults(src->params, given);
  for (const auto& ps : src->params)
    if (!params.contains(ps.name))
      throw std::runtime_error("model format '" + format + "': missing required parameter '" + ps.name + "'");
  LoadedModel out = src->load(params, data_dir);
  if (format == "synthetic") out.model.cfg.synthetic = true;
  return out;
}

}  // namespace fb

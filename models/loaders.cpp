#include "models/loaders.h"

#include "models/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numbers>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

namespace fb {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

[[noreturn]] void fail(const fs::path& p, const std::string& what) { throw std::runtime_error(p.string() + ": " + what); }

// Checks the head layout every architecture here relies on.
void check_shapes(const fs::path& p, const ModelConfig& c) {
  auto positive = [&](int v, const char* name) {
    if (v <= 0) fail(p, std::string(name) + " = " + std::to_string(v) + " must be positive");
  };
  positive(c.dim, "dim");
  positive(c.hidden_dim, "hidden_dim");
  positive(c.n_layers, "n_layers");
  positive(c.n_heads, "n_heads");
  positive(c.n_kv_heads, "n_kv_heads");
  positive(c.vocab_size, "vocab_size");
  positive(c.max_seq_len, "max_seq_len");
  if (c.dim % c.n_heads) fail(p, "dim " + std::to_string(c.dim) + " is not a multiple of n_heads " + std::to_string(c.n_heads));
  if (c.n_heads % c.n_kv_heads)
    fail(p, "n_heads " + std::to_string(c.n_heads) + " is not a multiple of n_kv_heads " + std::to_string(c.n_kv_heads));
  if (c.head_dim() % 2) fail(p, "head dimension " + std::to_string(c.head_dim()) + " is odd (RoPE needs pairs)");
}

LinearSite make_site(int layer, Role role, Mat w, Vec b = Vec()) {
  LinearSite s;
  s.id = {layer, role};
  s.W = std::move(w);
  s.b = std::move(b);
  return s;
}

// ---- llama2.c ------------------------------------------------------------------------------

// Reads consecutive fp32 tensors out of the checkpoint body.
class FloatCursor {
 public:
  FloatCursor(const std::vector<float>& data) : data_(data) {}
  Mat matrix(int64_t rows, int64_t cols) {
    Mat m(rows, cols);
    std::memcpy(m.data(), data_.data() + at_, size_t(rows * cols) * 4);
    at_ += size_t(rows * cols);
    return m;
  }
  Vec vector(int64_t n) {
    Vec v(n);
    std::memcpy(v.data(), data_.data() + at_, size_t(n) * 4);
    at_ += size_t(n);
    return v;
  }
  void skip(int64_t n) { at_ += size_t(n); }

 private:
  const std::vector<float>& data_;
  size_t at_ = 0;
};

ModelConfig llama2c_config(const fs::path& bin, const int32_t h[7]) {
  ModelConfig c;
  c.name = bin.stem().string();
  c.arch = Arch::llama;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_classifier = h[5] > 0;
  c.vocab_size = h[5] == INT32_MIN ? 0 : std::abs(h[5]);
  c.max_seq_len = h[6];
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.f;
  check_shapes(bin, c);
  return c;
}

// Floats the body must hold, in llama2.c order.
int64_t llama2c_body_floats(const ModelConfig& c) {
  const int64_t d = c.dim, L = c.n_layers, hd = c.head_dim(), kv = int64_t(c.n_kv_heads) * hd, f = c.hidden_dim;
  int64_t n = int64_t(c.vocab_size) * d;  // token_embedding
  n += L * (d + d * d + 2 * kv * d + d * d + d + 3 * f * d);
  n += d + int64_t(c.max_seq_len) * hd;  // rms_final, freq_cis_real + imag
  if (!c.tied_classifier) n += int64_t(c.vocab_size) * d;
  return n;
}

}  // namespace

Model load_llama2c(const fs::path& bin) {
  std::ifstream in(bin, std::ios::binary);
  if (!in) fail(bin, "cannot open llama2.c checkpoint");
  int32_t header[7];
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) fail(bin, "too short for the 28-byte llama2.c header");
  Model m;
  m.cfg = llama2c_config(bin, header);
  const ModelConfig& c = m.cfg;
  const int64_t want = llama2c_body_floats(c);
  const uint64_t have_bytes = fs::file_size(bin) - sizeof header;
  if (have_bytes < uint64_t(want) * 4)
    fail(bin, "truncated: header implies " + std::to_string(want * 4) + " bytes of fp32 tensors, file has " +
                  std::to_string(have_bytes));
  if (have_bytes > uint64_t(want) * 4)
    fail(bin, "has " + std::to_string(have_bytes - uint64_t(want) * 4) +
                  " bytes more than the header implies (wrong header or not a llama2.c checkpoint)");
  std::vector<float> body(static_cast<size_t>(want));
  if (!in.read(reinterpret_cast<char*>(body.data()), want * 4)) fail(bin, "short read");

  const int64_t d = c.dim, L = c.n_layers, f = c.hidden_dim, kv = int64_t(c.n_kv_heads) * c.head_dim();
  FloatCursor r(body);
  m.tok_embedding = r.matrix(c.vocab_size, d);
  m.blocks.resize(size_t(L));
  // llama2.c stores each tensor kind for all layers before the next kind.
  for (int l = 0; l < L; ++l) m.blocks[l].attn_norm.gamma = r.vector(d);
  for (int l = 0; l < L; ++l) m.blocks[l].q = make_site(l, Role::q, r.matrix(d, d));
  for (int l = 0; l < L; ++l) m.blocks[l].k = make_site(l, Role::k, r.matrix(kv, d));
  for (int l = 0; l < L; ++l) m.blocks[l].v = make_site(l, Role::v, r.matrix(kv, d));
  for (int l = 0; l < L; ++l) m.blocks[l].o = make_site(l, Role::o, r.matrix(d, d));
  for (int l = 0; l < L; ++l) m.blocks[l].mlp_norm.gamma = r.vector(d);
  for (int l = 0; l < L; ++l) m.blocks[l].gate = make_site(l, Role::gate, r.matrix(f, d));  // w1
  for (int l = 0; l < L; ++l) m.blocks[l].down = make_site(l, Role::down, r.matrix(d, f));  // w2
  for (int l = 0; l < L; ++l) m.blocks[l].up = make_site(l, Role::up, r.matrix(f, d));      // w3
  m.final_norm.gamma = r.vector(d);
  r.skip(int64_t(c.max_seq_len) * c.head_dim());  // freq_cis_real/imag: recomputed at run time
  if (!c.tied_classifier) m.classifier = r.matrix(c.vocab_size, d);
  return m;
}

Mat hf_rows_to_interleaved(const Mat& w, int n_heads, int hd) {
  Mat out(w.rows(), w.cols());
  for (int h = 0; h < n_heads; ++h)
    for (int j = 0; j < hd / 2; ++j)
      for (int s = 0; s < 2; ++s) out.row(h * hd + 2 * j + s) = w.row(h * hd + s * hd / 2 + j);
  return out;
}

Mat interleaved_rows_to_hf(const Mat& w, int n_heads, int hd) {
  Mat out(w.rows(), w.cols());
  for (int h = 0; h < n_heads; ++h)
    for (int j = 0; j < hd / 2; ++j)
      for (int s = 0; s < 2; ++s) out.row(h * hd + s * hd / 2 + j) = w.row(h * hd + 2 * j + s);
  return out;
}

// ---- Hugging Face --------------------------------------------------------------------------
//
// Every tensor in the checkpoint is used or the load fails naming it, and every config.json key
// that changes the math is either implemented as transformers does it or refused by name.
// The config's sizes are checked against the safetensors headers before anything is allocated.

namespace {

using Shape = std::vector<int64_t>;

// Longest max_position_embeddings taken at face value (Llama 4 declares 10M): beyond, the value
// is a typo or a hostile file, and evaluators size windows from it.
constexpr int64_t kMaxContext = int64_t(1) << 24;

std::string quoted(const std::string& key) { return "'" + key + "'"; }

// config.json's integer `key`, or `fallback` when absent or null; refused outside [lo, hi].
int cfg_int(const fs::path& p, const json& j, const char* key, std::optional<int> fallback = std::nullopt,
            int64_t lo = 1, int64_t hi = INT_MAX) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback) return *fallback;
    fail(p, "missing integer " + quoted(key));
  }
  const json& v = j[key];
  if (!v.is_number_integer()) fail(p, quoted(key) + " is not an integer");
  const bool huge = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX);
  const int64_t x = huge ? INT64_MAX : v.get<int64_t>();
  if (huge || x < lo || x > hi)
    fail(p, quoted(key) + " = " + v.dump() + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return int(x);
}

double cfg_num(const fs::path& p, const json& j, const char* key, double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) fail(p, quoted(key) + " is not a number");
  const double x = j[key].get<double>();
  if (!std::isfinite(x)) fail(p, quoted(key) + " is not finite");
  return x;
}

bool cfg_bool(const fs::path& p, const json& j, const char* key, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) fail(p, quoted(key) + " is not true or false");
  return j[key].get<bool>();
}

std::string cfg_string(const fs::path& p, const json& j, const char* key, const std::string& fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_string()) fail(p, quoted(key) + " is not a string");
  return j[key].get<std::string>();
}

json read_config(const fs::path& p) {
  std::ifstream in(p);
  if (!in) fail(p, "cannot open (a Hugging Face model folder needs config.json)");
  try {
    json j = json::parse(in);
    if (!j.is_object()) fail(p, "is not a JSON object");
    return j;
  } catch (const json::exception& e) {
    fail(p, std::string("invalid JSON: ") + e.what());
  }
}

enum class Family { llama, mistral, qwen2, opt };

const char* family_class(Family f) {
  switch (f) {
    case Family::llama: return "LlamaForCausalLM";
    case Family::mistral: return "MistralForCausalLM";
    case Family::qwen2: return "Qwen2ForCausalLM";
    case Family::opt: return "OPTForCausalLM";
  }
  return "?";
}

Family model_family(const fs::path& p, const json& j) {
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    if (!j["architectures"][0].is_string()) fail(p, "'architectures'[0] is not a string");
    arch = j["architectures"][0].get<std::string>();
  }
  const std::string type = cfg_string(p, j, "model_type", "");
  const std::pair<Family, const char*> known[] = {
      {Family::llama, "llama"}, {Family::mistral, "mistral"}, {Family::qwen2, "qwen2"}, {Family::opt, "opt"}};
  for (const auto& [family, name] : known)
    if (arch == family_class(family) || (arch.empty() && type == name)) return family;
  fail(p, "unsupported architecture '" + (arch.empty() ? type : arch) +
              "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, OPTForCausalLM)");
}

// ---- rope_scaling ----------------------------------------------------------------------

// A positive number inside the rope_scaling object `rs`.
double rope_param(const fs::path& p, const std::string& where, const json& rs, const char* key) {
  if (!rs.contains(key) || !rs[key].is_number()) fail(p, where + " needs a positive number " + quoted(key));
  const double x = rs[key].get<double>();
  if (!std::isfinite(x) || x <= 0) fail(p, where + "." + key + " = " + rs[key].dump() + " must be positive");
  return x;
}

// transformers' _compute_default_rope_parameters, in float as the runtime's RoPE table has it.
std::vector<float> default_inv_freq(float theta, int hd) {
  std::vector<float> f(size_t(hd / 2));
  for (int j = 0; j < hd / 2; ++j) f[size_t(j)] = 1.0f / std::pow(theta, float(2 * j) / float(hd));
  return f;
}

// transformers' _compute_llama3_parameters: high frequencies kept, low ones divided by
// `factor`, the band between interpolated smoothly in old_context / wavelength.
std::vector<float> llama3_inv_freq(const fs::path& p, const std::string& where, const json& rs, float theta, int hd) {
  const double factor = rope_param(p, where, rs, "factor"), low = rope_param(p, where, rs, "low_freq_factor"),
               high = rope_param(p, where, rs, "high_freq_factor"),
               old_context = rope_param(p, where, rs, "original_max_position_embeddings");
  if (!(high > low))
    fail(p, where + ": high_freq_factor must exceed low_freq_factor (the smoothing divides by their difference)");
  const double low_freq_wavelen = old_context / low, high_freq_wavelen = old_context / high;
  std::vector<float> out = default_inv_freq(theta, hd);
  for (float& f : out) {
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen < high_freq_wavelen) continue;
    if (wavelen > low_freq_wavelen) {
      f = float(f / factor);
    } else {
      const double smooth = (old_context / wavelen - low) / (high - low);
      f = float((1 - smooth) * f / factor + smooth * f);
    }
  }
  return out;
}

// Applies rope_scaling (or transformers v5's rope_parameters) to c: rope_inv_freq for llama3
// and linear, a window limit for dynamic; other types are refused.
void read_rope_scaling(const fs::path& p, const json& j, ModelConfig& c) {
  const bool has_scaling = j.contains("rope_scaling") && !j["rope_scaling"].is_null();
  const bool has_params = j.contains("rope_parameters") && !j["rope_parameters"].is_null();
  if (has_scaling && has_params && j["rope_scaling"] != j["rope_parameters"])
    fail(p, "'rope_scaling' and 'rope_parameters' disagree");
  if (!has_scaling && !has_params) return;
  const std::string where = has_params ? "rope_parameters" : "rope_scaling";
  const json& rs = j[where];
  if (!rs.is_object()) fail(p, quoted(where) + " is not an object");
  static const char* const understood[] = {"rope_type", "type", "factor", "low_freq_factor", "high_freq_factor",
                                           "original_max_position_embeddings", "rope_theta"};
  for (const auto& [key, value] : rs.items())
    if (std::find(std::begin(understood), std::end(understood), key) == std::end(understood))
      fail(p, where + "." + key + " is not supported (it would change RoPE in ways the runtime does not implement)");
  if (rs.contains("rope_theta")) c.rope_theta = float(rope_param(p, where, rs, "rope_theta"));
  const json type_json = rs.contains("rope_type") ? rs["rope_type"] : rs.contains("type") ? rs["type"] : json("default");
  if (!type_json.is_string()) fail(p, where + ".rope_type is not a string");
  const std::string type = type_json.get<std::string>();
  const int hd = c.head_dim();
  if (type == "default") return;
  if (type == "linear") {
    const double factor = rope_param(p, where, rs, "factor");
    c.rope_inv_freq = default_inv_freq(c.rope_theta, hd);
    for (float& f : c.rope_inv_freq) f = float(f / factor);
  } else if (type == "llama3") {
    c.rope_inv_freq = llama3_inv_freq(p, where, rs, c.rope_theta, hd);
  } else if (type == "dynamic") {
    // Dynamic NTK leaves inv_freq alone until a sequence outgrows max_position_embeddings, then
    // rescales it (and keeps the rescaled value for later calls): exact only up to there.
    rope_param(p, where, rs, "factor");
    c.max_exact_window = c.max_seq_len;
    c.max_exact_window_reason = "max_position_embeddings = " + std::to_string(c.max_seq_len) + " of " + p.string() +
                                ", beyond which rope_scaling 'dynamic' rescales RoPE (not implemented)";
  } else {
    fail(p, where + ".rope_type '" + type + "' is not supported (supported: default, linear, llama3, dynamic)");
  }
}

// ---- config.json -----------------------------------------------------------------------

// The optional tensors a LLaMA-family config promises.
struct Biases {
  bool qkv = false, o = false, mlp = false;
};

void check_equal_key(const fs::path& p, const json& j, const char* key, int want, const std::string& meaning) {
  if (j.contains(key) && !j[key].is_null() && cfg_int(p, j, key) != want)
    fail(p, quoted(key) + " = " + j[key].dump() + " differs from " + meaning + " = " + std::to_string(want) +
                " (not supported)");
}

// Mistral's sliding_window (MistralConfig's default 4096 when the key is absent) or Qwen2's,
// which applies only with use_sliding_window. Full causal attention equals sliding-window
// attention for windows no longer than the window, so longer ones are refused at run time.
void read_sliding_window(const fs::path& p, const json& j, Family family, ModelConfig& c) {
  std::optional<int> window;
  if (family == Family::mistral && !j.contains("sliding_window")) window = 4096;  // absent ≠ null
  if (family == Family::mistral && j.contains("sliding_window") && !j["sliding_window"].is_null())
    window = cfg_int(p, j, "sliding_window");
  if (family == Family::qwen2 && cfg_bool(p, j, "use_sliding_window", false))
    window = cfg_int(p, j, "sliding_window", 4096);
  if (!window) return;
  c.max_exact_window = c.max_exact_window ? std::min(c.max_exact_window, *window) : *window;
  c.max_exact_window_reason = "sliding_window = " + std::to_string(*window) + " of " + p.string() + " (" +
                              family_class(family) +
                              " attends to that many positions only; the runtime's attention is full causal, "
                              "exact only for windows up to that length)";
}

ModelConfig hf_llama_config(const fs::path& p, const json& j, Family family, Biases& biases) {
  ModelConfig c;
  c.arch = Arch::llama;
  c.dim = cfg_int(p, j, "hidden_size");
  c.hidden_dim = cfg_int(p, j, "intermediate_size");
  c.n_layers = cfg_int(p, j, "num_hidden_layers");
  c.n_heads = cfg_int(p, j, "num_attention_heads");
  c.n_kv_heads = cfg_int(p, j, "num_key_value_heads", c.n_heads);
  c.vocab_size = cfg_int(p, j, "vocab_size");
  const int default_context = family == Family::llama ? 2048 : family == Family::mistral ? 131072 : 32768;
  c.max_seq_len = cfg_int(p, j, "max_position_embeddings", default_context, 1, kMaxContext);
  c.norm_eps = float(cfg_num(p, j, "rms_norm_eps", 1e-6));
  if (c.norm_eps < 0) fail(p, "'rms_norm_eps' is negative");
  c.rope_theta = float(cfg_num(p, j, "rope_theta", 10000.0));
  if (!(c.rope_theta > 0)) fail(p, "'rope_theta' must be positive");
  c.tied_classifier = cfg_bool(p, j, "tie_word_embeddings", false);
  const std::string act = cfg_string(p, j, "hidden_act", "silu");
  if (act != "silu" && act != "swish") fail(p, "'hidden_act' = '" + act + "' is not supported (the MLP is SwiGLU: silu)");
  check_shapes(p, c);
  check_equal_key(p, j, "head_dim", c.head_dim(), "hidden_size / num_attention_heads");
  if (cfg_num(p, j, "partial_rotary_factor", 1.0) != 1.0)
    fail(p, "'partial_rotary_factor' = " + j["partial_rotary_factor"].dump() + " is not supported (RoPE rotates whole heads)");
  read_rope_scaling(p, j, c);
  read_sliding_window(p, j, family, c);
  if (family == Family::llama) {
    biases.qkv = biases.o = cfg_bool(p, j, "attention_bias", false);
    biases.mlp = cfg_bool(p, j, "mlp_bias", false);
  }
  if (family == Family::qwen2) biases.qkv = true;  // Qwen2Attention: q/k/v with bias, o_proj without
  return c;
}

ModelConfig hf_opt_config(const fs::path& p, const json& j, Biases& biases) {
  ModelConfig c;
  c.arch = Arch::opt;
  c.dim = cfg_int(p, j, "hidden_size");
  c.hidden_dim = cfg_int(p, j, "ffn_dim");
  c.n_layers = cfg_int(p, j, "num_hidden_layers");
  c.n_heads = cfg_int(p, j, "num_attention_heads");
  c.n_kv_heads = c.n_heads;
  c.vocab_size = cfg_int(p, j, "vocab_size");
  c.max_seq_len = cfg_int(p, j, "max_position_embeddings", 2048, 1, kMaxContext);
  c.norm_eps = 1e-5f;
  c.tied_classifier = true;
  if (!cfg_bool(p, j, "do_layer_norm_before", true))
    fail(p, "do_layer_norm_before = false (OPT-350M's post-norm layout) is not supported");
  if (cfg_int(p, j, "word_embed_proj_dim", c.dim) != c.dim)
    fail(p, "word_embed_proj_dim differing from hidden_size (OPT-350M) is not supported");
  if (cfg_string(p, j, "activation_function", "relu") != "relu") fail(p, "only the relu activation is supported for OPT");
  if (!cfg_bool(p, j, "layer_norm_elementwise_affine", true))
    fail(p, "'layer_norm_elementwise_affine' = false is not supported");
  if (cfg_bool(p, j, "_remove_final_layer_norm", false)) fail(p, "'_remove_final_layer_norm' = true is not supported");
  if (!cfg_bool(p, j, "tie_word_embeddings", true)) fail(p, "'tie_word_embeddings' = false is not supported for OPT");
  biases.qkv = biases.o = biases.mlp = cfg_bool(p, j, "enable_bias", true);
  check_shapes(p, c);
  return c;
}

// ---- the tensors a config implies ------------------------------------------------------

// One tensor the config implies, and the config keys that make it so (for messages).
struct Expected {
  std::string name;
  Shape shape;
  std::string because;
};

struct HfNorm {
  std::string name;
  Norm Block::*member;
  bool bias;  // LayerNorm (OPT) rather than RMSNorm
};

struct HfLinear {
  std::string name;
  Role role;
  int64_t out, in;
  std::string sized_by;
  bool bias;
  std::string bias_key;  // the config key that promises the bias
};

// Where a family keeps its tensors: global names, then per layer "<layers><l>.<name>".
struct HfLayout {
  std::string embed, positions, final_norm, lm_head = "lm_head.weight";
  bool final_norm_bias = false;
  std::string layers;
  std::vector<HfNorm> norms;
  std::vector<HfLinear> linears;
  std::vector<std::string> unused_buffers;  // per-layer tensors known and not needed
};

HfLayout llama_layout(const ModelConfig& c, const Biases& b) {
  const int64_t d = c.dim, f = c.hidden_dim, kv = int64_t(c.n_kv_heads) * c.head_dim();
  const std::string kv_size = "num_key_value_heads × head_dim", ab = "attention_bias", mb = "mlp_bias";
  HfLayout lay;
  lay.embed = "model.embed_tokens.weight";
  lay.final_norm = "model.norm";
  lay.layers = "model.layers.";
  lay.norms = {{"input_layernorm", &Block::attn_norm, false}, {"post_attention_layernorm", &Block::mlp_norm, false}};
  lay.linears = {{"self_attn.q_proj", Role::q, d, d, "hidden_size", b.qkv, ab},
                 {"self_attn.k_proj", Role::k, kv, d, kv_size, b.qkv, ab},
                 {"self_attn.v_proj", Role::v, kv, d, kv_size, b.qkv, ab},
                 {"self_attn.o_proj", Role::o, d, d, "hidden_size", b.o, ab},
                 {"mlp.gate_proj", Role::gate, f, d, "intermediate_size × hidden_size", b.mlp, mb},
                 {"mlp.up_proj", Role::up, f, d, "intermediate_size × hidden_size", b.mlp, mb},
                 {"mlp.down_proj", Role::down, d, f, "hidden_size × intermediate_size", b.mlp, mb}};
  lay.unused_buffers = {"self_attn.rotary_emb.inv_freq"};  // older transformers saved RoPE's buffer
  return lay;
}

HfLayout opt_layout(const ModelConfig& c, const Biases& b, const SafetensorsSet& st) {
  const int64_t d = c.dim, f = c.hidden_dim;
  // Checkpoints saved from OPTModel drop the "model." prefix.
  const std::string root = st.has("model.decoder.embed_tokens.weight") ? "model.decoder." : "decoder.";
  HfLayout lay;
  lay.embed = root + "embed_tokens.weight";
  lay.positions = root + "embed_positions.weight";
  lay.final_norm = root + "final_layer_norm";
  lay.final_norm_bias = true;
  lay.layers = root + "layers.";
  lay.norms = {{"self_attn_layer_norm", &Block::attn_norm, true}, {"final_layer_norm", &Block::mlp_norm, true}};
  const std::string eb = "enable_bias";
  lay.linears = {{"self_attn.q_proj", Role::q, d, d, "hidden_size", b.qkv, eb},
                 {"self_attn.k_proj", Role::k, d, d, "hidden_size", b.qkv, eb},
                 {"self_attn.v_proj", Role::v, d, d, "hidden_size", b.qkv, eb},
                 {"self_attn.out_proj", Role::o, d, d, "hidden_size", b.o, eb},
                 {"fc1", Role::fc1, f, d, "ffn_dim × hidden_size", b.mlp, eb},
                 {"fc2", Role::fc2, d, f, "hidden_size × ffn_dim", b.mlp, eb}};
  return lay;
}

// The tensors outside the layers. A tied classifier may still be stored (checked equal on load).
std::vector<Expected> global_tensors(const HfLayout& lay, const ModelConfig& c, const SafetensorsSet& st) {
  const int64_t d = c.dim;
  std::vector<Expected> out = {{lay.embed, {c.vocab_size, d}, "vocab_size × hidden_size"}};
  if (!lay.positions.empty())
    out.push_back({lay.positions, {int64_t(c.max_seq_len) + 2, d}, "max_position_embeddings + 2 × hidden_size"});
  out.push_back({lay.final_norm + ".weight", {d}, "hidden_size"});
  if (lay.final_norm_bias) out.push_back({lay.final_norm + ".bias", {d}, "hidden_size"});
  if (!c.tied_classifier || st.has(lay.lm_head))
    out.push_back({lay.lm_head, {c.vocab_size, d}, "vocab_size × hidden_size; tie_word_embeddings = false"});
  return out;
}

// Calls `visit` with the tensors of layer l.
template <class Visit>
void for_each_layer_tensor(const HfLayout& lay, const ModelConfig& c, int l, Visit&& visit) {
  const std::string pre = lay.layers + std::to_string(l) + ".";
  const std::string layer = "; layer " + std::to_string(l) + " of num_hidden_layers = " + std::to_string(c.n_layers);
  for (const HfNorm& n : lay.norms) {
    visit(Expected{pre + n.name + ".weight", {c.dim}, "hidden_size" + layer});
    if (n.bias) visit(Expected{pre + n.name + ".bias", {c.dim}, "hidden_size" + layer});
  }
  for (const HfLinear& s : lay.linears) {
    visit(Expected{pre + s.name + ".weight", {s.out, s.in}, s.sized_by + layer});
    if (s.bias) visit(Expected{pre + s.name + ".bias", {s.out}, s.bias_key + " = true" + layer});
  }
}

// True for "<layers><l>.<buffer>" with l a layer index and buffer a known unused one.
bool is_unused_buffer(const HfLayout& lay, const ModelConfig& c, const std::string& name) {
  if (!name.starts_with(lay.layers)) return false;
  const size_t dot = name.find('.', lay.layers.size());
  if (dot == std::string::npos || dot == lay.layers.size() || dot - lay.layers.size() > 9) return false;
  const std::string index = name.substr(lay.layers.size(), dot - lay.layers.size());
  if (!std::all_of(index.begin(), index.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) return false;
  if (std::stol(index) >= c.n_layers) return false;
  const std::string rest = name.substr(dot + 1);
  return std::find(lay.unused_buffers.begin(), lay.unused_buffers.end(), rest) != lay.unused_buffers.end();
}

std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Compares what config.json implies with the safetensors headers, reading no tensor data:
// a tensor missing, of another shape, or present but unused fails, naming it. Walks layer by
// layer, so a num_hidden_layers far beyond the checkpoint stops at the first absent layer.
void check_against_headers(const fs::path& config, Family family, const HfLayout& lay, const ModelConfig& c,
                           const SafetensorsSet& st) {
  std::set<std::string> expected;
  auto check = [&](const Expected& e) {
    if (!st.has(e.name))
      fail(config, "the checkpoint lacks tensor '" + e.name + "' of shape " + shape_text(e.shape) + " (" + e.because + ")");
    const Shape& have = st.info(e.name).shape;
    if (have != e.shape)
      fail(st.path_of(e.name), "tensor '" + e.name + "' has shape " + shape_text(have) + ", the config implies " +
                                   shape_text(e.shape) + " (" + config.string() + ": " + e.because + ")");
    expected.insert(e.name);
  };
  for (const Expected& e : global_tensors(lay, c, st)) check(e);
  for (int l = 0; l < c.n_layers; ++l) for_each_layer_tensor(lay, c, l, check);
  for (const std::string& name : st.names()) {
    if (expected.count(name) || is_unused_buffer(lay, c, name)) continue;
    std::string hint;
    if (name.ends_with(".bias"))
      hint = family == Family::llama ? " (a bias: is config.json's attention_bias / mlp_bias false?)"
                                     : std::string(" (") + family_class(family) + " has no such bias)";
    fail(st.path_of(name), "tensor '" + name + "' is not used by " + family_class(family) + " as " + config.string() +
                               " describes it" + hint + "; refusing to ignore it");
  }
}

// ---- reading -----------------------------------------------------------------------------

Vec hf_bias_to_interleaved(const Vec& b, int n_heads, int hd) {
  const Mat permuted = hf_rows_to_interleaved(Mat(b), n_heads, hd);
  return permuted.col(0);
}

void read_layer(Model& m, const HfLayout& lay, const SafetensorsSet& st, int l) {
  const ModelConfig& c = m.cfg;
  const std::string pre = lay.layers + std::to_string(l) + ".";
  Block& b = m.blocks[size_t(l)];
  for (const HfNorm& n : lay.norms)
    b.*n.member = Norm{st.vector(pre + n.name + ".weight", c.dim), n.bias ? st.vector(pre + n.name + ".bias", c.dim) : Vec()};
  for (const HfLinear& s : lay.linears)
    m.site({l, s.role}) = make_site(l, s.role, st.matrix(pre + s.name + ".weight", s.out, s.in),
                                    s.bias ? st.vector(pre + s.name + ".bias", s.out) : Vec());
  if (c.arch != Arch::llama) return;
  // HF rotates head halves, the runtime interleaved pairs: permute q/k rows (and biases) alike.
  const int hd = c.head_dim();
  for (auto [site, heads] : {std::pair{&b.q, c.n_heads}, std::pair{&b.k, c.n_kv_heads}}) {
    site->W = hf_rows_to_interleaved(site->W, heads, hd);
    if (site->b.size()) site->b = hf_bias_to_interleaved(site->b, heads, hd);
  }
}

void read_tensors(Model& m, const fs::path& config, const HfLayout& lay, const SafetensorsSet& st) {
  const ModelConfig& c = m.cfg;
  m.tok_embedding = st.matrix(lay.embed, c.vocab_size, c.dim);
  if (!lay.positions.empty()) m.pos_embedding = st.matrix(lay.positions, c.max_seq_len + 2, c.dim);
  m.blocks.resize(size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) read_layer(m, lay, st, l);
  m.final_norm = Norm{st.vector(lay.final_norm + ".weight", c.dim),
                      lay.final_norm_bias ? st.vector(lay.final_norm + ".bias", c.dim) : Vec()};
  if (!c.tied_classifier) {
    m.classifier = st.matrix(lay.lm_head, c.vocab_size, c.dim);
  } else if (st.has(lay.lm_head) && st.matrix(lay.lm_head, c.vocab_size, c.dim) != m.tok_embedding) {
    fail(config, "tie_word_embeddings is true, but the checkpoint's " + lay.lm_head + " differs from " + lay.embed +
                     " (tying would silently replace it)");
  }
}

}  // namespace

Model load_hf(const fs::path& folder, std::vector<fs::path>* files) {
  const fs::path config_path = folder / "config.json";
  const json j = read_config(config_path);
  const Family family = model_family(config_path, j);
  Model m;
  Biases biases;
  m.cfg = family == Family::opt ? hf_opt_config(config_path, j, biases) : hf_llama_config(config_path, j, family, biases);
  m.cfg.name = folder.filename().empty() ? folder.parent_path().filename().string() : folder.filename().string();
  SafetensorsSet st(folder);
  const HfLayout lay = family == Family::opt ? opt_layout(m.cfg, biases, st) : llama_layout(m.cfg, biases);
  check_against_headers(config_path, family, lay, m.cfg, st);
  read_tensors(m, config_path, lay, st);
  if (files) {
    files->push_back(config_path);
    for (const auto& f : st.files()) files->push_back(f);
  }
  return m;
}

}  // namespace fb

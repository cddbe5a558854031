#include "models/loaders.h"

#include "models/safetensors.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
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

namespace {

int cfg_int(const fs::path& p, const json& j, const char* key, std::optional<int> fallback = std::nullopt) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback) return *fallback;
    fail(p, std::string("missing integer '") + key + "'");
  }
  if (!j[key].is_number_integer()) fail(p, std::string("'") + key + "' is not an integer");
  return j[key].get<int>();
}

double cfg_num(const fs::path& p, const json& j, const char* key, double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) fail(p, std::string("'") + key + "' is not a number");
  return j[key].get<double>();
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

std::string model_type(const fs::path& p, const json& j) {
  std::string arch = j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()
                         ? j["architectures"][0].get<std::string>()
                         : "";
  const std::string type = j.value("model_type", "");
  if (arch == "LlamaForCausalLM" || (arch.empty() && type == "llama")) return "llama";
  if (arch == "OPTForCausalLM" || (arch.empty() && type == "opt")) return "opt";
  fail(p, "unsupported architecture '" + (arch.empty() ? type : arch) + "' (supported: LlamaForCausalLM, OPTForCausalLM)");
}

ModelConfig hf_llama_config(const fs::path& p, const json& j) {
  ModelConfig c;
  c.arch = Arch::llama;
  c.dim = cfg_int(p, j, "hidden_size");
  c.hidden_dim = cfg_int(p, j, "intermediate_size");
  c.n_layers = cfg_int(p, j, "num_hidden_layers");
  c.n_heads = cfg_int(p, j, "num_attention_heads");
  c.n_kv_heads = cfg_int(p, j, "num_key_value_heads", c.n_heads);
  c.vocab_size = cfg_int(p, j, "vocab_size");
  c.max_seq_len = cfg_int(p, j, "max_position_embeddings", 2048);
  c.norm_eps = float(cfg_num(p, j, "rms_norm_eps", 1e-6));
  c.rope_theta = float(cfg_num(p, j, "rope_theta", 10000.0));
  c.tied_classifier = j.value("tie_word_embeddings", false);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    fail(p, "rope_scaling is not supported (the runtime implements plain RoPE)");
  if (j.contains("head_dim") && !j["head_dim"].is_null() && c.n_heads > 0 && cfg_int(p, j, "head_dim") != c.dim / c.n_heads)
    fail(p, "head_dim differing from hidden_size / num_attention_heads is not supported");
  return c;
}

ModelConfig hf_opt_config(const fs::path& p, const json& j) {
  ModelConfig c;
  c.arch = Arch::opt;
  c.dim = cfg_int(p, j, "hidden_size");
  c.hidden_dim = cfg_int(p, j, "ffn_dim");
  c.n_layers = cfg_int(p, j, "num_hidden_layers");
  c.n_heads = cfg_int(p, j, "num_attention_heads");
  c.n_kv_heads = c.n_heads;
  c.vocab_size = cfg_int(p, j, "vocab_size");
  c.max_seq_len = cfg_int(p, j, "max_position_embeddings", 2048);
  c.norm_eps = 1e-5f;
  c.tied_classifier = true;
  if (!j.value("do_layer_norm_before", true))
    fail(p, "do_layer_norm_before = false (OPT-350M's post-norm layout) is not supported");
  if (cfg_int(p, j, "word_embed_proj_dim", c.dim) != c.dim)
    fail(p, "word_embed_proj_dim differing from hidden_size (OPT-350M) is not supported");
  if (j.value("activation_function", "relu") != "relu") fail(p, "only the relu activation is supported for OPT");
  return c;
}

void load_hf_llama(Model& m, const SafetensorsSet& st) {
  const ModelConfig& c = m.cfg;
  const int d = c.dim, f = c.hidden_dim, hd = c.head_dim(), kv = c.n_kv_heads * hd;
  m.tok_embedding = st.matrix("model.embed_tokens.weight", c.vocab_size, d);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    Block& b = m.blocks[l];
    b.attn_norm.gamma = st.vector(pre + "input_layernorm.weight", d);
    b.mlp_norm.gamma = st.vector(pre + "post_attention_layernorm.weight", d);
    b.q = make_site(l, Role::q, hf_rows_to_interleaved(st.matrix(pre + "self_attn.q_proj.weight", d, d), c.n_heads, hd));
    b.k = make_site(l, Role::k, hf_rows_to_interleaved(st.matrix(pre + "self_attn.k_proj.weight", kv, d), c.n_kv_heads, hd));
    b.v = make_site(l, Role::v, st.matrix(pre + "self_attn.v_proj.weight", kv, d));
    b.o = make_site(l, Role::o, st.matrix(pre + "self_attn.o_proj.weight", d, d));
    b.gate = make_site(l, Role::gate, st.matrix(pre + "mlp.gate_proj.weight", f, d));
    b.up = make_site(l, Role::up, st.matrix(pre + "mlp.up_proj.weight", f, d));
    b.down = make_site(l, Role::down, st.matrix(pre + "mlp.down_proj.weight", d, f));
  }
  m.final_norm.gamma = st.vector("model.norm.weight", d);
  if (!c.tied_classifier) m.classifier = st.matrix("lm_head.weight", c.vocab_size, d);
}

void load_hf_opt(Model& m, const SafetensorsSet& st) {
  const ModelConfig& c = m.cfg;
  const int d = c.dim, f = c.hidden_dim;
  // Checkpoints saved from OPTModel drop the "model." prefix.
  const std::string root = st.has("model.decoder.embed_tokens.weight") ? "model.decoder." : "decoder.";
  auto norm = [&](const std::string& name) { return Norm{st.vector(name + ".weight", d), st.vector(name + ".bias", d)}; };
  auto linear = [&](int l, Role role, const std::string& name, int n, int k) {
    return make_site(l, role, st.matrix(name + ".weight", n, k), st.vector(name + ".bias", n));
  };
  m.tok_embedding = st.matrix(root + "embed_tokens.weight", c.vocab_size, d);
  m.pos_embedding = st.matrix(root + "embed_positions.weight", c.max_seq_len + 2, d);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string pre = root + "layers." + std::to_string(l) + ".";
    Block& b = m.blocks[l];
    b.attn_norm = norm(pre + "self_attn_layer_norm");
    b.mlp_norm = norm(pre + "final_layer_norm");
    b.q = linear(l, Role::q, pre + "self_attn.q_proj", d, d);
    b.k = linear(l, Role::k, pre + "self_attn.k_proj", d, d);
    b.v = linear(l, Role::v, pre + "self_attn.v_proj", d, d);
    b.o = linear(l, Role::o, pre + "self_attn.out_proj", d, d);
    b.fc1 = linear(l, Role::fc1, pre + "fc1", f, d);
    b.fc2 = linear(l, Role::fc2, pre + "fc2", d, f);
  }
  m.final_norm = norm(root + "final_layer_norm");
}

}  // namespace

Model load_hf(const fs::path& folder, std::vector<fs::path>* files) {
  const fs::path config_path = folder / "config.json";
  const json j = read_config(config_path);
  const std::string type = model_type(config_path, j);
  Model m;
  m.cfg = type == "llama" ? hf_llama_config(config_path, j) : hf_opt_config(config_path, j);
  m.cfg.name = folder.filename().empty() ? folder.parent_path().filename().string() : folder.filename().string();
  check_shapes(config_path, m.cfg);
  SafetensorsSet st(folder);
  m.blocks.resize(size_t(m.cfg.n_layers));
  if (type == "llama")
    load_hf_llama(m, st);
  else
    load_hf_opt(m, st);
  if (files) {
    files->push_back(config_path);
    for (const auto& f : st.files()) files->push_back(f);
  }
  return m;
}

}  // namespace fb

// Hugging Face checkpoint formats beyond plain LLaMA: attention / MLP biases, Llama-3.1
// rope_scaling (and linear / dynamic), MistralForCausalLM (sliding_window), Qwen2ForCausalLM
// (q/k/v biases, tied embeddings) — each written as a hand-made folder in HF layout and
// compared against a forward computed here, independently, with Hugging Face's semantics
// (rotate_half RoPE on un-permuted weights, in double). Also: every tensor is used or the
// load fails naming it, config sizes are checked against the headers before allocating,
// and load_hf lists exactly the files it read.
#include "models/loaders.h"
#include "models/safetensors.h"
#include "method_test_util.h"
#include "test_util.h"

#include <chrono>
#include <functional>
#include <cmath>
#include <fstream>
#include <map>
#include <numbers>

namespace fb {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> v;
  double at(int64_t r, int64_t c) const { return v[size_t(r * shape[1] + c)]; }
};

// The shape of a tiny LLaMA-family checkpoint and which optional tensors it holds.
struct Spec {
  std::string arch = "LlamaForCausalLM";
  int hidden = 16, heads = 4, kv_heads = 2, inter = 24, layers = 2, vocab = 32, max_pos = 64;
  double theta = 10000.0, eps = 1e-6;
  bool qkv_bias = false, o_bias = false, mlp_bias = false, tied = false;
  int head_dim() const { return hidden / heads; }
};

struct Checkpoint {
  Spec spec;
  json config;
  std::map<std::string, Tensor> tensors;  // HF layout, as the folder holds them
};

Tensor random_tensor(std::vector<int64_t> shape, std::mt19937_64& rng, double mean, double sigma) {
  std::normal_distribution<float> nd{float(mean), float(sigma)};
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  Tensor t{std::move(shape), std::vector<float>(size_t(n))};
  for (float& x : t.v) x = nd(rng);
  return t;
}

json config_of(const Spec& s) {
  json c = {{"architectures", {s.arch}}, {"hidden_size", s.hidden}, {"intermediate_size", s.inter},
            {"num_hidden_layers", s.layers}, {"num_attention_heads", s.heads}, {"num_key_value_heads", s.kv_heads},
            {"vocab_size", s.vocab}, {"max_position_embeddings", s.max_pos}, {"rms_norm_eps", s.eps},
            {"rope_theta", s.theta}, {"tie_word_embeddings", s.tied}, {"hidden_act", "silu"}};
  if (s.arch == "LlamaForCausalLM") {
    c["attention_bias"] = s.qkv_bias;
    c["mlp_bias"] = s.mlp_bias;
  }
  if (s.arch == "MistralForCausalLM") c["sliding_window"] = nullptr;
  if (s.arch == "Qwen2ForCausalLM") c["use_sliding_window"] = false;
  return c;
}

Checkpoint make_checkpoint(const Spec& s, uint64_t seed = 5) {
  std::mt19937_64 rng(seed);
  Checkpoint ck{s, config_of(s), {}};
  const int64_t d = s.hidden, kv = int64_t(s.kv_heads) * s.head_dim(), f = s.inter;
  auto& t = ck.tensors;
  t["model.embed_tokens.weight"] = random_tensor({s.vocab, d}, rng, 0, 1);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto linear = [&](const std::string& name, int64_t n, int64_t k, bool bias) {
      t[p + name + ".weight"] = random_tensor({n, k}, rng, 0, 1.0 / std::sqrt(double(k)));
      if (bias) t[p + name + ".bias"] = random_tensor({n}, rng, 0, 0.5);
    };
    t[p + "input_layernorm.weight"] = random_tensor({d}, rng, 1, 0.1);
    t[p + "post_attention_layernorm.weight"] = random_tensor({d}, rng, 1, 0.1);
    linear("self_attn.q_proj", d, d, s.qkv_bias);
    linear("self_attn.k_proj", kv, d, s.qkv_bias);
    linear("self_attn.v_proj", kv, d, s.qkv_bias);
    linear("self_attn.o_proj", d, d, s.o_bias);
    linear("mlp.gate_proj", f, d, s.mlp_bias);
    linear("mlp.up_proj", f, d, s.mlp_bias);
    linear("mlp.down_proj", d, f, s.mlp_bias);
  }
  t["model.norm.weight"] = random_tensor({d}, rng, 1, 0.1);
  if (!s.tied) t["lm_head.weight"] = random_tensor({s.vocab, d}, rng, 0, 1);
  return ck;
}

std::vector<TensorToWrite> to_write(const std::map<std::string, Tensor>& tensors) {
  std::vector<TensorToWrite> out;
  for (const auto& [name, t] : tensors) out.push_back({name, t.shape, t.v.data(), "F32"});
  return out;
}

void write_json(const fs::path& p, const json& j) { std::ofstream(p) << j.dump(2); }

fs::path write_folder(const Checkpoint& ck, const fs::path& dir) {
  fs::create_directories(dir);
  write_json(dir / "config.json", ck.config);
  write_safetensors(dir / "model.safetensors", to_write(ck.tensors));
  return dir;
}

// ---- an independent forward with Hugging Face's semantics, in double -------------------

using MatD = Eigen::MatrixXd;

MatD hf_linear(const Checkpoint& ck, const std::string& name, const MatD& x) {
  const Tensor& w = ck.tensors.at(name + ".weight");
  const auto bias = ck.tensors.find(name + ".bias");
  MatD y(x.rows(), w.shape[0]);
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    for (int64_t n = 0; n < w.shape[0]; ++n) {
      double acc = bias == ck.tensors.end() ? 0.0 : bias->second.v[size_t(n)];
      for (int64_t k = 0; k < w.shape[1]; ++k) acc += x(t, k) * w.at(n, k);
      y(t, n) = acc;
    }
  return y;
}

MatD hf_rms_norm(const Checkpoint& ck, const std::string& name, const MatD& x) {
  const Tensor& g = ck.tensors.at(name);
  MatD y(x.rows(), x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const double inv = 1.0 / std::sqrt(x.row(t).squaredNorm() / double(x.cols()) + ck.spec.eps);
    for (Eigen::Index i = 0; i < x.cols(); ++i) y(t, i) = g.v[size_t(i)] * (x(t, i) * inv);
  }
  return y;
}

// HF's rotate_half: pair (j, j + hd/2) of every head turns by position · inv_freq[j].
void hf_rope(MatD& x, int hd, const std::vector<double>& inv_freq) {
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    for (Eigen::Index base = 0; base < x.cols(); base += hd)
      for (int j = 0; j < hd / 2; ++j) {
        const double a = double(t) * inv_freq[size_t(j)], x1 = x(t, base + j), x2 = x(t, base + j + hd / 2);
        x(t, base + j) = x1 * std::cos(a) - x2 * std::sin(a);
        x(t, base + j + hd / 2) = x2 * std::cos(a) + x1 * std::sin(a);
      }
}

MatD hf_attention(const Spec& s, const MatD& q, const MatD& k, const MatD& v) {
  const int hd = s.head_dim(), group = s.heads / s.kv_heads;
  MatD out = MatD::Zero(q.rows(), q.cols());
  for (int h = 0; h < s.heads; ++h)
    for (Eigen::Index t = 0; t < q.rows(); ++t) {
      std::vector<double> p(size_t(t + 1));
      double mx = -1e300, sum = 0;
      for (Eigen::Index j = 0; j <= t; ++j) {
        p[size_t(j)] = q.row(t).segment(h * hd, hd).dot(k.row(j).segment(h / group * hd, hd)) / std::sqrt(double(hd));
        mx = std::max(mx, p[size_t(j)]);
      }
      for (double& e : p) sum += (e = std::exp(e - mx));
      for (Eigen::Index j = 0; j <= t; ++j) out.row(t).segment(h * hd, hd) += p[size_t(j)] / sum * v.row(j).segment(h / group * hd, hd);
    }
  return out;
}

std::vector<double> default_inv_freq(double theta, int hd) {
  std::vector<double> f;
  for (int j = 0; j < hd / 2; ++j) f.push_back(1.0 / std::pow(theta, double(2 * j) / hd));
  return f;
}

MatD hf_forward(const Checkpoint& ck, const std::vector<int>& tokens, const std::vector<double>& inv_freq) {
  const Spec& s = ck.spec;
  const Tensor& emb = ck.tensors.at("model.embed_tokens.weight");
  MatD x(Eigen::Index(tokens.size()), s.hidden);
  for (size_t t = 0; t < tokens.size(); ++t)
    for (int i = 0; i < s.hidden; ++i) x(Eigen::Index(t), i) = emb.at(tokens[t], i);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    MatD h = hf_rms_norm(ck, p + "input_layernorm.weight", x);
    MatD q = hf_linear(ck, p + "self_attn.q_proj", h), k = hf_linear(ck, p + "self_attn.k_proj", h);
    const MatD v = hf_linear(ck, p + "self_attn.v_proj", h);
    hf_rope(q, s.head_dim(), inv_freq);
    hf_rope(k, s.head_dim(), inv_freq);
    x += hf_linear(ck, p + "self_attn.o_proj", hf_attention(s, q, k, v));
    h = hf_rms_norm(ck, p + "post_attention_layernorm.weight", x);
    const MatD g = hf_linear(ck, p + "mlp.gate_proj", h), u = hf_linear(ck, p + "mlp.up_proj", h);
    const MatD act = (g.array() / (1.0 + (-g.array()).exp()) * u.array()).matrix();
    x += hf_linear(ck, p + "mlp.down_proj", act);
  }
  const MatD h = hf_rms_norm(ck, "model.norm.weight", x);
  const Tensor& out = ck.tensors.count("lm_head.weight") ? ck.tensors.at("lm_head.weight") : emb;
  MatD logits(h.rows(), s.vocab);
  for (Eigen::Index t = 0; t < h.rows(); ++t)
    for (int n = 0; n < s.vocab; ++n) {
      double acc = 0;
      for (int i = 0; i < s.hidden; ++i) acc += h(t, i) * out.at(n, i);
      logits(t, n) = acc;
    }
  return logits;
}

const std::vector<int> kTokens = {1, 17, 5, 3, 30, 9, 25, 7, 7, 8, 12, 0};

double max_diff(const Mat& a, const MatD& b) { return (a.cast<double>() - b).cwiseAbs().maxCoeff(); }

// Loads the folder and checks the runtime's logits against the HF-semantics forward.
void expect_matches_hf(const Checkpoint& ck, const std::vector<double>& inv_freq, const std::string& what) {
  test::TempDir tmp;
  const Model m = load_hf(write_folder(ck, tmp / "m"));
  const MatD want = hf_forward(ck, kTokens, inv_freq);
  EXPECT_LE(max_diff(m.forward(kTokens), want), 2e-4) << what;
}

// What load_hf says of the folder, "no error" when it loads.
std::string hf_error(const fs::path& dir) {
  const std::string e = test::error_of([&] { load_hf(dir); });
  return e.empty() ? "no error" : e;
}

std::string load_error(const Checkpoint& ck) {
  test::TempDir tmp;
  return hf_error(write_folder(ck, tmp / "m"));
}

#define EXPECT_HAS(err, text) EXPECT_NE((err).find(text), std::string::npos) << (err)

// ---- biases ----------------------------------------------------------------------------

TEST(ModelHfFormats, LlamaAttentionAndMlpBiasesMatchHfForward) {
  Spec s;
  s.qkv_bias = s.o_bias = s.mlp_bias = true;
  const Checkpoint ck = make_checkpoint(s);
  expect_matches_hf(ck, default_inv_freq(s.theta, s.head_dim()), "llama with attention_bias and mlp_bias");
  // The biases matter: dropping them moves the logits far beyond the tolerance above.
  Checkpoint no_bias = ck;
  std::erase_if(no_bias.tensors, [](const auto& kv) { return kv.first.ends_with(".bias"); });
  EXPECT_GT((hf_forward(ck, kTokens, default_inv_freq(s.theta, 4)) - hf_forward(no_bias, kTokens, default_inv_freq(s.theta, 4)))
                .cwiseAbs()
                .maxCoeff(),
            0.1);
}

TEST(ModelHfFormats, BiasTensorsWithoutTheConfigFlagRefuse) {
  Spec s;
  s.qkv_bias = s.o_bias = true;
  Checkpoint ck = make_checkpoint(s);
  ck.config["attention_bias"] = false;  // the checkpoint has biases the config says are absent
  const std::string err = load_error(ck);
  EXPECT_HAS(err, "model.layers.0.self_attn.");
  EXPECT_HAS(err, ".bias");
  EXPECT_HAS(err, "attention_bias");
}

TEST(ModelHfFormats, ConfigFlagWithoutBiasTensorsRefuses) {
  Checkpoint ck = make_checkpoint(Spec{});
  ck.config["mlp_bias"] = true;
  const std::string err = load_error(ck);
  EXPECT_HAS(err, "mlp.gate_proj.bias");
  EXPECT_HAS(err, "mlp_bias");
}

// ---- Qwen2 and Mistral -----------------------------------------------------------------

TEST(ModelHfFormats, Qwen2WithQkvBiasesAndTiedEmbeddingsMatchesHfForward) {
  Spec s;
  s.arch = "Qwen2ForCausalLM";
  s.qkv_bias = true;
  s.tied = true;
  s.theta = 1000000.0;
  Checkpoint ck = make_checkpoint(s);
  ck.config["sliding_window"] = 4;  // present in Qwen2 configs, unused while use_sliding_window is false
  ck.config["max_window_layers"] = 1;
  expect_matches_hf(ck, default_inv_freq(s.theta, s.head_dim()), "qwen2");
}

TEST(ModelHfFormats, Qwen2WithoutItsQkvBiasesRefuses) {
  Spec s;
  s.arch = "Qwen2ForCausalLM";
  const std::string err = load_error(make_checkpoint(s));
  EXPECT_HAS(err, "model.layers.0.self_attn.q_proj.bias");
}

TEST(ModelHfFormats, Qwen2SlidingWindowLimitsTheWindow) {
  Spec s;
  s.arch = "Qwen2ForCausalLM";
  s.qkv_bias = true;
  Checkpoint ck = make_checkpoint(s);
  ck.config["use_sliding_window"] = true;
  ck.config["sliding_window"] = 8;
  ck.config["max_window_layers"] = 1;  // layer 1 slides
  test::TempDir tmp;
  const Model m = load_hf(write_folder(ck, tmp / "m"));
  const std::vector<int> eight(kTokens.begin(), kTokens.begin() + 8);
  EXPECT_LE(max_diff(m.forward(eight), hf_forward(ck, eight, default_inv_freq(s.theta, 4))), 2e-4);
  try {
    m.forward(kTokens);
    FAIL() << "a 12-token window ran over a sliding_window of 8";
  } catch (const std::exception& e) {
    EXPECT_HAS(std::string(e.what()), "sliding_window");
  }
}

TEST(ModelHfFormats, MistralMatchesHfForwardAndHonoursSlidingWindow) {
  Spec s;
  s.arch = "MistralForCausalLM";
  Checkpoint ck = make_checkpoint(s);
  expect_matches_hf(ck, default_inv_freq(s.theta, s.head_dim()), "mistral, sliding_window null");
  ck.config["sliding_window"] = 6;
  test::TempDir tmp;
  const Model m = load_hf(write_folder(ck, tmp / "m"));
  const std::vector<int> six(kTokens.begin(), kTokens.begin() + 6);
  EXPECT_LE(max_diff(m.forward(six), hf_forward(ck, six, default_inv_freq(s.theta, 4))), 2e-4);
  EXPECT_THROW(m.forward(kTokens), std::exception);
  // Absent, the key takes MistralConfig's default of 4096.
  ck.config.erase("sliding_window");
  ck.config["max_position_embeddings"] = 8192;
  test::TempDir tmp2;
  EXPECT_EQ(load_hf(write_folder(ck, tmp2 / "m")).cfg.max_exact_window, 4096);
}

// ---- rope_scaling ----------------------------------------------------------------------

// Hugging Face's _compute_llama3_parameters, written out band by band.
std::vector<double> llama3_inv_freq(double theta, int hd, double factor, double low, double high, double old_ctx) {
  std::vector<double> out;
  for (double f : default_inv_freq(theta, hd)) {
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen < old_ctx / high) {
      out.push_back(f);
    } else if (wavelen > old_ctx / low) {
      out.push_back(f / factor);
    } else {
      const double smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back((1 - smooth) * f / factor + smooth * f);
    }
  }
  return out;
}

Spec wide_heads() {
  Spec s;
  s.hidden = 64, s.heads = 2, s.kv_heads = 1, s.inter = 32, s.theta = 500000.0;  // head_dim 32: 16 frequencies
  return s;
}

TEST(ModelHfFormats, Llama3RopeScalingRescalesInvFreqByBand) {
  const Spec s = wide_heads();
  Checkpoint ck = make_checkpoint(s);
  ck.config["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                               {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
  // A short original context puts all three bands where a 12-token window feels them.
  const std::vector<double> want = llama3_inv_freq(s.theta, 32, 8.0, 1.0, 4.0, 64);
  const std::vector<double> plain = default_inv_freq(s.theta, 32);
  int kept = 0, divided = 0, smoothed = 0;
  for (size_t j = 0; j < want.size(); ++j) {
    kept += want[j] == plain[j];
    divided += want[j] == plain[j] / 8;
    smoothed += want[j] != plain[j] && want[j] != plain[j] / 8;
  }
  ASSERT_GT(kept * divided * smoothed, 0) << "the test model should cover all three bands";
  test::TempDir tmp;
  const Model m = load_hf(write_folder(ck, tmp / "m"));
  ASSERT_EQ(m.cfg.rope_inv_freq.size(), want.size());
  for (size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(m.cfg.rope_inv_freq[j], want[j], 1e-6 * want[j]) << j;
  EXPECT_LE(max_diff(m.forward(kTokens), hf_forward(ck, kTokens, want)), 2e-4);
  EXPECT_GT((hf_forward(ck, kTokens, want) - hf_forward(ck, kTokens, plain)).cwiseAbs().maxCoeff(), 1e-3);
}

TEST(ModelHfFormats, LinearRopeScalingDividesInvFreqAndDynamicIsExactWithinTheContext) {
  const Spec s = wide_heads();
  Checkpoint ck = make_checkpoint(s);
  ck.config["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  std::vector<double> want = default_inv_freq(s.theta, 32);
  for (double& f : want) f /= 4.0;
  expect_matches_hf(ck, want, "linear rope scaling");
  // dynamic NTK changes nothing until a window exceeds max_position_embeddings; beyond, it refuses.
  ck.config["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
  ck.config["max_position_embeddings"] = 10;
  test::TempDir tmp;
  const Model m = load_hf(write_folder(ck, tmp / "m"));
  const std::vector<int> ten(kTokens.begin(), kTokens.begin() + 10);
  EXPECT_LE(max_diff(m.forward(ten), hf_forward(ck, ten, default_inv_freq(s.theta, 32))), 2e-4);
  EXPECT_THROW(m.forward(kTokens), std::exception);
}

// transformers v5 writes rope_scaling as rope_parameters, with rope_theta inside.
TEST(ModelHfFormats, RopeParametersCarryThetaAndScaling) {
  Checkpoint ck = make_checkpoint(wide_heads());
  ck.config.erase("rope_theta");
  ck.config["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 5000.0}};
  std::vector<double> want = default_inv_freq(5000.0, 32);
  for (double& f : want) f /= 2.0;
  expect_matches_hf(ck, want, "rope_parameters");
  ck.config["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 3.0}};
  EXPECT_HAS(load_error(ck), "disagree");
}

TEST(ModelHfFormats, UnsupportedRopeScalingRefusesNamingTheKey) {
  Checkpoint ck = make_checkpoint(Spec{});
  ck.config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32}};
  std::string err = load_error(ck);
  EXPECT_HAS(err, "config.json");
  EXPECT_HAS(err, "rope_scaling");
  EXPECT_HAS(err, "yarn");
  ck.config["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};  // bands missing
  err = load_error(ck);
  EXPECT_HAS(err, "low_freq_factor");
}

// ---- every tensor used, every config key that changes the math understood ---------------

TEST(ModelHfFormats, UnknownTensorRefusesNamingIt) {
  Checkpoint ck = make_checkpoint(Spec{});
  std::mt19937_64 rng(1);
  ck.tensors["model.layers.1.self_attn.q_norm.weight"] = random_tensor({4}, rng, 1, 0);
  EXPECT_HAS(load_error(ck), "model.layers.1.self_attn.q_norm.weight");
}

TEST(ModelHfFormats, RotaryInvFreqBuffersAreSkippedByName) {
  Checkpoint ck = make_checkpoint(Spec{});
  std::mt19937_64 rng(1);
  ck.tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = random_tensor({2}, rng, 1, 0);
  expect_matches_hf(ck, default_inv_freq(10000.0, 4), "with persisted inv_freq buffers");
}

TEST(ModelHfFormats, MissingTensorRefusesNamingIt) {
  Checkpoint ck = make_checkpoint(Spec{});
  ck.tensors.erase("model.layers.1.mlp.up_proj.weight");
  EXPECT_HAS(load_error(ck), "model.layers.1.mlp.up_proj.weight");
}

TEST(ModelHfFormats, TieWordEmbeddingsMismatchRefuses) {
  Spec s;
  Checkpoint ck = make_checkpoint(s);
  ck.config["tie_word_embeddings"] = true;  // but lm_head.weight differs from the embedding
  std::string err = load_error(ck);
  EXPECT_HAS(err, "tie_word_embeddings");
  EXPECT_HAS(err, "lm_head.weight");
  // A tied checkpoint may still store lm_head.weight, as a copy of the embedding.
  ck.tensors["lm_head.weight"] = ck.tensors["model.embed_tokens.weight"];
  ck.spec.tied = true;
  expect_matches_hf(ck, default_inv_freq(s.theta, 4), "tied with a stored copy");
  // Untied without lm_head.weight.
  ck.tensors.erase("lm_head.weight");
  ck.config["tie_word_embeddings"] = false;
  err = load_error(ck);
  EXPECT_HAS(err, "lm_head.weight");
  EXPECT_HAS(err, "tie_word_embeddings");
}

TEST(ModelHfFormats, ConfigKeysThatChangeTheMathRefuse) {
  auto refusal = [](const char* key, json value) {
    Checkpoint ck = make_checkpoint(Spec{});
    ck.config[key] = std::move(value);
    return load_error(ck);
  };
  for (const auto& [key, value] : std::vector<std::pair<const char*, json>>{
           {"hidden_act", "gelu"}, {"head_dim", 8}, {"partial_rotary_factor", 0.5}}) {
    const std::string err = refusal(key, value);
    EXPECT_HAS(err, "config.json");
    EXPECT_HAS(err, key);
  }
  EXPECT_EQ(refusal("head_dim", 4), "no error");  // equal to hidden_size / num_attention_heads
}

// ---- sizes checked before allocating --------------------------------------------------

TEST(ModelHfFormats, AbsurdConfigSizesRefuseFastNamingConfigJson) {
  for (const auto& [key, value] : std::vector<std::pair<const char*, int64_t>>{
           {"num_hidden_layers", 2000000}, {"vocab_size", 1 << 30}, {"num_hidden_layers", 4294967298LL},
           {"intermediate_size", 0}, {"max_position_embeddings", 2000000000}}) {
    Checkpoint ck = make_checkpoint(Spec{});
    ck.config[key] = value;
    const auto start = std::chrono::steady_clock::now();
    const std::string err = load_error(ck);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 1.0) << key;
    EXPECT_HAS(err, "config.json");
    EXPECT_HAS(err, key);
  }
  Checkpoint ck = make_checkpoint(Spec{});
  ck.config["hidden_size"] = 1 << 28;
  const std::string err = load_error(ck);
  EXPECT_HAS(err, "model.embed_tokens.weight");
  EXPECT_HAS(err, "[32, 16]");
  EXPECT_HAS(err, "[32, 268435456]");
}

// ---- files read ------------------------------------------------------------------------

TEST(ModelHfFormats, ShardedLoadListsConfigIndexAndEveryShard) {
  test::TempDir tmp;
  const Checkpoint ck = make_checkpoint(Spec{});
  const fs::path dir = tmp / "sharded";
  fs::create_directories(dir);
  write_json(dir / "config.json", ck.config);
  std::map<std::string, Tensor> a, b;
  for (const auto& [name, t] : ck.tensors) (name.find("layers.1.") == std::string::npos ? a : b)[name] = t;
  write_safetensors(dir / "model-00001-of-00002.safetensors", to_write(a));
  write_safetensors(dir / "model-00002-of-00002.safetensors", to_write(b));
  json index = {{"metadata", json::object()}, {"weight_map", json::object()}};
  for (const auto& [name, t] : a) index["weight_map"][name] = "model-00001-of-00002.safetensors";
  for (const auto& [name, t] : b) index["weight_map"][name] = "model-00002-of-00002.safetensors";
  write_json(dir / "model.safetensors.index.json", index);
  std::vector<fs::path> files;
  load_hf(dir, &files);
  EXPECT_EQ(files, (std::vector<fs::path>{dir / "config.json", dir / "model.safetensors.index.json",
                                          dir / "model-00001-of-00002.safetensors",
                                          dir / "model-00002-of-00002.safetensors"}));
  // A shard tensor the index does not list would be silently ignored: refuse.
  index["weight_map"].erase("model.layers.1.mlp.up_proj.weight");
  write_json(dir / "model.safetensors.index.json", index);
  const std::string err = hf_error(dir);
  EXPECT_HAS(err, "model.layers.1.mlp.up_proj.weight");
}

// ---- methods refuse what they do not model --------------------------------------------

// FlatQuant calibrates against its own copy of the block (no biases, RoPE from rope_theta,
// full causal attention): a biased, rope-scaled or sliding-window model must be refused.
TEST(ModelHfFormats, FlatQuantRefusesBiasesRopeScalingAndSlidingWindows) {
  const json params = {{"w_bits", 4}, {"a_bits", 4}, {"epochs", 0}, {"nsamples", 1}, {"seqlen", 16}, {"cali_bsz", 1}};
  auto refusal = [&](const std::function<void(Model&)>& edit) {
    Model m = test::tiny_synthetic("llama-tiny", 3);
    edit(m);
    try {
      test::run_method("flatquant", m, nullptr, params);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_HAS(refusal([](Model& m) { m.blocks[1].k.b = Vec::Ones(m.blocks[1].k.out_features()); }), "bias");
  EXPECT_HAS(refusal([](Model& m) { m.cfg.rope_inv_freq.assign(size_t(m.cfg.head_dim() / 2), 0.5f); }), "rope_scaling");
  EXPECT_HAS(refusal([](Model& m) {
               m.cfg.max_exact_window = 8;
               m.cfg.max_exact_window_reason = "sliding_window = 8";
             }),
             "sliding_window = 8");
}

}  // namespace
}  // namespace fb

// Hugging Face folders: safetensors reading (F32/F16/BF16, sharded), LLaMA and OPT
// layouts written from synthetic models and read back, RoPE layout semantics, and the
// error messages for malformed folders.
#include "models/loaders.h"
#include "models/safetensors.h"
#include "models/source.h"
#include "models/synthetic.h"
#include "test_util.h"

#include <cmath>
#include <fstream>
#include <list>

namespace fb {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

Model tiny(const std::string& arch) {
  SyntheticOptions o;
  o.seed = 11;
  return make_synthetic_model(synthetic_config(arch), o);
}

// Collects tensors for a safetensors file; keeps derived copies alive until written.
struct TensorList {
  std::list<Mat> keep;
  std::vector<TensorToWrite> items;
  std::string dtype = "F32";
  void add(const std::string& name, const Mat& m) { items.push_back({name, {m.rows(), m.cols()}, m.data(), dtype}); }
  void add(const std::string& name, const Vec& v) { items.push_back({name, {v.size()}, v.data(), dtype}); }
  void add_copy(const std::string& name, Mat m) { add(name, keep.emplace_back(std::move(m))); }
};

void write_json(const fs::path& p, const json& j) { std::ofstream(p) << j.dump(2); }

json llama_config(const ModelConfig& c) {
  return {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", c.dim}, {"intermediate_size", c.hidden_dim},
          {"num_hidden_layers", c.n_layers}, {"num_attention_heads", c.n_heads},
          {"num_key_value_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_seq_len}, {"rms_norm_eps", c.norm_eps},
          {"tie_word_embeddings", c.tied_classifier}};
}

TensorList llama_tensors(const Model& m, const std::string& dtype) {
  TensorList t;
  t.dtype = dtype;
  const ModelConfig& c = m.cfg;
  t.add("model.embed_tokens.weight", m.tok_embedding);
  for (int l = 0; l < c.n_layers; ++l) {
    const Block& b = m.blocks[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.add(p + "input_layernorm.weight", b.attn_norm.gamma);
    t.add(p + "post_attention_layernorm.weight", b.mlp_norm.gamma);
    t.add_copy(p + "self_attn.q_proj.weight", interleaved_rows_to_hf(b.q.W, c.n_heads, c.head_dim()));
    t.add_copy(p + "self_attn.k_proj.weight", interleaved_rows_to_hf(b.k.W, c.n_kv_heads, c.head_dim()));
    t.add(p + "self_attn.v_proj.weight", b.v.W);
    t.add(p + "self_attn.o_proj.weight", b.o.W);
    t.add(p + "mlp.gate_proj.weight", b.gate.W);
    t.add(p + "mlp.up_proj.weight", b.up.W);
    t.add(p + "mlp.down_proj.weight", b.down.W);
  }
  t.add("model.norm.weight", m.final_norm.gamma);
  t.add("lm_head.weight", m.classifier);
  return t;
}

void write_llama_folder(const Model& m, const fs::path& dir, const std::string& dtype = "F32") {
  fs::create_directories(dir);
  write_json(dir / "config.json", llama_config(m.cfg));
  write_safetensors(dir / "model.safetensors", llama_tensors(m, dtype).items);
}

void write_opt_folder(const Model& m, const fs::path& dir) {
  fs::create_directories(dir);
  const ModelConfig& c = m.cfg;
  write_json(dir / "config.json",
             {{"architectures", {"OPTForCausalLM"}}, {"hidden_size", c.dim}, {"ffn_dim", c.hidden_dim},
              {"num_hidden_layers", c.n_layers}, {"num_attention_heads", c.n_heads}, {"vocab_size", c.vocab_size},
              {"max_position_embeddings", c.max_seq_len}, {"do_layer_norm_before", true},
              {"word_embed_proj_dim", c.dim}, {"activation_function", "relu"}});
  TensorList t;
  const std::string r = "model.decoder.";
  t.add(r + "embed_tokens.weight", m.tok_embedding);
  t.add(r + "embed_positions.weight", m.pos_embedding);
  auto linear = [&](const std::string& n, const LinearSite& s) {
    t.add(n + ".weight", s.W);
    t.add(n + ".bias", s.b);
  };
  auto norm = [&](const std::string& n, const Norm& s) {
    t.add(n + ".weight", s.gamma);
    t.add(n + ".bias", s.beta);
  };
  for (int l = 0; l < c.n_layers; ++l) {
    const Block& b = m.blocks[l];
    const std::string p = r + "layers." + std::to_string(l) + ".";
    norm(p + "self_attn_layer_norm", b.attn_norm);
    norm(p + "final_layer_norm", b.mlp_norm);
    linear(p + "self_attn.q_proj", b.q);
    linear(p + "self_attn.k_proj", b.k);
    linear(p + "self_attn.v_proj", b.v);
    linear(p + "self_attn.out_proj", b.o);
    linear(p + "fc1", b.fc1);
    linear(p + "fc2", b.fc2);
  }
  norm(r + "final_layer_norm", m.final_norm);
  write_safetensors(dir / "model.safetensors", t.items);
}

const std::vector<int> kTokens = {1, 17, 200, 3, 45, 99, 250, 7, 7, 8, 128, 0, 64};

TEST(ModelHf, LlamaFolderRoundTripsExactly) {
  test::TempDir tmp;
  const Model m = tiny("llama-tiny");
  write_llama_folder(m, tmp / "llama");
  std::vector<fs::path> files;
  const Model back = load_hf(tmp / "llama", &files);
  EXPECT_EQ(back.cfg.n_kv_heads, 2);
  EXPECT_FALSE(back.cfg.tied_classifier);
  EXPECT_EQ(files.size(), 2u);
  EXPECT_EQ(m.forward(kTokens), back.forward(kTokens));
}

TEST(ModelHf, OptFolderRoundTripsExactly) {
  test::TempDir tmp;
  const Model m = tiny("opt-tiny");
  write_opt_folder(m, tmp / "opt");
  const LoadedModel back = load_model({"", "hf", {{"path", (tmp / "opt").string()}}}, "/nonexistent");
  EXPECT_EQ(back.model.cfg.arch, Arch::opt);
  EXPECT_FALSE(back.tokenizer);
  EXPECT_EQ(m.forward(kTokens), back.model.forward(kTokens));
}

// Half-precision checkpoints: loading must equal the fp32 model with every weight
// rounded to that format (exactly — conversion to fp32 is lossless).
void expect_half_load_exact(const std::string& dtype, uint16_t (*to)(float), float (*from)(uint16_t)) {
  test::TempDir tmp;
  const Model m = tiny("llama-tiny");
  write_llama_folder(m, tmp / "half", dtype);
  Model rounded = m;
  auto round_all = [&](auto& x) {
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = from(to(x.data()[i]));
  };
  round_all(rounded.tok_embedding);
  round_all(rounded.classifier);
  round_all(rounded.final_norm.gamma);
  for (Block& b : rounded.blocks) {
    round_all(b.attn_norm.gamma);
    round_all(b.mlp_norm.gamma);
    for (LinearSite* s : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) round_all(s->W);
  }
  const Model back = load_hf(tmp / "half");
  EXPECT_EQ(back.blocks[1].gate.W, rounded.blocks[1].gate.W) << dtype;
  EXPECT_NE(back.blocks[1].gate.W, m.blocks[1].gate.W) << dtype << " should have lost precision";
  EXPECT_EQ(back.forward(kTokens), rounded.forward(kTokens)) << dtype;
}

TEST(ModelHf, Bf16WeightsLoad) { expect_half_load_exact("BF16", f32_to_bf16, bf16_to_f32); }
TEST(ModelHf, F16WeightsLoad) { expect_half_load_exact("F16", f32_to_f16, f16_to_f32); }

TEST(ModelHf, HalfConversionsKnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7C00);                   // overflow → inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie → even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie → even (up)
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(bf16_to_f32(0xC0A0), -5.0f);
  // Every finite half survives half → float → half.
  for (uint32_t h = 0; h < 0x10000; ++h)
    if ((h & 0x7C00) != 0x7C00) {
      ASSERT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h) << std::hex << h;
    }
}

TEST(ModelHf, ShardedCheckpointWithIndex) {
  test::TempDir tmp;
  const Model m = tiny("llama-tiny");
  const fs::path dir = tmp / "sharded";
  fs::create_directories(dir);
  write_json(dir / "config.json", llama_config(m.cfg));
  TensorList t = llama_tensors(m, "F32");
  const size_t half = t.items.size() / 2;
  std::vector<TensorToWrite> a(t.items.begin(), t.items.begin() + long(half)), b(t.items.begin() + long(half), t.items.end());
  write_safetensors(dir / "model-00001-of-00002.safetensors", a);
  write_safetensors(dir / "model-00002-of-00002.safetensors", b);
  json index = {{"metadata", json::object()}, {"weight_map", json::object()}};
  for (const auto& x : a) index["weight_map"][x.name] = "model-00001-of-00002.safetensors";
  for (const auto& x : b) index["weight_map"][x.name] = "model-00002-of-00002.safetensors";
  write_json(dir / "model.safetensors.index.json", index);
  std::vector<fs::path> files;
  const Model back = load_hf(dir, &files);
  EXPECT_EQ(files.size(), 4u);  // config.json, the index, both shards
  EXPECT_EQ(m.forward(kTokens), back.forward(kTokens));
}

// HF rotates the halves of a head (rotate_half); we rotate interleaved pairs. The row
// permutation must turn one into the other: rope_interleaved(P q) == P rope_half(q).
TEST(ModelHf, PermutationMapsRotateHalfToInterleavedRope) {
  const int hd = 8;
  const double theta = 10000.0, pos = 5;
  Mat q(hd, 1);
  for (int i = 0; i < hd; ++i) q(i, 0) = float(i + 1) * 0.37f;
  Mat half_rot(hd, 1), inter_rot(hd, 1);
  for (int j = 0; j < hd / 2; ++j) {
    const double a = pos * std::pow(theta, -2.0 * j / hd);
    half_rot(j, 0) = float(q(j, 0) * std::cos(a) - q(j + hd / 2, 0) * std::sin(a));
    half_rot(j + hd / 2, 0) = float(q(j + hd / 2, 0) * std::cos(a) + q(j, 0) * std::sin(a));
  }
  const Mat pq = hf_rows_to_interleaved(q, 1, hd);
  for (int j = 0; j < hd / 2; ++j) {
    const double a = pos * std::pow(theta, -2.0 * j / hd);
    inter_rot(2 * j, 0) = float(pq(2 * j, 0) * std::cos(a) - pq(2 * j + 1, 0) * std::sin(a));
    inter_rot(2 * j + 1, 0) = float(pq(2 * j, 0) * std::sin(a) + pq(2 * j + 1, 0) * std::cos(a));
  }
  EXPECT_LE((inter_rot - hf_rows_to_interleaved(half_rot, 1, hd)).cwiseAbs().maxCoeff(), 1e-6);
}

// ---- malformed folders -----------------------------------------------------------------

// What load_hf says of the folder, "no error" when it loads.
std::string hf_error(const fs::path& dir) {
  const std::string e = test::error_of([&] { load_hf(dir); });
  return e.empty() ? "no error" : e;
}

#define EXPECT_ERROR_HAS(err, text) EXPECT_NE((err).find(text), std::string::npos) << (err)

class ModelHfMalformed : public ::testing::Test {
 protected:
  void SetUp() override { write_llama_folder(tiny("llama-tiny"), dir); }
  std::string bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  void put(const fs::path& p, const std::string& b) { std::ofstream(p, std::ios::binary) << b; }
  test::TempDir tmp;
  fs::path dir = tmp / "m";
};

TEST_F(ModelHfMalformed, BadConfigJson) {
  put(dir / "config.json", "{\"hidden_size\": 64,");
  const std::string err = hf_error(dir);
  EXPECT_ERROR_HAS(err, "config.json");
  EXPECT_ERROR_HAS(err, "invalid JSON");
}

TEST_F(ModelHfMalformed, ShapeDisagreesWithConfig) {
  json c = llama_config(tiny("llama-tiny").cfg);
  c["intermediate_size"] = 180;
  write_json(dir / "config.json", c);
  const std::string err = hf_error(dir);
  EXPECT_ERROR_HAS(err, "model.safetensors");
  EXPECT_ERROR_HAS(err, "mlp.gate_proj.weight' has shape [176, 64], the config implies [180, 64]");
}

TEST_F(ModelHfMalformed, TruncatedSafetensors) {
  const std::string b = bytes(dir / "model.safetensors");
  put(dir / "model.safetensors", b.substr(0, b.size() - 1000));
  const std::string err = hf_error(dir);
  EXPECT_ERROR_HAS(err, "model.safetensors");
  EXPECT_ERROR_HAS(err, "truncated");
}

TEST_F(ModelHfMalformed, HeaderLongerThanFile) {
  std::string b = bytes(dir / "model.safetensors");
  const uint64_t huge = 1ull << 40;
  b.replace(0, 8, reinterpret_cast<const char*>(&huge), 8);
  put(dir / "model.safetensors", b);
  EXPECT_ERROR_HAS(hf_error(dir), "exceeds the file size");
}

TEST_F(ModelHfMalformed, HeaderNotJson) {
  std::string b = bytes(dir / "model.safetensors");
  b[8] = '#';
  put(dir / "model.safetensors", b);
  EXPECT_ERROR_HAS(hf_error(dir), "header is not valid JSON");
}

TEST_F(ModelHfMalformed, UnknownAndUnsupportedDtypes) {
  Vec x = Vec::Ones(4);
  std::vector<TensorToWrite> one = {{"model.norm.weight", {4}, x.data(), "F32"}};
  write_safetensors(dir / "model.safetensors", one);
  std::string b = bytes(dir / "model.safetensors");
  std::string q4 = b, i32 = b;
  q4.replace(q4.find("\"F32\""), 5, "\"Q4\" ");
  put(dir / "model.safetensors", q4);
  EXPECT_ERROR_HAS(hf_error(dir), "unknown dtype 'Q4'");
  // I32 is a valid safetensors dtype of the same size, but not a weight format.
  i32.replace(i32.find("\"F32\""), 5, "\"I32\"");
  put(dir / "model.safetensors", i32);
  SafetensorsFile f(dir / "model.safetensors");
  try {
    f.vector("model.norm.weight", 4);
    FAIL() << "I32 tensor was read as weights";
  } catch (const std::runtime_error& e) {
    EXPECT_ERROR_HAS(std::string(e.what()), "only F32, F16 and BF16");
  }
}

TEST_F(ModelHfMalformed, MissingTensorAndUnsupportedArchitecture) {
  Vec x = Vec::Ones(64);
  write_safetensors(dir / "model.safetensors", {{"model.norm.weight", {64}, x.data(), "F32"}});
  EXPECT_ERROR_HAS(hf_error(dir), "lacks tensor 'model.embed_tokens.weight'");
  write_json(dir / "config.json", {{"architectures", {"GPTNeoXForCausalLM"}}});
  EXPECT_ERROR_HAS(hf_error(dir), "unsupported architecture 'GPTNeoXForCausalLM'");
  fs::remove(dir / "config.json");
  EXPECT_ERROR_HAS(hf_error(dir), "needs config.json");
}

TEST_F(ModelHfMalformed, NoWeights) {
  fs::remove(dir / "model.safetensors");
  EXPECT_ERROR_HAS(hf_error(dir), "no model.safetensors or model.safetensors.index.json");
}

}  // namespace
}  // namespace fb

#include "models/convert.h"

#include "models/loaders.h"
#include "models/safetensors.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <list>
#include <stdexcept>

namespace fb {

namespace fs = std::filesystem;

namespace {

nlohmann::json hf_config(const ModelConfig& c) {
  return {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", c.dim},
      {"intermediate_size", c.hidden_dim},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_seq_len},
      {"rms_norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tied_classifier},
      {"hidden_act", "silu"},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", "float32"},
  };
}

}  // namespace

void convert_llama2c_to_hf(const fs::path& in_bin, const fs::path& tokenizer, const fs::path& out_dir) {
  const Model m = load_llama2c(in_bin);
  const ModelConfig& c = m.cfg;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw std::runtime_error(out_dir.string() + ": cannot create folder: " + ec.message());

  std::list<Mat> permuted;  // keeps the q/k copies alive until the file is written
  std::vector<TensorToWrite> tensors;
  auto add = [&](std::string name, const float* data, std::vector<int64_t> shape) {
    tensors.push_back({std::move(name), std::move(shape), data, "F32"});
  };
  auto add_mat = [&](std::string name, const Mat& w) { add(std::move(name), w.data(), {w.rows(), w.cols()}); };
  add_mat("model.embed_tokens.weight", m.tok_embedding);
  for (int l = 0; l < c.n_layers; ++l) {
    const Block& b = m.blocks[l];
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    add(pre + "input_layernorm.weight", b.attn_norm.gamma.data(), {b.attn_norm.gamma.size()});
    add(pre + "post_attention_layernorm.weight", b.mlp_norm.gamma.data(), {b.mlp_norm.gamma.size()});
    add_mat(pre + "self_attn.q_proj.weight", permuted.emplace_back(interleaved_rows_to_hf(b.q.W, c.n_heads, c.head_dim())));
    add_mat(pre + "self_attn.k_proj.weight", permuted.emplace_back(interleaved_rows_to_hf(b.k.W, c.n_kv_heads, c.head_dim())));
    add_mat(pre + "self_attn.v_proj.weight", b.v.W);
    add_mat(pre + "self_attn.o_proj.weight", b.o.W);
    add_mat(pre + "mlp.gate_proj.weight", b.gate.W);
    add_mat(pre + "mlp.up_proj.weight", b.up.W);
    add_mat(pre + "mlp.down_proj.weight", b.down.W);
  }
  add("model.norm.weight", m.final_norm.gamma.data(), {m.final_norm.gamma.size()});
  if (!c.tied_classifier) add_mat("lm_head.weight", m.classifier);
  write_safetensors(out_dir / "model.safetensors", tensors, {{"format", "pt"}, {"converted_from", in_bin.filename().string()}});

  const fs::path config = out_dir / "config.json";
  std::ofstream(config) << hf_config(c).dump(2) << "\n";
  if (!fs::exists(config)) throw std::runtime_error(config.string() + ": cannot write");
  if (!tokenizer.empty()) {
    fs::copy_file(tokenizer, out_dir / "tokenizer.model", fs::copy_options::overwrite_existing, ec);
    if (ec) throw std::runtime_error(tokenizer.string() + ": cannot copy to " + (out_dir / "tokenizer.model").string() + ": " + ec.message());
  }
}

}  // namespace fb

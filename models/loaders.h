// Weight loaders behind the llama2c / hf model sources (models/sources.cpp registers them).
// All of them throw std::runtime_error naming the file and what is wrong.
#pragma once

#include "models/model.h"

#include <filesystem>
#include <vector>

namespace fb {

// A llama2.c checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size — negative for an unshared classifier —, seq_len), then fp32 tensors.
Model load_llama2c(const std::filesystem::path& bin);

// A Hugging Face folder (config.json + safetensors) of LlamaForCausalLM (attention_bias,
// mlp_bias, rope_scaling default / linear / llama3 / dynamic), MistralForCausalLM,
// Qwen2ForCausalLM or OPTForCausalLM. Every tensor is used or the load fails naming it (the
// one known exception: persisted rotary_emb.inv_freq buffers); config sizes are checked
// against the safetensors headers before anything is allocated; config keys that change the
// math are implemented as transformers does or refused by name. A sliding_window (or dynamic
// RoPE) sets cfg.max_exact_window: longer windows are refused by Model::forward.
// `files` receives every file read: config.json, the shard index if any, each safetensors file.
Model load_hf(const std::filesystem::path& folder, std::vector<std::filesystem::path>* files = nullptr);

// Hugging Face LLaMA checkpoints store q/k rows so that RoPE rotates the two halves of each
// head (rotate_half); the runtime (like llama2.c and Meta's original) rotates interleaved
// pairs. Row h·hd + s·hd/2 + j (HF) ↔ row h·hd + 2j + s (interleaved), s ∈ {0,1}.
Mat hf_rows_to_interleaved(const Mat& w, int n_heads, int head_dim);
Mat interleaved_rows_to_hf(const Mat& w, int n_heads, int head_dim);

}  // namespace fb

// The CUDA side of the cuda execution backend (backends/cuda.cpp): a decoder held on one GPU
// and run over packed batches of token sequences. Plain C++17 with no Eigen or harness types,
// so nvcc compiles it alone; the host side converts a Model into HostModel.
//
// Numerics (docs/backends.md#the-cuda-execution-backend): weights and GEMM inputs in the chosen
// dtype (fp32 for exactness checks, fp16, bf16), every GEMM accumulating in fp32 (cuBLAS,
// no TF32), the residual stream, norms, RoPE, attention and the log-softmax in fp32 (the
// softmax sum in double). Attention is causal over each sequence of the packed batch, with
// online softmax over key tiles, so no T×T score matrix exists; logits are made in chunks of
// rows and reduced to one score per target at once, so the full logits are never kept.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fb::cuda_exec {

enum class DType { f32, f16, bf16 };

// The visible devices, or 0 with `why` set (no driver, no device).
int device_count(std::string* why);

struct DeviceInfo {
  std::string name;
  int sm_count = 0, cc_major = 0, cc_minor = 0;
  size_t total_bytes = 0, free_bytes = 0;
  int runtime_version = 0, driver_version = 0;
};
DeviceInfo device_info(int device);

struct HostLinear {
  const float* W = nullptr;  // N × K, row-major (PyTorch layout)
  const float* b = nullptr;  // N, or null
  int N = 0, K = 0;
};
struct HostNorm {
  const float* gamma = nullptr;
  const float* beta = nullptr;  // null: RMSNorm
};
struct HostLayer {
  HostNorm attn_norm, mlp_norm;
  HostLinear q, k, v, o;
  HostLinear gate, up, down;  // LLaMA
  HostLinear fc1, fc2;        // OPT
};
struct HostModel {
  bool llama = true;
  int dim = 0, hidden = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab = 0, max_seq = 0;
  float eps = 1e-5f;
  const float* tok_embedding = nullptr;  // vocab × dim
  const float* pos_embedding = nullptr;  // OPT: (max_seq + 2) × dim; null for LLaMA
  const float* classifier = nullptr;     // vocab × dim; may equal tok_embedding (tied)
  std::vector<HostLayer> layers;
  HostNorm final_norm;
  // LLaMA: cos and sin of every (position, pair), rope_rows × head_dim/2, as the CPU runtime makes them.
  std::vector<float> rope_cos, rope_sin;
  int rope_rows = 0;
};

// One packed batch: sequences back to back in `tokens`, sequence s at rows
// [offsets[s], offsets[s+1]); target[r] is the token scored at row r, or -1 for none.
struct Batch {
  std::vector<int> tokens;
  std::vector<int> offsets{0};
  std::vector<int> targets;
};

class DeviceModel {
 public:
  // Uploads the weights; `max_batch_tokens` sizes the activation buffers.
  DeviceModel(const HostModel& m, int device, DType dtype, int max_batch_tokens);
  ~DeviceModel();
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  // For every row with a target: its log-probability and whether it is the row's first arg-max.
  void score(const Batch& batch, std::vector<double>& logprob, std::vector<uint8_t>& greedy);
  // Full logits of one sequence, T × vocab row-major (checks against the reference).
  std::vector<float> logits(const std::vector<int>& tokens);

  int max_batch_tokens() const;
  size_t weight_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fb::cuda_exec

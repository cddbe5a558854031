// The CUDA side of the cuda execution backend (backends/cuda.cpp): a decoder held on one GPU
// and run over packed batches of token sequences. Plain C++17 with no Eigen or harness types,
// so nvcc compiles it alone; the host side converts a Model into HostModel.
//
// Methods' operators run as their plans (models/op_plan.h): per site, the input steps (clip,
// Kronecker, flatten, fake-quant) in fp32 ahead of the GEMM; sites of one fused GEMM (q|k|v,
// gate|up) stay fused when their input steps are the same, else each runs its own GEMM.
//
// Numerics (docs/backends.md#the-cuda-execution-backend): weights and GEMM inputs in the chosen
// dtype (fp32 for exactness checks, fp16, bf16), every GEMM accumulating in fp32 (cuBLAS,
// no TF32), the residual stream, norms, RoPE, attention and the log-softmax in fp32 (the
// softmax sum in double). Attention is causal over each sequence of the packed batch, with
// online softmax over key tiles, so no T×T score matrix exists; logits are made in chunks of
// rows and reduced to one score per target at once, so the full logits are never kept.
#pragma once

#include <cstdint>
#include <map>
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

// A fake-quantization step, by models/op_plan.h's PlanQuant rule (the host side copies it).
struct HostQuant {
  enum Scope { none = 0, row_groups = 1, sequence = 2, fixed = 3 };  // sequence: the plan's "tensor", one window
  int scope = none;
  int bits = 16;
  bool sym = true;
  int group = 0;  // row_groups: values per group, 0 = the whole row
  float clip_hi = 1, clip_lo = 1, scale = 1, zero = 0;
  bool reciprocal = false;
  std::vector<float> step_offset;  // per column, or empty
};
// What an operator does to its input before the GEMM (models/op_plan.h's LinearPlan steps).
struct HostInput {
  std::vector<float> clip_limit;              // per input channel, or empty
  std::vector<float> kron_left, kron_right;   // n1×n1 and n2×n2 row-major, or empty
  int n1 = 0, n2 = 0;
  std::vector<int> flat_src;                  // flatten: source channel of each column, or empty
  std::vector<float> flat_div;
  int flat_out = 0;                           // the padded width
  HostQuant quant;
  bool any() const { return !clip_limit.empty() || !kron_left.empty() || !flat_src.empty() || quant.scope != 0; }
};
bool same_input(const HostInput& a, const HostInput& b);

struct HostLinear {
  const float* W = nullptr;  // N × K, row-major (PyTorch layout); K is the GEMM's width (after a flatten)
  const float* b = nullptr;  // N, or null
  int N = 0, K = 0;
  int K_in = 0;              // the site's input width (K unless a flatten widens it)
  HostInput in;
};
// One edit of q, k or v after RoPE (models/op_plan.h's AttentionStep).
struct HostAttentionStep {
  int tensor = 0;                    // 0 q, 1 k, 2 v
  std::vector<float> head_transform; // head_dim × head_dim row-major, or empty
  HostQuant quant;
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
  std::vector<HostAttentionStep> attention;  // in order
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
  std::string attention_kernel() const;  // which attention kernel runs
  // Device milliseconds per stage of the forward and scoring so far (gemm qkv, attention, …).
  std::map<std::string, double> stage_ms() const;
  void reset_stage_ms();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fb::cuda_exec

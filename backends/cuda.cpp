// The CUDA execution backend: a prepared Model uploaded to one GPU (backends/cuda/device_model.h)
// and scored there in packed batches. Built where nvcc is present (backends/CMakeLists.txt);
// without a GPU it says so and every CUDA job fails with that reason.
//
// What it runs: the decoder (LLaMA-style and OPT) with every method's deployed operators and
// attention edits executed from their plans (models/op_plan.h): fake-quant weights, activation
// quantizers of every scope, SmoothQuant's and FlattenQuant's folds (in the weights and norms),
// FlattenQuant's clip + flatten + per-tensor quantizer, FlatQuant's Kronecker transforms,
// learned clipping and per-head K transforms, KV-cache quantization. An operator without a plan
// (the integer GEMMs of real_quant) is refused with the site and operator named, never run as
// something else.
#include "backends/backend.h"
#include "backends/cuda/device_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb {
namespace {

// Tokens per packed batch; the buffers are sized for it (and for one whole window at least).
constexpr int kBatchTokens = 16384;

cuda_exec::DType dtype_of(const std::string& name) {
  if (name == "fp32") return cuda_exec::DType::f32;
  if (name == "bf16") return cuda_exec::DType::bf16;
  return cuda_exec::DType::f16;
}

void refuse_what_it_cannot_run(const Model& m) {
  for (const LinearSite* s : m.sites())
    if (s->op && !s->op->plan())
      throw std::runtime_error(fmt::format(
          "cuda backend: layer {} {} runs '{}', which has no CUDA form (integer GEMMs run on the CPU); run this job "
          "with device: cpu, or with real_quant: false for its fake-quant form",
          s->id.layer, role_name(s->id.role), s->op->describe()));
  for (int l = 0; l < m.cfg.n_layers; ++l)
    if (!attention_plan(m.attention_hook, l))
      throw std::runtime_error(fmt::format(
          "cuda backend: layer {}'s attention hook is not a deployed operator with a plan (models/op_plan.h); run it "
          "with device: cpu", l));
  if (m.site_hook) throw std::runtime_error("cuda backend: a site hook (calibration) cannot observe a GPU forward");
}

cuda_exec::HostQuant host_quant(const PlanQuant& q) {
  cuda_exec::HostQuant h;
  switch (q.scope) {
    case PlanQuant::Scope::none: h.scope = cuda_exec::HostQuant::none; break;
    case PlanQuant::Scope::row_groups: h.scope = cuda_exec::HostQuant::row_groups; break;
    case PlanQuant::Scope::tensor: h.scope = cuda_exec::HostQuant::sequence; break;  // one window per sequence
    case PlanQuant::Scope::fixed: h.scope = cuda_exec::HostQuant::fixed; break;
  }
  h.bits = q.bits, h.sym = q.sym, h.group = q.group, h.clip_hi = q.clip.hi, h.clip_lo = q.clip.lo;
  h.scale = q.scale, h.zero = q.zero, h.reciprocal = q.reciprocal, h.step_offset = q.step_offset;
  return h;
}

std::vector<float> values(const Mat& m) { return std::vector<float>(m.data(), m.data() + m.size()); }

// A site as the device runs it: the dense weight, or its operator's plan.
cuda_exec::HostLinear host_linear(const LinearSite& s) {
  cuda_exec::HostLinear h{s.W.data(), s.b.size() ? s.b.data() : nullptr, s.out_features(), s.in_features(), s.in_features(), {}};
  if (!s.op) return h;
  const LinearPlan p = *s.op->plan();
  h.W = p.weight->data(), h.N = int(p.weight->rows()), h.K = int(p.weight->cols());
  h.b = p.bias ? p.bias->data() : nullptr;
  h.in.clip_limit = p.clip_limit;
  if (p.kron_left) {
    h.in.kron_left = values(*p.kron_left), h.in.kron_right = values(*p.kron_right);
    h.in.n1 = int(p.kron_left->rows()), h.in.n2 = int(p.kron_right->rows());
  }
  if (p.flatten) {
    h.in.flat_src.assign(p.flatten->src.begin(), p.flatten->src.end());
    h.in.flat_div = p.flatten->inv_div;
    h.in.flat_out = int(p.flatten->k_out);
  }
  h.in.quant = host_quant(p.quant);
  return h;
}

std::vector<cuda_exec::HostAttentionStep> host_attention(const Model& m, int layer) {
  std::vector<cuda_exec::HostAttentionStep> out;
  const std::optional<AttentionPlan> plan = attention_plan(m.attention_hook, layer);  // refuse_what_it_cannot_run: set
  for (const AttentionStep& s : *plan) {
    cuda_exec::HostAttentionStep h;
    h.tensor = s.tensor == AttentionStep::Tensor::q ? 0 : (s.tensor == AttentionStep::Tensor::k ? 1 : 2);
    if (s.head_transform) h.head_transform = values(*s.head_transform);
    h.quant = host_quant(s.quant);
    out.push_back(std::move(h));
  }
  return out;
}
cuda_exec::HostNorm host_norm(const Norm& n) { return {n.gamma.data(), n.beta.size() ? n.beta.data() : nullptr}; }

cuda_exec::HostModel host_model(const Model& m) {
  const ModelConfig& c = m.cfg;
  cuda_exec::HostModel h;
  h.llama = c.arch == Arch::llama;
  h.dim = c.dim, h.hidden = c.hidden_dim, h.n_layers = c.n_layers, h.n_heads = c.n_heads;
  h.n_kv_heads = c.n_kv_heads, h.vocab = c.vocab_size, h.max_seq = c.max_seq_len, h.eps = c.norm_eps;
  h.tok_embedding = m.tok_embedding.data();
  h.pos_embedding = h.llama ? nullptr : m.pos_embedding.data();
  h.classifier = m.output_matrix().data();
  for (const Block& b : m.blocks) {
    cuda_exec::HostLayer l;
    l.attention = host_attention(m, int(h.layers.size()));
    l.attn_norm = host_norm(b.attn_norm), l.mlp_norm = host_norm(b.mlp_norm);
    l.q = host_linear(b.q), l.k = host_linear(b.k), l.v = host_linear(b.v), l.o = host_linear(b.o);
    if (h.llama)
      l.gate = host_linear(b.gate), l.up = host_linear(b.up), l.down = host_linear(b.down);
    else
      l.fc1 = host_linear(b.fc1), l.fc2 = host_linear(b.fc2);
    h.layers.push_back(l);
  }
  h.final_norm = host_norm(m.final_norm);
  // The CPU rotates any window it is given, so the table covers the longest sequence a batch holds.
  if (h.llama) rope_tables(c, std::max(c.max_seq_len, kBatchTokens), h.rope_cos, h.rope_sin), h.rope_rows = std::max(c.max_seq_len, kBatchTokens);
  return h;
}

class CudaRunner final : public ModelRunner {
 public:
  CudaRunner(const Model& m, const Placement& p)
      : cfg_(m.cfg), placement_(p), info_(cuda_exec::device_info(p.device)),
        device_(host_model(m), p.device, dtype_of(p.dtype), kBatchTokens) {
    note_memory();
  }

  void score(std::span<const ScoreRequest> requests, std::vector<std::vector<TokenScore>>& out,
             const ScoreOptions& opt, Progress& progress) override {
    out.assign(requests.size(), {});
    progress.begin(opt.what, long(requests.size()));
    size_t next = 0;
    while (next < requests.size()) {
      cuda_exec::Batch batch;
      const size_t first = next;
      for (; next < requests.size(); ++next) {
        const ScoreRequest& r = requests[next];
        if (r.targets.empty()) continue;  // nothing to score: no forward (as on the CPU)
        check_window(cfg_, r.input);
        if (r.first_row < 0 || r.first_row + long(r.targets.size()) > long(r.input.size()))
          throw std::logic_error("cuda backend: a request's targets run past its input");
        if (next > first && batch.tokens.size() + r.input.size() > size_t(device_.max_batch_tokens())) break;
        const size_t base = batch.tokens.size();
        batch.tokens.insert(batch.tokens.end(), r.input.begin(), r.input.end());
        batch.targets.resize(batch.tokens.size(), -1);
        for (size_t j = 0; j < r.targets.size(); ++j) batch.targets[base + size_t(r.first_row) + j] = r.targets[j];
        batch.offsets.push_back(int(batch.tokens.size()));
      }
      std::vector<double> logprob;
      std::vector<uint8_t> greedy;
      if (!batch.tokens.empty()) device_.score(batch, logprob, greedy);
      size_t at = 0;  // scored rows come back in row order: request by request, target by target
      for (size_t i = first; i < next; ++i)
        for (size_t j = 0; j < requests[i].targets.size(); ++j, ++at) out[i].push_back({logprob[at], greedy[at] != 0});
      progress.step(long(next));
      note_memory();
    }
    progress.end();
  }

  // Device memory this runner took: free before the upload less the least free seen since (the
  // buffers are sized once, so after a batch the cuBLAS workspace is all that can be added).
  std::map<std::string, double> usage_mib() const override {
    return {{"gpu_peak_mib", double(info_.free_bytes - std::min(info_.free_bytes, min_free_)) / (1 << 20)}};
  }

  Mat logits(std::span<const int> window) override {
    check_window(cfg_, window);
    const std::vector<float> l = device_.logits(std::vector<int>(window.begin(), window.end()));
    return Eigen::Map<const Mat>(l.data(), Eigen::Index(window.size()), cfg_.vocab_size);
  }

  void begin_job() override { device_.reset_stage_ms(); }

  nlohmann::json where() const override {
    return {{"backend", "cuda"},
            {"device_index", placement_.device},
            {"device", info_.name},
            {"compute_capability", fmt::format("{}.{}", info_.cc_major, info_.cc_minor)},
            {"sm_count", info_.sm_count},
            {"memory_mib", info_.total_bytes >> 20},
            {"cuda_runtime", info_.runtime_version},
            {"cuda_driver", info_.driver_version},
            {"dtype", placement_.dtype},
            {"weights_mib", device_.weight_bytes() >> 20},
            {"batch_tokens", device_.max_batch_tokens()},
            {"attention", device_.attention_kernel()},
            {"stage_ms", stage_ms()}};
  }

 private:
  // Device time per stage so far, to the microsecond (device_model.cu's StageClock).
  nlohmann::json stage_ms() const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [stage, ms] : device_.stage_ms()) j[stage] = std::round(ms * 1000) / 1000;
    return j;
  }
  void note_memory() { min_free_ = std::min(min_free_, cuda_exec::device_info(placement_.device).free_bytes); }

  ModelConfig cfg_;
  Placement placement_;
  cuda_exec::DeviceInfo info_;  // taken before the upload: free_bytes is the baseline
  cuda_exec::DeviceModel device_;
  size_t min_free_ = info_.free_bytes;
};

std::string cuda_unavailable() {
  std::string why;
  return cuda_exec::device_count(&why) > 0 ? std::string() : "no usable GPU (" + why + ")";
}

std::unique_ptr<ModelRunner> make_cuda_runner(const Model& m, const Placement& p) {
  refuse_what_it_cannot_run(m);
  std::string why;
  const int count = cuda_exec::device_count(&why);
  if (count == 0) throw std::runtime_error("cuda backend: no usable GPU (" + why + ")");
  if (p.device >= count)
    throw std::runtime_error(fmt::format("device cuda:{}: only {} GPU(s) are visible", p.device, count));
  return std::make_unique<CudaRunner>(m, p);
}

FB_REGISTER_EXECUTION_BACKEND(ExecutionBackendInfo{
    "cuda",
    "one NVIDIA GPU: weights resident in fp16, bf16 or fp32, cuBLAS GEMMs with fp32 accumulation, fused causal "
    "attention and log-softmax (docs/backends.md)",
    {"fp16", "bf16", "fp32"},
    cuda_unavailable,
    make_cuda_runner});

}  // namespace
}  // namespace fb

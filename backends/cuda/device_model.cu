// The decoder on one GPU (backends/cuda/device_model.h). Each op is a small kernel written to
// follow the CPU runtime's formula (models/model.cpp, models/forward_kernels_impl.inc), in the
// same order of operations where it matters; the GEMMs are cuBLAS.
#include "backends/cuda/device_model.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <type_traits>
#include <numeric>
#include <stdexcept>
#include <string>

namespace fb::cuda_exec {
namespace {

void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("cuda backend: ") + what + ": " + cudaGetErrorString(e) + " (" + file + ":" +
                             std::to_string(line) + ")");
}
void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuda backend: ") + what + ": " + cublasGetStatusString(s) + " (" + file +
                             ":" + std::to_string(line) + ")");
}
#define FB_CU(x) check((x), #x, __FILE__, __LINE__)
#define FB_CUBLAS(x) check_cublas((x), #x, __FILE__, __LINE__)
#define FB_LAUNCHED(what) check(cudaGetLastError(), what, __FILE__, __LINE__)

// ---- element types -----------------------------------------------------------------------

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Row-wise kernels walk rows by block and columns by thread: no index division (64-bit
// division dominated these memory-bound kernels when they ran as flat grid-stride loops).
constexpr int kRowThreads = 256, kMaxRowBlocks = 2048;  // blocks loop over rows past the cap
int row_blocks(int rows) { return std::max(1, std::min(rows, kMaxRowBlocks)); }

#include "backends/cuda/plan_kernels.cuh"
#include "backends/cuda/stage_clock.cuh"

template <class T> constexpr cudaDataType_t cuda_type();
template <> constexpr cudaDataType_t cuda_type<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t cuda_type<__half>() { return CUDA_R_16F; }
template <> constexpr cudaDataType_t cuda_type<__nv_bfloat16>() { return CUDA_R_16BF; }

// ---- device memory -----------------------------------------------------------------------

template <class T>
struct Buffer {
  T* p = nullptr;
  size_t n = 0;
  Buffer() = default;
  explicit Buffer(size_t count) : n(count) {
    if (n) FB_CU(cudaMalloc(&p, n * sizeof(T)));
  }
  Buffer(Buffer&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr, o.n = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(p, o.p), std::swap(n, o.n);
    return *this;
  }
  ~Buffer() { cudaFree(p); }
  void upload(const T* host, size_t count, size_t at = 0) {
    FB_CU(cudaMemcpy(p + at, host, count * sizeof(T), cudaMemcpyHostToDevice));
  }
};

template <class T>
__global__ void convert_kernel(const float* in, T* out, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    out[i] = from_f<T>(in[i]);
}

int blocks_for(size_t n, int threads = 256) { return int(std::min<size_t>((n + threads - 1) / threads, 65535)); }

// Host fp32 → device T through a staging buffer of fp32, in pieces (weights can be gigabytes).
template <class T>
void upload_converted(T* dst, const float* host, size_t n, Buffer<float>& staging) {
  for (size_t at = 0; at < n; at += staging.n) {
    const size_t part = std::min(staging.n, n - at);
    staging.upload(host + at, part);
    convert_kernel<T><<<blocks_for(part), 256>>>(staging.p, dst + at, part);
    FB_LAUNCHED("convert weights");
  }
}

// ---- kernels -----------------------------------------------------------------------------

// x[r] = tok[token[r]] (+ OPT's learned position pos[r] + 2).
template <class T>
__global__ void embed_kernel(const int* tokens, const int* pos, const T* tok, const T* pos_emb, float* x, int dim) {
  const int r = blockIdx.x;
  const T* e = tok + size_t(tokens[r]) * dim;
  const T* pe = pos_emb ? pos_emb + size_t(pos[r] + 2) * dim : nullptr;
  for (int c = threadIdx.x; c < dim; c += blockDim.x) x[size_t(r) * dim + c] = to_f(e[c]) + (pe ? to_f(pe[c]) : 0.f);
}

__device__ float block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = 0;
  for (int w = 0; w < int(blockDim.x / 32); ++w) total += shared[w];
  return total;
}

// RMSNorm (beta null) or LayerNorm of row rows[i] (or i) of x into out row i, as apply_norm does.
// Rows up to kRowThreads·kNormHeld wide are read once into registers, all loads in flight before
// the first sum; wider rows are read twice. Both sum in the same order.
constexpr int kNormHeld = 32;
template <class T>
__global__ void __launch_bounds__(kRowThreads)
    norm_kernel(const float* x, const int* rows, const float* gamma, const float* beta, T* out, int dim, float eps) {
  __shared__ float shared[32];
  const size_t src = rows ? size_t(rows[blockIdx.x]) : blockIdx.x;
  const float* row = x + src * dim;
  T* o = out + size_t(blockIdx.x) * dim;
  const float inv_n = 1.0f / float(dim);
  if (dim <= kRowThreads * kNormHeld) {
    float v[kNormHeld];
#pragma unroll
    for (int i = 0; i < kNormHeld; ++i) {
      const int c = threadIdx.x + i * kRowThreads;
      v[i] = c < dim ? row[c] : 0.f;
    }
    float s = 0;
    float mean = 0;
    if (beta) {
#pragma unroll
      for (int i = 0; i < kNormHeld; ++i) s += v[i];
      mean = block_sum(s, shared) * inv_n;
      s = 0;
#pragma unroll
      for (int i = 0; i < kNormHeld; ++i)
        if (threadIdx.x + i * kRowThreads < dim) s += (v[i] - mean) * (v[i] - mean);
    } else {
#pragma unroll
      for (int i = 0; i < kNormHeld; ++i) s += v[i] * v[i];
    }
    const float inv = 1.0f / sqrtf(block_sum(s, shared) * inv_n + eps);
#pragma unroll
    for (int i = 0; i < kNormHeld; ++i) {
      const int c = threadIdx.x + i * kRowThreads;
      if (c < dim) o[c] = beta ? from_f<T>((v[i] - mean) * inv * gamma[c] + beta[c]) : from_f<T>(gamma[c] * (v[i] * inv));
    }
    return;
  }
  if (beta) {
    float s = 0;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) s += row[c];
    const float mean = block_sum(s, shared) * inv_n;
    float v = 0;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) v += (row[c] - mean) * (row[c] - mean);
    const float inv_std = 1.0f / sqrtf(block_sum(v, shared) * inv_n + eps);
    for (int c = threadIdx.x; c < dim; c += blockDim.x) o[c] = from_f<T>((row[c] - mean) * inv_std * gamma[c] + beta[c]);
  } else {
    float s = 0;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) s += row[c] * row[c];
    const float inv_rms = 1.0f / sqrtf(block_sum(s, shared) * inv_n + eps);
    for (int c = threadIdx.x; c < dim; c += blockDim.x) o[c] = from_f<T>(gamma[c] * (row[c] * inv_rms));
  }
}

// Adds the q/k/v biases and rotates q and k by llama2.c's RoPE (pairs 2j, 2j+1 of each head),
// from qkv into out (the same buffer, or the tensor-core attention's input in the model's dtype,
// whose first q_cols columns are scaled by q_scale before their rounding, as the CPU scales its
// query rows). Without bias and tables it is that conversion alone.
template <class OutT>
__global__ void qkv_bias_rope_kernel(const float* qkv, OutT* out, const float* bias, const float* cos_t,
                                     const float* sin_t, const int* pos, int width, int rope_width, int hd, int rows,
                                     int q_cols, float q_scale) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float2* row = reinterpret_cast<const float2*>(qkv + size_t(r) * width);  // width is even
    const float* cos_r = cos_t ? cos_t + size_t(pos[r]) * (hd / 2) : nullptr;
    const float* sin_r = sin_t ? sin_t + size_t(pos[r]) * (hd / 2) : nullptr;
    OutT* o = out + size_t(r) * width;
    for (int c = 2 * threadIdx.x; c < width; c += 2 * blockDim.x) {
      const float2 v = row[c / 2];
      float a = v.x, b = v.y;
      if (bias) a += bias[c], b += bias[c + 1];
      if (c < rope_width) {
        const int j = (c % hd) / 2;
        const float a2 = a * cos_r[j] - b * sin_r[j], b2 = a * sin_r[j] + b * cos_r[j];
        a = a2, b = b2;
      }
      if (c < q_cols) a *= q_scale, b *= q_scale;
      o[c] = from_f<OutT>(a), o[c + 1] = from_f<OutT>(b);
    }
  }
}

// A block: 32 query rows of one head of one sequence (8 warps × 4 rows); key tiles of 32 in
// shared memory; online softmax, so the scores of a row never exist beyond one tile.
constexpr int kWarps = 8, kRowsPerWarp = 4, kRowsPerBlock = kWarps * kRowsPerWarp, kKeyTile = 32;

struct AttentionTile {
  int seq_start, seq_end, q0, pad;
};

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <class T, int kDimsPerLane>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const float* qkv, int ld, int k_off, int v_off, T* out, int ldo, const AttentionTile* tiles,
                     int group, int hd, float scale) {
  extern __shared__ float smem[];
  float* ks = smem;                      // kKeyTile × (hd + 1): padded, so lanes reading rows hit distinct banks
  float* vs = ks + kKeyTile * (hd + 1);  // kKeyTile × hd
  float* qs = vs + kKeyTile * hd;        // kRowsPerBlock × hd, scaled as the CPU scales its query row
  const AttentionTile tile = tiles[blockIdx.x];
  const int h = blockIdx.y, kvh = h / group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int q_last = min(tile.q0 + kRowsPerBlock, tile.seq_end) - 1;
  for (int i = threadIdx.x; i < kRowsPerBlock * hd; i += blockDim.x) {
    const int r = tile.q0 + i / hd;
    qs[i] = r <= q_last ? qkv[size_t(r) * ld + h * hd + i % hd] * scale : 0.f;
  }
  float acc[kRowsPerWarp][kDimsPerLane], m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    m[i] = -INFINITY, l[i] = 0;
#pragma unroll
    for (int c = 0; c < kDimsPerLane; ++c) acc[i][c] = 0;
  }
  const int row0 = tile.q0 + warp * kRowsPerWarp;
  for (int k0 = tile.seq_start; k0 <= q_last; k0 += kKeyTile) {
    __syncthreads();  // the previous tile is consumed (and the queries are in place)
    for (int i = threadIdx.x; i < kKeyTile * hd; i += blockDim.x) {
      const int j = i / hd, d = i % hd, key = k0 + j;
      const bool in = key <= q_last;
      ks[j * (hd + 1) + d] = in ? qkv[size_t(key) * ld + k_off + kvh * hd + d] : 0.f;
      vs[j * hd + d] = in ? qkv[size_t(key) * ld + v_off + kvh * hd + d] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = row0 + i;
      if (r > q_last || k0 > r) continue;  // uniform over the warp
      const int key = k0 + lane;
      float s = -INFINITY;
      if (key <= r) {
        const float* q = qs + (warp * kRowsPerWarp + i) * hd;
        const float* kr = ks + lane * (hd + 1);
        float dot = 0;
        for (int d = 0; d < hd; ++d) dot += q[d] * kr[d];
        s = dot;
      }
      const float m_new = fmaxf(m[i], warp_max(s));
      const float p = key <= r ? expf(s - m_new) : 0.f;
      const float corr = expf(m[i] - m_new);
      l[i] = l[i] * corr + warp_sum(p);
#pragma unroll
      for (int c = 0; c < kDimsPerLane; ++c) acc[i][c] *= corr;
      const int keys = min(kKeyTile, r - k0 + 1);
      for (int j = 0; j < keys; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
        for (int c = 0; c < kDimsPerLane; ++c) {
          const int d = lane + 32 * c;
          if (d < hd) acc[i][c] += pj * vs[j * hd + d];
        }
      }
      m[i] = m_new;
    }
  }
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = row0 + i;
    if (r > q_last) continue;
#pragma unroll
    for (int c = 0; c < kDimsPerLane; ++c) {
      const int d = lane + 32 * c;
      if (d < hd) out[size_t(r) * ldo + h * hd + d] = from_f<T>(acc[i][c] / l[i]);
    }
  }
}

#include "backends/cuda/attention_mma.cuh"

// SwiGLU as silu_multiply does it: g / (1 + e^{-g}) · u, over [gate | up] rows (biases added first).
template <class T>
__global__ void swiglu_kernel(const float* gu, const float* bias, T* out, int hidden, int rows) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x)
    for (int c = threadIdx.x; c < hidden; c += blockDim.x) {
      float g = gu[size_t(r) * 2 * hidden + c], u = gu[size_t(r) * 2 * hidden + hidden + c];
      if (bias) g += bias[c], u += bias[hidden + c];
      out[size_t(r) * hidden + c] = from_f<T>(g / (1.0f + expf(-g)) * u);
    }
}

// OPT's fc1 epilogue: ReLU(y + b).
template <class T>
__global__ void relu_kernel(const float* y, const float* bias, T* out, int width, int rows) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x)
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
      const size_t i = size_t(r) * width + c;
      out[i] = from_f<T>(fmaxf(y[i] + (bias ? bias[c] : 0.f), 0.f));
    }
}

// x += y + b (the sub-layer's output, its bias added first as LinearSite::forward does).
__global__ void residual_kernel(float* x, const float* y, const float* bias, int width, int rows) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x)
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
      const size_t i = size_t(r) * width + c;
      x[i] += bias ? y[i] + bias[c] : y[i];
    }
}

// One logits row → the target's log-softmax (sum of exponentials in double, as score_row) and
// whether the target is the row's first arg-max.
__global__ void score_rows_kernel(const float* logits, int vocab, const int* targets, double* logprob,
                                  uint8_t* greedy) {
  __shared__ float best_v[256];
  __shared__ int best_i[256];
  __shared__ double sums[256];
  const float* row = logits + size_t(blockIdx.x) * vocab;
  float bv = -INFINITY;
  int bi = vocab;
  for (int c = threadIdx.x; c < vocab; c += blockDim.x)
    if (row[c] > bv) bv = row[c], bi = c;  // strided scan: the first maximum of this thread's columns
  best_v[threadIdx.x] = bv, best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float ov = best_v[threadIdx.x + s];
      const int oi = best_i[threadIdx.x + s];
      if (ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < best_i[threadIdx.x]))
        best_v[threadIdx.x] = ov, best_i[threadIdx.x] = oi;
    }
    __syncthreads();
  }
  const float mx = best_v[0];
  double sum = 0;
  for (int c = threadIdx.x; c < vocab; c += blockDim.x) sum += exp(double(row[c] - mx));
  sums[threadIdx.x] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sums[threadIdx.x] += sums[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const int t = targets[blockIdx.x];
    logprob[blockIdx.x] = double(row[t]) - (double(mx) + log(sums[0]));
    greedy[blockIdx.x] = best_i[0] == t;
  }
}

// ---- the model ---------------------------------------------------------------------------

struct Linear {
  size_t w = 0;  // offset into the weight arena
  long bias = -1;  // offset into the fp32 arena, or -1
  int N = 0, K = 0;
};
struct NormW {
  long gamma = -1, beta = -1;  // offsets into the fp32 arena
};
// An operator's input steps on the device (HostInput, arrays in the arenas; -1: absent).
struct DevInput {
  bool any = false;
  int k_in = 0, width = 0;  // the input's width and the prepared width (the GEMM's K)
  long clip = -1, kron_left = -1, kron_right = -1, flat_src = -1, flat_div = -1;
  int n1 = 0, n2 = 0, n_src = 0;
  DevQuant quant;
};
// One GEMM of a group: one site, or several fused when they read the same prepared input,
// writing columns [col, col + lin.N) of the group's output.
struct Part {
  Linear lin;
  DevInput in;
  int col = 0;
};
struct Group {
  std::vector<Part> parts;
  long bias = -1;  // the group's biases, fp32 arena
  int N = 0;
  bool steps() const {
    for (const Part& p : parts)
      if (p.in.any) return true;
    return false;
  }
};
struct DevAttentionStep {
  int col0 = 0, heads = 0;
  long transform = -1;
  DevQuant quant;
};
struct Layer {
  NormW attn_norm, mlp_norm;
  Group qkv, o, gate_up, down, fc1, fc2;
  std::vector<DevAttentionStep> attention;
};

// The shapes a TypedModel keeps of its HostModel (the host arrays are not kept after the upload).
struct Shape {
  bool llama = true;
  int dim = 0, hidden = 0, n_heads = 0, n_kv_heads = 0, vocab = 0, max_seq = 0, rope_rows = 0;
  float eps = 1e-5f;
};
Shape shape_of(const HostModel& m) {
  return {m.llama, m.dim, m.hidden, m.n_heads, m.n_kv_heads, m.vocab, m.max_seq, m.rope_rows, m.eps};
}

class ModelBase {
 public:
  virtual ~ModelBase() = default;
  virtual void score(const Batch& b, std::vector<double>& logprob, std::vector<uint8_t>& greedy) = 0;
  virtual std::vector<float> logits(const std::vector<int>& tokens) = 0;
  virtual size_t weight_bytes() const = 0;
  int max_tokens = 0;
  std::string attention_name;  // which attention kernel runs (provenance)
  StageClock clock;            // device time per stage (provenance)
};

template <class T>
class TypedModel final : public ModelBase {
 public:
  TypedModel(const HostModel& m, int max_batch_tokens) : cfg_(shape_of(m)) {
    hd_ = m.dim / m.n_heads;
    nq_ = m.n_heads * hd_, nkv_ = m.n_kv_heads * hd_;
    max_tokens = std::max(max_batch_tokens, m.max_seq);
    if (m.llama && m.rope_rows < max_tokens) throw std::logic_error("cuda backend: RoPE table shorter than a batch");
    // Tensor cores for fp16 / bf16 at the usual head sizes; FLATBENCH_CUDA_ATTENTION=reference
    // keeps the CUDA-core kernel (A/B timing, or a check of the fast one), =mma64 runs 64-row
    // blocks (4 warps) instead of 128 (8 warps).
    const char* pick = std::getenv("FLATBENCH_CUDA_ATTENTION");
    tc_attention_ = !std::is_same_v<T, float> && (hd_ == 64 || hd_ == 128) && !(pick && std::string(pick) == "reference");
    tc_warps_ = pick && std::string(pick) == "mma64" ? 4 : 8;
    attention_name = tc_attention_ ? "mma.sync flash, " + std::to_string(16 * tc_warps_) +
                                         "-row blocks, cp.async K/V (fp32 softmax, tensor-core products)"
                                   : "cuda-core online softmax (fp32)";
    check_fits(m);
    FB_CUBLAS(cublasCreate(&blas_));
    FB_CUBLAS(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));  // fp32 GEMMs stay fp32: no TF32
    upload_weights(m);
    allocate_activations();
  }
  ~TypedModel() override { cublasDestroy(blas_); }

  size_t weight_bytes() const override { return weights_.n * sizeof(T) + floats_.n * sizeof(float); }

  void score(const Batch& b, std::vector<double>& logprob, std::vector<uint8_t>& greedy) override {
    const int rows = forward(b);
    std::vector<int> scored, targets;
    for (int r = 0; r < rows; ++r)
      if (b.targets[static_cast<size_t>(r)] >= 0) scored.push_back(r), targets.push_back(b.targets[static_cast<size_t>(r)]);
    logprob.assign(scored.size(), 0), greedy.assign(scored.size(), 0);
    for (size_t at = 0; at < scored.size(); at += size_t(chunk_rows_)) {
      const int n = int(std::min(scored.size() - at, size_t(chunk_rows_)));
      row_idx_.upload(scored.data() + at, size_t(n));
      targets_.upload(targets.data() + at, size_t(n));
      classify(row_idx_.p, n);
      clock.enter("log-softmax");
      score_rows_kernel<<<n, 256>>>(logits_.p, cfg_.vocab, targets_.p, logprob_.p, greedy_.p);
      FB_LAUNCHED("score rows");
      clock.enter("copies");
      FB_CU(cudaMemcpy(logprob.data() + at, logprob_.p, size_t(n) * sizeof(double), cudaMemcpyDeviceToHost));
      FB_CU(cudaMemcpy(greedy.data() + at, greedy_.p, size_t(n), cudaMemcpyDeviceToHost));
    }
    clock.settle();
  }

  std::vector<float> logits(const std::vector<int>& tokens) override {
    Batch b;
    b.tokens = tokens;
    b.offsets = {0, int(tokens.size())};
    b.targets.assign(tokens.size(), -1);
    const int rows = forward(b);
    std::vector<float> out(size_t(rows) * cfg_.vocab);
    std::vector<int> all(static_cast<size_t>(rows));
    std::iota(all.begin(), all.end(), 0);
    for (int at = 0; at < rows; at += chunk_rows_) {
      const int n = std::min(rows - at, chunk_rows_);
      row_idx_.upload(all.data() + at, size_t(n));
      classify(row_idx_.p, n);
      FB_CU(cudaMemcpy(out.data() + size_t(at) * cfg_.vocab, logits_.p, size_t(n) * cfg_.vocab * sizeof(float),
                       cudaMemcpyDeviceToHost));
    }
    clock.settle();
    return out;
  }

 private:
  const float* f(long off) const { return off < 0 ? nullptr : floats_.p + off; }
  const T* w(size_t off) const { return weights_.p + off; }

  void check_fits(const HostModel& m) {
    size_t weights = size_t(m.vocab) * m.dim * (m.classifier == m.tok_embedding ? 1 : 2) +
                     (m.pos_embedding ? size_t(m.max_seq + 2) * m.dim : 0);
    // … and the widths of the operators' fp32 input, scratch and prepared buffers.
    for (const HostLayer& l : m.layers)
      for (const HostLinear* lin : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down, &l.fc1, &l.fc2}) {
        weights += size_t(lin->N) * lin->K;
        max_k_in_ = std::max(max_k_in_, lin->K_in);
        if (lin->in.any()) max_prepared_ = std::max({max_prepared_, lin->K, lin->K_in});
      }
    const size_t steps = max_prepared_ ? 4 * size_t(max_k_in_) + (8 + sizeof(T)) * size_t(max_prepared_) : 0;
    const size_t act = size_t(max_tokens) * (4 * (3 * size_t(m.dim) + nq_ + 2 * nkv_ + 2 * size_t(m.hidden)) +
                                            sizeof(T) * (2 * size_t(m.dim) + m.hidden + (tc_attention_ ? nq_ + 2 * nkv_ : 0)) +
                                            48 + steps);
    chunk_rows_ = int(std::clamp<size_t>((size_t(512) << 20) / (size_t(m.vocab) * 4), 1, size_t(max_tokens)));
    const size_t need = weights * sizeof(T) + act + size_t(chunk_rows_) * m.vocab * 4 + (size_t(256) << 20);
    size_t free_b = 0, total_b = 0;
    FB_CU(cudaMemGetInfo(&free_b, &total_b));
    if (need > free_b)
      throw std::runtime_error("cuda backend: the model needs about " + std::to_string(need >> 20) + " MiB on the GPU (" +
                               std::to_string((weights * sizeof(T)) >> 20) + " MiB of weights), but " +
                               std::to_string(free_b >> 20) +
                               " MiB are free; a smaller dtype or a larger GPU (this backend keeps the whole model "
                               "resident; it does not stream layers from the checkpoint)");
  }

  // Weights as one arena of T (matrices), one of fp32 (norms, biases, RoPE tables, the plans'
  // clip limits, factors and offsets) and one of ints (flatten sources).
  void upload_weights(const HostModel& m) {
    std::vector<std::pair<const float*, size_t>> mats;  // host source, count, in arena order
    size_t wn = 0;
    auto add_mat = [&](const float* src, size_t n) {
      mats.push_back({src, n});
      const size_t at = wn;
      wn += n;
      return at;
    };
    std::vector<float> fl;
    std::vector<int> in;
    auto add_floats = [&](const float* src, size_t n) -> long {
      if (!src || n == 0) return -1;
      const long at = long(fl.size());
      fl.insert(fl.end(), src, src + n);
      return at;
    };
    auto add_vec = [&](const std::vector<float>& v) { return add_floats(v.data(), v.size()); };
    auto quant = [&](const HostQuant& h) {
      DevQuant q;
      q.scope = h.scope, q.bits = h.bits, q.group = h.group, q.sym = h.sym, q.reciprocal = h.reciprocal;
      q.qmin = h.sym ? -(1 << (h.bits - 1)) : 0;
      q.qmax = h.sym ? (1 << (h.bits - 1)) - 1 : (1 << h.bits) - 1;
      q.hi = h.clip_hi, q.lo = h.clip_lo, q.scale = h.scale, q.zero = h.zero;
      q.step_offset = add_vec(h.step_offset);
      return q;
    };
    auto input = [&](const HostLinear& l) {
      DevInput d;
      d.any = l.in.any(), d.k_in = l.K_in, d.width = l.K;
      d.clip = add_vec(l.in.clip_limit);
      d.kron_left = add_vec(l.in.kron_left), d.kron_right = add_vec(l.in.kron_right);
      d.n1 = l.in.n1, d.n2 = l.in.n2;
      if (!l.in.flat_src.empty()) {
        d.flat_src = long(in.size());
        in.insert(in.end(), l.in.flat_src.begin(), l.in.flat_src.end());
        d.flat_div = add_vec(l.in.flat_div);
        d.n_src = int(l.in.flat_src.size());
      }
      d.quant = quant(l.in.quant);
      return d;
    };
    // Sites of one fused GEMM stay fused when they read the same prepared input.
    auto group = [&](std::initializer_list<const HostLinear*> sites) {
      Group g;
      const HostLinear& first = **sites.begin();
      bool same = true;
      for (const HostLinear* p : sites) same = same && p->K == first.K && p->K_in == first.K_in && same_input(p->in, first.in);
      bool any_bias = false;
      for (const HostLinear* p : sites) any_bias |= p->b != nullptr;
      for (const HostLinear* p : sites) {
        const size_t at = add_mat(p->W, size_t(p->N) * p->K);
        if (same && !g.parts.empty()) {
          g.parts.back().lin.N += p->N;
        } else {
          Part part;
          part.lin.w = at, part.lin.N = p->N, part.lin.K = p->K;
          part.in = input(*p);
          part.col = g.N;
          g.parts.push_back(part);
        }
        g.N += p->N;
      }
      if (any_bias) {
        g.bias = long(fl.size());
        for (const HostLinear* p : sites) {
          if (p->b) fl.insert(fl.end(), p->b, p->b + p->N);
          else fl.insert(fl.end(), size_t(p->N), 0.f);
        }
      }
      return g;
    };
    tok_ = add_mat(m.tok_embedding, size_t(m.vocab) * m.dim);
    cls_ = m.classifier == m.tok_embedding ? tok_ : add_mat(m.classifier, size_t(m.vocab) * m.dim);
    pos_ = m.pos_embedding ? long(add_mat(m.pos_embedding, size_t(m.max_seq + 2) * m.dim)) : -1;
    for (const HostLayer& hl : m.layers) {
      Layer l;
      l.attn_norm = {add_floats(hl.attn_norm.gamma, m.dim), add_floats(hl.attn_norm.beta, m.dim)};
      l.mlp_norm = {add_floats(hl.mlp_norm.gamma, m.dim), add_floats(hl.mlp_norm.beta, m.dim)};
      l.qkv = group({&hl.q, &hl.k, &hl.v});
      l.o = group({&hl.o});
      if (m.llama) {
        l.gate_up = group({&hl.gate, &hl.up});
        l.down = group({&hl.down});
      } else {
        l.fc1 = group({&hl.fc1});
        l.fc2 = group({&hl.fc2});
      }
      for (const HostAttentionStep& hs : hl.attention) {
        DevAttentionStep st;
        st.col0 = hs.tensor == 0 ? 0 : (hs.tensor == 1 ? nq_ : nq_ + nkv_);
        st.heads = hs.tensor == 0 ? m.n_heads : m.n_kv_heads;
        st.transform = add_vec(hs.head_transform);
        st.quant = quant(hs.quant);
        l.attention.push_back(st);
      }
      layers_.push_back(l);
    }
    final_norm_ = {add_floats(m.final_norm.gamma, m.dim), add_floats(m.final_norm.beta, m.dim)};
    if (m.llama) {
      rope_cos_ = add_floats(m.rope_cos.data(), m.rope_cos.size());
      rope_sin_ = add_floats(m.rope_sin.data(), m.rope_sin.size());
    }
    weights_ = Buffer<T>(wn);
    Buffer<float> staging(std::min<size_t>(wn, size_t(16) << 20));
    size_t at = 0;
    for (auto [src, n] : mats) upload_converted(weights_.p + at, src, n, staging), at += n;
    floats_ = Buffer<float>(fl.size());
    floats_.upload(fl.data(), fl.size());
    ints_ = Buffer<int>(in.size());
    ints_.upload(in.data(), in.size());
    FB_CU(cudaDeviceSynchronize());
  }

  void allocate_activations() {
    const size_t M = size_t(max_tokens);
    x_ = Buffer<float>(M * cfg_.dim);
    y_ = Buffer<float>(M * cfg_.dim);
    qkv_ = Buffer<float>(M * (nq_ + 2 * nkv_));
    if (tc_attention_) qkvt_ = Buffer<T>(M * (nq_ + 2 * nkv_));
    mlp_ = Buffer<float>(M * 2 * size_t(cfg_.hidden));
    hn_ = Buffer<T>(M * std::max(cfg_.dim, nq_));
    act_ = Buffer<T>(M * size_t(cfg_.hidden));
    if (max_prepared_ > 0) {  // the operators' input steps run in fp32 (plan_kernels.cuh)
      xf_ = Buffer<float>(M * size_t(max_k_in_));
      s1_ = Buffer<float>(M * size_t(max_prepared_));
      s2_ = Buffer<float>(M * size_t(max_prepared_));
      gin_ = Buffer<T>(M * size_t(max_prepared_));
    }
    row_range_ = Buffer<float2>(M), seq_range_ = Buffer<float2>(M + 1), row_scale_ = Buffer<float>(M);
    seq_of_row_ = Buffer<int>(M), seq_offsets_ = Buffer<int>(M + 1);
    tokens_ = Buffer<int>(M), pos_idx_ = Buffer<int>(M), row_idx_ = Buffer<int>(M), targets_ = Buffer<int>(M);
    tiles_ = Buffer<AttentionTile>(M / kRowsPerBlock + 2 * M / std::max(1, cfg_.max_seq) + 64);
    logits_ = Buffer<float>(size_t(chunk_rows_) * cfg_.vocab);
    logprob_ = Buffer<double>(size_t(chunk_rows_));
    greedy_ = Buffer<uint8_t>(size_t(chunk_rows_));
    const int dpl = (hd_ + 31) / 32;
    if (dpl > 8) throw std::runtime_error("cuda backend: head_dim " + std::to_string(hd_) + " > 256 is not supported");
    attn_smem_ = (kKeyTile * (hd_ + 1) + kKeyTile * hd_ + kRowsPerBlock * hd_) * int(sizeof(float));
  }

  // Y[rows × N] (row stride ldy) = X[rows × K] · W[N × K]ᵀ (+ Y when accumulating), fp32 out
  // and accumulation.
  void gemm(const Linear& lin, const T* X, float* Y, int rows, int ldy, bool accumulate = false) {
    const float one = 1, beta = accumulate ? 1.f : 0.f;
    FB_CUBLAS(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, lin.N, rows, lin.K, &one, w(lin.w), cuda_type<T>(), lin.K,
                           X, cuda_type<T>(), lin.K, &beta, Y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT));
  }

  // An operator's input steps on x (rows × k_in, fp32) into the GEMM's input (gin_, T), in the
  // order of models/op_plan.cpp's run_linear_plan.
  const T* prepare(const DevInput& in, const float* x, int rows) {
    clock.enter("input steps");
    const float* cur = x;
    int ld = in.k_in;
    auto other = [&](const float* c) { return c == s1_.p ? s2_.p : s1_.p; };
    if (in.clip >= 0) {
      float* o = other(cur);
      clip_columns_kernel<<<row_blocks(rows), kRowThreads>>>(cur, ld, f(in.clip), o, in.k_in, rows);
      FB_LAUNCHED("clip columns");
      cur = o;
    }
    if (in.kron_left >= 0) {  // Z = X·R over rows·n1 rows of n2, then Y_t = Lᵀ·Z_t per row t
      const float one = 1, zero = 0;
      float* z = other(cur);
      float* y = other(z);
      FB_CUBLAS(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, in.n2, rows * in.n1, in.n2, &one, f(in.kron_right), in.n2,
                            cur, in.n2, &zero, z, in.n2));
      FB_CUBLAS(cublasSgemmStridedBatched(blas_, CUBLAS_OP_N, CUBLAS_OP_T, in.n2, in.n1, in.n1, &one, z, in.n2,
                                          long(in.k_in), f(in.kron_left), in.n1, 0, &zero, y, in.n2, long(in.k_in), rows));
      cur = y;
    }
    if (in.flat_src >= 0) {
      float* o = other(cur);
      flatten_kernel<<<row_blocks(rows), kRowThreads>>>(cur, ld, ints_.p + in.flat_src, f(in.flat_div), in.n_src, o, in.width, rows);
      FB_LAUNCHED("flatten");
      cur = o, ld = in.width;
    }
    quantize(in.quant, cur, ld, gin_.p, in.width, in.width, rows, factored(in) ? row_scale_.p : nullptr);
    return gin_.p;
  }

  // fp16 / bf16 GEMMs take the integer codes and scale their output rows (plan_quant_kernel)
  // where one scale covers a row; fp32 multiplies s·(q − z) first, as the CPU does.
  bool factored(const DevInput& in) const {
    if (std::is_same_v<T, float>) return false;
    const DevQuant& q = in.quant;
    if (q.bits > 8) return false;  // q − z must be an exact integer in bf16 too (|q − z| ≤ 256)
    return q.scope == HostQuant::sequence || q.scope == HostQuant::fixed ||
           (q.scope == HostQuant::row_groups && (q.group <= 0 || q.group >= in.width));
  }

  // Fake-quantizes (or converts) rows × width of x into out.
  template <class OutT>
  void quantize(const DevQuant& q, const float* x, int ldx, OutT* out, int ldo, int width, int rows,
                float* row_scale = nullptr) {
    if (q.scope == HostQuant::none) {
      convert_rows_kernel<OutT><<<row_blocks(rows), kRowThreads>>>(x, ldx, out, width, rows);
      FB_LAUNCHED("convert rows");
      return;
    }
    if (q.scope == HostQuant::sequence) {
      row_range_kernel<<<rows, 256>>>(x, ldx, width, row_range_.p);
      sequence_range_kernel<<<sequences_, 256>>>(row_range_.p, seq_offsets_.p, seq_range_.p);
      FB_LAUNCHED("sequence ranges");
    }
    plan_quant_kernel<OutT><<<rows, 256>>>(x, ldx, out, ldo, width, q, floats_.p, seq_range_.p, seq_of_row_.p, row_scale);
    FB_LAUNCHED("fake-quant");
  }

  // A group's GEMMs into Y (row stride ldy): from xt (T) when no part has input steps, else from
  // xf (fp32) through each part's steps.
  void run_group(const char* stage, const Group& g, const T* xt, const float* xf, float* Y, int ldy, int rows,
                 bool accumulate = false) {
    for (const Part& p : g.parts) {
      const T* input = xf ? prepare(p.in, xf, rows) : xt;
      clock.enter(stage);
      gemm(p.lin, input, Y + p.col, rows, ldy, accumulate);
      if (xf && factored(p.in)) {
        clock.enter("input steps");
        scale_rows_kernel<<<row_blocks(rows), kRowThreads>>>(Y + p.col, ldy, p.lin.N, row_scale_.p, rows);
        FB_LAUNCHED("scale rows");
      }
    }
  }

  // x += the group's output (+ its bias): in the GEMM itself (β = 1: x + acc, the residual
  // kernel's sum) unless a bias or a row scale has to come between the two.
  void residual_group(const char* stage, const Group& g, const T* xt, int rows) {
    bool scaled = false;
    for (const Part& p : g.parts) scaled |= g.steps() && factored(p.in);
    if (g.bias < 0 && !scaled) return run_group(stage, g, xt, fp32_input(g), x_.p, cfg_.dim, rows, true);
    run_group(stage, g, xt, fp32_input(g), y_.p, cfg_.dim, rows);
    clock.enter("residual");
    residual_kernel<<<row_blocks(rows), kRowThreads>>>(x_.p, y_.p, f(g.bias), cfg_.dim, rows);
    FB_LAUNCHED("residual");
  }

  void attention_steps(const Layer& l, int rows) {
    if (!l.attention.empty()) clock.enter("attention steps");
    const int width = nq_ + 2 * nkv_;
    for (const DevAttentionStep& s : l.attention) {
      if (s.transform >= 0) {
        head_transform_kernel<<<dim3((rows + kHeadRows - 1) / kHeadRows, s.heads), hd_,
                                kHeadRows * hd_ * int(sizeof(float))>>>(qkv_.p, width, s.col0, hd_, f(s.transform), rows);
        FB_LAUNCHED("head transform");
      }
      if (s.quant.scope != HostQuant::none)
        quantize(s.quant, qkv_.p + s.col0, width, qkv_.p + s.col0, width, s.heads * hd_, rows);
    }
  }

  template <class OutT>
  void norm(const float* x, const int* rows_idx, const NormW& n, OutT* out, int rows) {
    clock.enter("norm");
    norm_kernel<OutT><<<rows, kRowThreads>>>(x, rows_idx, f(n.gamma), f(n.beta), out, cfg_.dim, cfg_.eps);
    FB_LAUNCHED("norm");
  }
  // The norm of x into the group's input: T for plain GEMMs, fp32 for input steps.
  void norm_for(const Group& g, const NormW& n, int rows) {
    if (g.steps()) norm(x_.p, nullptr, n, xf_.p, rows);
    else norm(x_.p, nullptr, n, hn_.p, rows);
  }
  const float* fp32_input(const Group& g) const { return g.steps() ? xf_.p : nullptr; }

  template <class OutT, int kDpl>
  void attention_dpl(int tiles, OutT* out) {
    auto kernel = attention_kernel<OutT, kDpl>;
    if (attn_smem_ > 48 * 1024) FB_CU(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, attn_smem_));
    const int ld = nq_ + 2 * nkv_;
    kernel<<<dim3(tiles, cfg_.n_heads), kWarps * 32, attn_smem_>>>(qkv_.p, ld, nq_, nq_ + nkv_, out, nq_, tiles_.p,
                                                                  cfg_.n_heads / cfg_.n_kv_heads, hd_,
                                                                  1.0f / sqrtf(float(hd_)));
    FB_LAUNCHED("attention");
  }
  // From qkvt_: q|k|v after RoPE and the attention steps, in T, q scaled (qkv_bias_rope_kernel).
  template <class OutT, int HD, int WARPS>
  void attention_tc(int tiles, OutT* out) {
    if constexpr (!std::is_same_v<T, float>) {
      auto kernel = attention_mma_kernel<T, OutT, HD, WARPS>;
      const int smem = int(TcLayout<HD, WARPS>::bytes(sizeof(T)));
      FB_CU(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
      const int ld = nq_ + 2 * nkv_;
      kernel<<<dim3(tiles, cfg_.n_heads), WARPS * 32, smem>>>(qkvt_.p, ld, nq_, nq_ + nkv_, out, nq_, tiles_.p,
                                                           cfg_.n_heads / cfg_.n_kv_heads);
      FB_LAUNCHED("attention (tensor cores)");
    }
  }
  template <class OutT, int WARPS>
  void attention_tc_hd(int tiles, OutT* out) {
    return hd_ == 64 ? attention_tc<OutT, 64, WARPS>(tiles, out) : attention_tc<OutT, 128, WARPS>(tiles, out);
  }
  template <class OutT>
  void attention(int tiles, OutT* out) {
    clock.enter("attention");
    if (tc_attention_) return tc_warps_ == 4 ? attention_tc_hd<OutT, 4>(tiles, out) : attention_tc_hd<OutT, 8>(tiles, out);
    switch ((hd_ + 31) / 32) {
      case 1: return attention_dpl<OutT, 1>(tiles, out);
      case 2: return attention_dpl<OutT, 2>(tiles, out);
      case 3: case 4: return attention_dpl<OutT, 4>(tiles, out);
      default: return attention_dpl<OutT, 8>(tiles, out);
    }
  }

  // q|k|v biases and RoPE: in place in fp32, or straight into the tensor-core attention's input
  // when no attention step edits q|k|v in fp32 first.
  void bias_rope(const Layer& l, int rows) {
    clock.enter("bias + rope");
    const float* cs = cfg_.llama ? f(rope_cos_) : nullptr;
    const float* sn = cfg_.llama ? f(rope_sin_) : nullptr;
    const int rope_width = cfg_.llama ? nq_ + nkv_ : 0;
    if (tc_attention_ && l.attention.empty()) return attention_input(f(l.qkv.bias), cs, sn, pos_idx_.p, rope_width, rows);
    const int width = nq_ + 2 * nkv_;
    qkv_bias_rope_kernel<float><<<row_blocks(rows), kRowThreads>>>(qkv_.p, qkv_.p, f(l.qkv.bias), cs, sn,
                                                                               pos_idx_.p, width, rope_width, hd_, rows,
                                                                               0, 1.f);
    FB_LAUNCHED("qkv bias + rope");
  }
  // q|k|v into qkvt_ (q scaled), through the biases and RoPE when given them.
  void attention_input(const float* bias, const float* cs, const float* sn, const int* pos, int rope_width, int rows) {
    const int width = nq_ + 2 * nkv_;
    qkv_bias_rope_kernel<T><<<row_blocks(rows), kRowThreads>>>(
        qkv_.p, qkvt_.p, bias, cs, sn, pos, width, rope_width, hd_, rows, nq_, 1.0f / sqrtf(float(hd_)));
    FB_LAUNCHED("attention input");
  }

  // The packed batch's positions, attention tiles and sequences on the device.
  int upload_batch(const Batch& b, int rows) {
    std::vector<int> pos(static_cast<size_t>(rows)), seq_of_row(static_cast<size_t>(rows));
    std::vector<AttentionTile> tiles;
    for (size_t s = 0; s + 1 < b.offsets.size(); ++s) {
      const int start = b.offsets[s], end = b.offsets[s + 1];
      if (!cfg_.llama && end - start > cfg_.max_seq) throw std::runtime_error("cuda backend: sequence longer than OPT's positions");
      if (cfg_.llama && end - start > cfg_.rope_rows) throw std::runtime_error("cuda backend: sequence longer than the RoPE table");
      for (int r = start; r < end; ++r) pos[static_cast<size_t>(r)] = r - start, seq_of_row[static_cast<size_t>(r)] = int(s);
      const int tile_rows = tc_attention_ ? 16 * tc_warps_ : kRowsPerBlock;
      for (int q0 = start; q0 < end; q0 += tile_rows) tiles.push_back({start, end, q0, 0});
    }
    // The longest tiles (last rows of each sequence: most keys) are scheduled first, so the
    // short ones fill the last wave instead of one long tile running alone.
    std::stable_sort(tiles.begin(), tiles.end(),
                     [](const AttentionTile& a, const AttentionTile& b) { return a.q0 - a.seq_start > b.q0 - b.seq_start; });
    if (tiles.size() > tiles_.n) tiles_ = Buffer<AttentionTile>(tiles.size());
    sequences_ = int(b.offsets.size()) - 1;
    tokens_.upload(b.tokens.data(), size_t(rows));
    pos_idx_.upload(pos.data(), size_t(rows));
    seq_of_row_.upload(seq_of_row.data(), size_t(rows));
    seq_offsets_.upload(b.offsets.data(), b.offsets.size());
    tiles_.upload(tiles.data(), tiles.size());
    return int(tiles.size());
  }

  // Runs the decoder over a packed batch, leaving the residual stream in x_; returns its rows.
  int forward(const Batch& b) {
    const int rows = int(b.tokens.size());
    if (rows > max_tokens) throw std::logic_error("cuda backend: batch larger than its buffers");
    clock.enter("batch upload");
    const int tiles = upload_batch(b, rows);
    clock.enter("embed");
    embed_kernel<T><<<rows, 256>>>(tokens_.p, pos_idx_.p, w(tok_), pos_ >= 0 ? w(size_t(pos_)) : nullptr, x_.p, cfg_.dim);
    FB_LAUNCHED("embed");
    const int width = nq_ + 2 * nkv_;
    for (const Layer& l : layers_) {
      norm_for(l.qkv, l.attn_norm, rows);
      run_group("gemm qkv", l.qkv, hn_.p, fp32_input(l.qkv), qkv_.p, width, rows);
      bias_rope(l, rows);
      attention_steps(l, rows);
      if (tc_attention_ && !l.attention.empty()) {  // the steps edited q|k|v in fp32: convert only
        clock.enter("attention input");
        attention_input(nullptr, nullptr, nullptr, nullptr, 0, rows);
      }
      if (l.o.steps()) attention<float>(tiles, xf_.p);
      else attention<T>(tiles, hn_.p);
      residual_group("gemm o", l.o, hn_.p, rows);
      const Group& up = cfg_.llama ? l.gate_up : l.fc1;
      const Group& down = cfg_.llama ? l.down : l.fc2;
      norm_for(up, l.mlp_norm, rows);
      run_group("gemm up", up, hn_.p, fp32_input(up), mlp_.p, up.N, rows);
      clock.enter(cfg_.llama ? "swiglu" : "relu");
      const int nb = row_blocks(rows);
      if (cfg_.llama && down.steps()) swiglu_kernel<float><<<nb, kRowThreads>>>(mlp_.p, f(up.bias), xf_.p, cfg_.hidden, rows);
      else if (cfg_.llama) swiglu_kernel<T><<<nb, kRowThreads>>>(mlp_.p, f(up.bias), act_.p, cfg_.hidden, rows);
      else if (down.steps()) relu_kernel<float><<<nb, kRowThreads>>>(mlp_.p, f(up.bias), xf_.p, cfg_.hidden, rows);
      else relu_kernel<T><<<nb, kRowThreads>>>(mlp_.p, f(up.bias), act_.p, cfg_.hidden, rows);
      FB_LAUNCHED(cfg_.llama ? "swiglu" : "relu");
      residual_group("gemm down", down, act_.p, rows);
    }
    return rows;
  }

  // Logits of `n` rows of the residual stream (by index) into logits_: final norm, classifier.
  void classify(const int* rows_idx, int n) {
    norm(x_.p, rows_idx, final_norm_, hn_.p, n);
    Linear cls;
    cls.w = cls_, cls.N = cfg_.vocab, cls.K = cfg_.dim;
    clock.enter("gemm classifier");
    gemm(cls, hn_.p, logits_.p, n, cfg_.vocab);
  }

  Shape cfg_;
  int hd_ = 0, nq_ = 0, nkv_ = 0, chunk_rows_ = 1, attn_smem_ = 0;
  bool tc_attention_ = false;
  int tc_warps_ = 8;  // the tensor-core attention's warps per block (16 query rows each)
  cublasHandle_t blas_ = nullptr;
  Buffer<T> weights_;
  Buffer<float> floats_;
  size_t tok_ = 0, cls_ = 0;
  long pos_ = -1, rope_cos_ = -1, rope_sin_ = -1;
  std::vector<Layer> layers_;
  NormW final_norm_;
  Buffer<int> ints_;
  int max_k_in_ = 0, max_prepared_ = 0, sequences_ = 0;
  Buffer<float> x_, y_, qkv_, mlp_, logits_;
  Buffer<float> xf_, s1_, s2_;  // fp32 input of the operators' steps and its two scratch copies
  Buffer<T> hn_, act_, gin_, qkvt_;  // qkvt_: the tensor-core attention's q|k|v
  Buffer<float2> row_range_, seq_range_;
  Buffer<float> row_scale_;
  Buffer<int> tokens_, pos_idx_, row_idx_, targets_, seq_of_row_, seq_offsets_;
  Buffer<AttentionTile> tiles_;
  Buffer<double> logprob_;
  Buffer<uint8_t> greedy_;
};

}  // namespace

bool same_input(const HostInput& a, const HostInput& b) {
  const HostQuant &p = a.quant, &q = b.quant;
  return a.clip_limit == b.clip_limit && a.kron_left == b.kron_left && a.kron_right == b.kron_right && a.n1 == b.n1 &&
         a.n2 == b.n2 && a.flat_src == b.flat_src && a.flat_div == b.flat_div && a.flat_out == b.flat_out &&
         p.scope == q.scope && p.bits == q.bits && p.sym == q.sym && p.group == q.group && p.clip_hi == q.clip_hi &&
         p.clip_lo == q.clip_lo && p.scale == q.scale && p.zero == q.zero && p.reciprocal == q.reciprocal &&
         p.step_offset == q.step_offset;
}

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    cudaGetLastError();  // clear it
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device is visible";
  return n;
}

DeviceInfo device_info(int device) {
  DeviceInfo d;
  cudaDeviceProp p{};
  FB_CU(cudaGetDeviceProperties(&p, device));
  d.name = p.name, d.sm_count = p.multiProcessorCount, d.cc_major = p.major, d.cc_minor = p.minor;
  FB_CU(cudaSetDevice(device));
  FB_CU(cudaMemGetInfo(&d.free_bytes, &d.total_bytes));
  FB_CU(cudaRuntimeGetVersion(&d.runtime_version));
  FB_CU(cudaDriverGetVersion(&d.driver_version));
  return d;
}

struct DeviceModel::Impl {
  int device = 0;
  std::unique_ptr<ModelBase> model;
};

DeviceModel::DeviceModel(const HostModel& m, int device, DType dtype, int max_batch_tokens) : impl_(new Impl) {
  impl_->device = device;
  FB_CU(cudaSetDevice(device));
  switch (dtype) {
    case DType::f32: impl_->model = std::make_unique<TypedModel<float>>(m, max_batch_tokens); break;
    case DType::f16: impl_->model = std::make_unique<TypedModel<__half>>(m, max_batch_tokens); break;
    case DType::bf16: impl_->model = std::make_unique<TypedModel<__nv_bfloat16>>(m, max_batch_tokens); break;
  }
}
DeviceModel::~DeviceModel() = default;

void DeviceModel::score(const Batch& b, std::vector<double>& logprob, std::vector<uint8_t>& greedy) {
  FB_CU(cudaSetDevice(impl_->device));
  impl_->model->score(b, logprob, greedy);
}
std::vector<float> DeviceModel::logits(const std::vector<int>& tokens) {
  FB_CU(cudaSetDevice(impl_->device));
  return impl_->model->logits(tokens);
}
int DeviceModel::max_batch_tokens() const { return impl_->model->max_tokens; }
size_t DeviceModel::weight_bytes() const { return impl_->model->weight_bytes(); }
std::string DeviceModel::attention_kernel() const { return impl_->model->attention_name; }
std::map<std::string, double> DeviceModel::stage_ms() const { return impl_->model->clock.totals_ms(); }
void DeviceModel::reset_stage_ms() { impl_->model->clock.reset(); }

}  // namespace fb::cuda_exec

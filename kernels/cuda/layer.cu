#include "kernels/cuda/layer.h"

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/gemm_s8.h"
#include "kernels/cuda/operands.h"
#include "kernels/cuda/quant_kernels.h"
#include "kernels/cuda/shapes.h"
#include "kernels/cuda/timing.h"

#include <cublas_v2.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

namespace fb::cuda {

namespace {

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": cublas status " + std::to_string(int(s)));
}

// ---- elementwise kernels (one row per block) ------------------------------------
__global__ void layernorm_kernel(const __half* x, __half* y, int d) {
  const __half* row = x + long(blockIdx.x) * d;
  float s = 0, ss = 0;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float v = __half2float(row[i]);
    s += v, ss += v * v;
  }
  __shared__ float red[2][32];
  for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(~0u, s, o), ss += __shfl_xor_sync(~0u, ss, o);
  if (threadIdx.x % 32 == 0) red[0][threadIdx.x / 32] = s, red[1][threadIdx.x / 32] = ss;
  __syncthreads();
  s = ss = 0;
  for (int w = 0; w < int(blockDim.x / 32); ++w) s += red[0][w], ss += red[1][w];
  const float mean = s / d, inv = rsqrtf(fmaxf(ss / d - mean * mean, 0.0f) + 1e-5f);
  for (int i = threadIdx.x; i < d; i += blockDim.x) y[long(blockIdx.x) * d + i] = __float2half((__half2float(row[i]) - mean) * inv);
}

// Causal softmax of one score row (row i keeps columns 0..i), in place.
__global__ void causal_softmax_kernel(__half* s, int m) {
  const long row = blockIdx.x;  // head·M + i
  const int i = int(row % m);
  __half* r = s + row * m;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j <= i; j += blockDim.x) mx = fmaxf(mx, __half2float(r[j]));
  __shared__ float red[32];
  for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(~0u, mx, o));
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < int(blockDim.x / 32); ++w) mx = fmaxf(mx, red[w]);
  __syncthreads();
  float sum = 0;
  for (int j = threadIdx.x; j <= i; j += blockDim.x) sum += __expf(__half2float(r[j]) - mx);
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(~0u, sum, o);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = sum;
  __syncthreads();
  sum = 0;
  for (int w = 0; w < int(blockDim.x / 32); ++w) sum += red[w];
  const float inv = 1.0f / sum;
  for (int j = threadIdx.x; j < m; j += blockDim.x)
    r[j] = __float2half(j <= i ? __expf(__half2float(r[j]) - mx) * inv : 0.0f);
}

__global__ void add_kernel(__half* x, const __half* y, long n) {
  for (long i = blockIdx.x * long(blockDim.x) + threadIdx.x; i < n; i += long(gridDim.x) * blockDim.x)
    x[i] = __hadd(x[i], y[i]);
}
__global__ void relu_kernel(__half* x, long n) {
  for (long i = blockIdx.x * long(blockDim.x) + threadIdx.x; i < n; i += long(gridDim.x) * blockDim.x)
    x[i] = __hmax(x[i], __float2half(0.0f));
}

long padded_k(long k, double ratio) { return (long(double(k) * (1 + ratio)) + 31) / 32 * 32; }

// A synthetic flatten plan (identity, then repeated channels, then zero padding).
struct Flatten {
  DeviceBuffer<int> src;
  DeviceBuffer<float> inv_div;
  long k = 0, k_pad = 0;
  Flatten(long k_in, double ratio, uint64_t seed) : k(k_in), k_pad(padded_k(k_in, ratio)) {
    const long k_flat = long(double(k) * (1 + ratio));
    std::vector<int> s(size_t(k_pad), -1);
    std::vector<float> d(size_t(k_pad), 0.0f);
    std::mt19937_64 rng(seed);
    for (long j = 0; j < k_flat; ++j) s[j] = j < k ? int(j) : int(rng() % uint64_t(k)), d[j] = j < k ? 1.0f : 0.5f;
    src = DeviceBuffer<int>(s), inv_div = DeviceBuffer<float>(d);
  }
};

// One linear of the quantized layer: weights (int8 or packed int4) on the flattened K,
// per-channel scales, and the plan for this token count.
struct QuantLinear {
  DeviceBuffer<int8_t> w8;
  DeviceBuffer<uint8_t> w4;
  DeviceBuffer<float> sw;
  std::unique_ptr<GemmS8Plan> plan;
  QuantLinear(long n, long k_pad, bool int4, uint64_t seed) : sw(size_t(n)) {
    if (int4) w4 = DeviceBuffer<uint8_t>(size_t(n * k_pad / 2)), fill_bytes(w4.get(), w4.size(), seed);
    else w8 = DeviceBuffer<int8_t>(size_t(n * k_pad)), fill_int8(w8.get(), w8.size(), -127, 127, seed);
    fill_uniform_float(sw.get(), sw.size(), 1e-4f, 2e-4f, seed + 1);
  }
  void prepare(const int8_t* a, const float* sa, __half* y, long m, long n, long k_pad) {
    GemmS8Problem p;
    p.a = a, p.y = y, p.m = m, p.n = n, p.k = k_pad, p.scale_a = sa, p.n_scale_a = 1, p.scale_b = sw.get(), p.n_scale_b = n;
    p.b = w8.size() ? static_cast<const void*>(w8.get()) : w4.get();
    p.weights = w8.size() ? WeightFormat::kInt8 : WeightFormat::kInt4Packed;
    plan = std::make_unique<GemmS8Plan>(p);
  }
};

class Layer {
 public:
  Layer(const ArchDims& a, long max_m, double ratio, uint64_t seed)
      : d_(a.d), h_(a.h), heads_(a.heads), max_m_(max_m),
        x_(size_t(max_m * a.d)), ln_(size_t(max_m * a.d)), qkv_(size_t(max_m * 3 * a.d)),
        o_(size_t(max_m * a.d)), y_(size_t(max_m * a.d)), h1_(size_t(max_m * a.h)),
        scores_(size_t(a.heads) * max_m * max_m), qa_(size_t(max_m) * padded_k(a.h, ratio)), sa_(1),
        flat_d_(a.d, ratio, seed + 10), flat_h_(a.h, ratio, seed + 11) {
    check(cublasCreate(&blas_), "cublasCreate");
    fill_uniform_half(x_.get(), x_.size(), -1, 1, seed);
    fill_uniform_float(sa_.get(), 1, 0.02f, 0.02f, seed + 2);
    for (int i = 0; i < 4; ++i) {
      w16_[i] = DeviceBuffer<__half>(size_t(out_dim(i) * in_dim(i)));
      fill_uniform_half(w16_[i].get(), w16_[i].size(), -0.01f, 0.01f, seed + 20 + i);
    }
  }
  ~Layer() { cublasDestroy(blas_); }

  // Quantized weights for one variant (int8 or int4), on the flattened K.
  void make_quantized(bool int4, uint64_t seed) {
    for (int i = 0; i < 4; ++i) q_[i] = std::make_unique<QuantLinear>(out_dim(i), flat(i).k_pad, int4, seed + 30 + i);
  }
  void prepare(long m) {
    m_ = m;
    __half* outs[4] = {qkv_.get(), y_.get(), h1_.get(), y_.get()};
    if (q_[0])
      for (int i = 0; i < 4; ++i) q_[i]->prepare(qa_.get(), sa_.get(), outs[i], m, out_dim(i), flat(i).k_pad);
  }

  void run(cudaStream_t s, bool quantized) {
    check(cublasSetStream(blas_, s), "cublasSetStream");
    const long md = m_ * d_;
    layernorm_kernel<<<unsigned(m_), 256, 0, s>>>(x_.get(), ln_.get(), int(d_));
    linear(0, ln_.get(), qkv_.get(), quantized, s);
    attention(s);
    linear(1, o_.get(), y_.get(), quantized, s);
    add_kernel<<<1024, 256, 0, s>>>(x_.get(), y_.get(), md);
    layernorm_kernel<<<unsigned(m_), 256, 0, s>>>(x_.get(), ln_.get(), int(d_));
    linear(2, ln_.get(), h1_.get(), quantized, s);
    relu_kernel<<<1024, 256, 0, s>>>(h1_.get(), m_ * h_);
    linear(3, h1_.get(), y_.get(), quantized, s);
    add_kernel<<<1024, 256, 0, s>>>(x_.get(), y_.get(), md);
    FB_CUDA_CHECK_LAUNCH();
  }

  // Matrix operations of one layer at m tokens (linears + attention's two products).
  double ops(long m) const {
    double lin = 0;
    for (int i = 0; i < 4; ++i) lin += 2.0 * m * out_dim(i) * in_dim(i);
    return lin + 2.0 * 2.0 * double(m) * m * d_;
  }

 private:
  long out_dim(int i) const { return i == 0 ? 3 * d_ : i == 2 ? h_ : d_; }
  long in_dim(int i) const { return i == 3 ? h_ : d_; }
  const Flatten& flat(int i) const { return i == 3 ? flat_h_ : flat_d_; }

  void linear(int i, const __half* in, __half* out, bool quantized, cudaStream_t s) {
    if (quantized) {
      const Flatten& f = flat(i);
      flatten_quantize(in, m_, f.k, f.src.get(), f.inv_div.get(), f.k_pad, 50.0f, qa_.get(), s);
      q_[i]->plan->run(s);
      return;
    }
    const float one = 1, zero = 0;
    const int n = int(out_dim(i)), k = int(in_dim(i));
    check(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, n, int(m_), k, &one, w16_[i].get(), CUDA_R_16F, k, in,
                       CUDA_R_16F, k, &zero, out, CUDA_R_16F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "linear fp16");
  }

  // Dense causal attention per head through cuBLAS (see layer.h): S = Q·Kᵀ/√dh,
  // causal softmax, O = P·V, heads batched with strides.
  void attention(cudaStream_t s) {
    const int m = int(m_), d = int(d_), dh = int(d_ / heads_), ld = 3 * d;
    const float scale = 1.0f / std::sqrt(float(dh)), one = 1, zero = 0;
    const __half* q = qkv_.get();
    const __half* k = q + d;
    const __half* v = q + 2 * d;
    check(cublasGemmStridedBatchedEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, m, m, dh, &scale, k, CUDA_R_16F, ld, dh, q,
                                     CUDA_R_16F, ld, dh, &zero, scores_.get(), CUDA_R_16F, m, long(m) * m, int(heads_),
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "attention QK");
    causal_softmax_kernel<<<unsigned(heads_ * m), 256, 0, s>>>(scores_.get(), m);
    check(cublasGemmStridedBatchedEx(blas_, CUBLAS_OP_N, CUBLAS_OP_N, dh, m, m, &one, v, CUDA_R_16F, ld, dh,
                                     scores_.get(), CUDA_R_16F, m, long(m) * m, &zero, o_.get(), CUDA_R_16F, d, dh,
                                     int(heads_), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "attention PV");
  }

  long d_, h_, heads_, max_m_, m_ = 0;
  cublasHandle_t blas_ = nullptr;
  DeviceBuffer<__half> x_, ln_, qkv_, o_, y_, h1_, scores_;
  DeviceBuffer<int8_t> qa_;
  DeviceBuffer<float> sa_;
  Flatten flat_d_, flat_h_;
  DeviceBuffer<__half> w16_[4];
  std::unique_ptr<QuantLinear> q_[4];
};

}  // namespace

std::vector<GemmRecord> run_layer_sweep(const std::string& model, const LayerOptions& opt,
                                        const std::string& device_name, json& notes) {
  const ArchDims& arch = arch_by_name(model);
  long max_m = 1;
  for (long t : opt.tokens) max_m = std::max(max_m, t);
  Layer layer(arch, max_m, opt.flatten_ratio, opt.seed);
  cudaStream_t stream;
  FB_CUDA_CHECK(cudaStreamCreate(&stream));
  TimingOptions timing;
  timing.warmup = 2, timing.max_reps = opt.max_reps, timing.budget_ms = opt.budget_ms;

  std::vector<GemmRecord> rows;
  for (const LayerVariant& variant : kLayerVariants) {
    const bool quantized = variant.quantized;
    if (quantized) layer.make_quantized(variant.int4_weights, opt.seed + 100);
    for (long m : opt.tokens) {
      layer.prepare(m);
      GemmRecord g;
      g.device = "cuda:" + device_name, g.backend = std::string("layer_") + variant.name, g.dtype = variant.linear_dtype;
      g.m = m, g.n = arch.d, g.k = arch.h;
      g.samples_ms = time_launches([&](cudaStream_t s) { layer.run(s, quantized); }, timing, stream);
      const Summary st = summarise(g.samples_ms);
      g.reps = int(g.samples_ms.size()), g.min_ms = st.min, g.median_ms = st.median, g.max_ms = st.max;
      g.gops = layer.ops(m) / (st.median * 1e-3) / 1e9;
      g.extra = {{"model", model}, {"layer", "opt-style pre-LN decoder layer, prefill, dense causal attention (cuBLAS)"},
                 {"flatten_ratio", quantized ? opt.flatten_ratio : 0.0}, {"flush_l2", false}};
      rows.push_back(std::move(g));
    }
  }
  const std::string baseline = std::string("layer_") + kLayerVariants[0].name;
  for (auto& g : rows) {
    for (const auto& f : rows)
      if (f.backend == baseline && f.m == g.m) g.ratio_to_fp32 = f.median_ms / g.median_ms;
    g.extra["ratio_denominator"] = std::string(kLayerVariants[0].name) + " layer median at the same tokens";
    std::printf("layer %-10s %-19s M=%-6ld %9.4f ms  speedup vs fp16 %.3fx\n", model.c_str(), g.backend.c_str(), g.m,
                g.median_ms, g.ratio_to_fp32);
  }
  std::fflush(stdout);
  FB_CUDA_CHECK(cudaStreamDestroy(stream));
  (void)notes;
  return rows;
}

}  // namespace fb::cuda

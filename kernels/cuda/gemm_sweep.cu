#include "kernels/cuda/gemm_sweep.h"

#include "kernels/cuda/cublas_baselines.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/gemm_s8.h"
#include "kernels/cuda/operands.h"
#include "kernels/cuda/quant_kernels.h"
#include "kernels/cuda/shapes.h"
#include "kernels/cuda/timing.h"
#include "kernels/gemm_dtype.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>

namespace fb::cuda {

namespace {

long padded_flat_k(long k, double ratio) { return (long(double(k) * (1 + ratio)) + 31) / 32 * 32; }

// Every operand at the sweep's largest sizes; each shape uses a prefix (row stride K).
struct OperandPool {
  DeviceBuffer<__half> a16, b16, y16, p1, p2;
  DeviceBuffer<int8_t> a8, b8;
  DeviceBuffer<uint8_t> b4, a_fp8, b_fp8;
  DeviceBuffer<int32_t> y32;
  DeviceBuffer<float> sa, sb;

  OperandPool(long max_m, long max_n, long max_k, long max_k_pad, uint64_t seed) {
    const size_t mk = size_t(max_m) * max_k, nk = size_t(max_n) * max_k, mn = size_t(max_m) * max_n;
    a16 = DeviceBuffer<__half>(mk), b16 = DeviceBuffer<__half>(nk), y16 = DeviceBuffer<__half>(mn);
    a8 = DeviceBuffer<int8_t>(size_t(max_m) * max_k_pad), b8 = DeviceBuffer<int8_t>(nk);
    b4 = DeviceBuffer<uint8_t>(nk / 2 + 16), a_fp8 = DeviceBuffer<uint8_t>(mk), b_fp8 = DeviceBuffer<uint8_t>(nk);
    y32 = DeviceBuffer<int32_t>(mn);
    sa = DeviceBuffer<float>(size_t(max_m)), sb = DeviceBuffer<float>(size_t(max_n));
    p1 = DeviceBuffer<__half>(128 * 128), p2 = DeviceBuffer<__half>(128 * 128);
    fill_uniform_half(a16.get(), a16.size(), -1, 1, seed + 1);
    fill_uniform_half(b16.get(), b16.size(), -1, 1, seed + 2);
    fill_int8(a8.get(), a8.size(), -127, 127, seed + 3);
    fill_int8(b8.get(), b8.size(), -127, 127, seed + 4);
    fill_bytes(b4.get(), b4.size(), seed + 5);
    fill_fp8_e4m3(a_fp8.get(), a_fp8.size(), -1, 1, seed + 6);
    fill_fp8_e4m3(b_fp8.get(), b_fp8.size(), -1, 1, seed + 7);
    fill_uniform_float(sa.get(), sa.size(), 1e-3f, 2e-3f, seed + 8);
    fill_uniform_float(sb.get(), sb.size(), 1e-3f, 2e-3f, seed + 9);
    fill_uniform_half(p1.get(), p1.size(), -0.1f, 0.1f, seed + 10);
    fill_uniform_half(p2.get(), p2.size(), -0.1f, 0.1f, seed + 11);
  }
};

// A synthetic flatten plan for K channels: identity, then ratio·K repeated channels
// (inv_div 1/2), then zero padding to a multiple of 32. step_offset holds the staggered
// variant's offsets (±1/4 step on the repeated channels' copies, 0 elsewhere).
struct FlattenPlan {
  DeviceBuffer<int> src;
  DeviceBuffer<float> inv_div, step_offset;
  long k_pad = 0;
  FlattenPlan(long k, double ratio, uint64_t seed) {
    k_pad = padded_flat_k(k, ratio);
    const long k_flat = long(double(k) * (1 + ratio));
    std::vector<int> s(size_t(k_pad), -1);
    std::vector<float> d(size_t(k_pad), 0.0f), o(size_t(k_pad), 0.0f);
    std::mt19937_64 rng(seed);
    for (long j = 0; j < k_flat; ++j) {
      s[j] = j < k ? int(j) : int(rng() % uint64_t(k));
      d[j] = j < k ? 1.0f : 0.5f;
      o[j] = j < k ? 0.0f : 0.25f * float(1 - 2 * (j % 2));
    }
    src = DeviceBuffer<int>(s), inv_div = DeviceBuffer<float>(d), step_offset = DeviceBuffer<float>(o);
  }
};

class ShapeTimer {
 public:
  ShapeTimer(const SweepOptions& opt, const std::string& device, const L2Flusher* flusher, cudaStream_t stream)
      : device_(device), stream_(stream) {
    timing_.max_reps = opt.max_reps, timing_.budget_ms = opt.budget_ms, timing_.flusher = flusher;
  }
  GemmRecord time(const std::string& backend, const std::string& dtype, long m, long n, long k, double bytes,
                  const std::function<void(cudaStream_t)>& launch) {
    GemmRecord g;
    g.device = device_, g.backend = backend, g.dtype = dtype, g.m = m, g.n = n, g.k = k;
    g.samples_ms = time_launches(launch, timing_, stream_);
    const Summary s = summarise(g.samples_ms);
    g.reps = int(g.samples_ms.size()), g.min_ms = s.min, g.median_ms = s.median, g.max_ms = s.max;
    g.gops = 2.0 * m * n * k / (s.median * 1e-3) / 1e9;
    g.extra["bytes_moved"] = bytes;
    g.extra["gbytes_per_s"] = bytes / (s.median * 1e-3) / 1e9;
    return g;
  }

 private:
  std::string device_;
  cudaStream_t stream_;
  TimingOptions timing_;
};

}  // namespace

std::vector<GemmRecord> run_gemm_sweep(const SweepOptions& opt, const std::string& device_name, json& notes) {
  long max_m = 1, max_n = 1, max_k = 1;
  for (long t : opt.tokens) max_m = std::max(max_m, t);
  for (auto [n, k] : opt.nk) max_n = std::max(max_n, n), max_k = std::max(max_k, k);
  OperandPool pool(max_m, max_n, max_k, padded_flat_k(max_k, opt.flatten_ratio), opt.seed);
  L2Flusher flusher;
  cudaStream_t stream;
  FB_CUDA_CHECK(cudaStreamCreate(&stream));
  ShapeTimer timer(opt, "cuda:" + device_name, opt.flush_l2 ? &flusher : nullptr, stream);
  std::map<long, std::unique_ptr<FlattenPlan>> flatten_plans;
  std::vector<GemmRecord> all;

  for (long m : opt.tokens) {
    for (const auto& nk_pair : opt.nk) {
      const long n = nk_pair.first, k = nk_pair.second;
      std::vector<GemmRecord> rows;
      const double mk = double(m) * k, nk = double(n) * k, mn = double(m) * n;
      {
        LibGemm g(LibGemmKind::kFp16, m, n, k, pool.a16.get(), pool.b16.get(), pool.y16.get());
        rows.push_back(timer.time("cublas_fp16", gemm_dtype::kFp16, m, n, k, 2 * (mk + nk + mn), [&](cudaStream_t s) { g.run(s); }));
      }
      for (auto [kind, name] : {std::pair{LibGemmKind::kS8S32, "cublaslt_s8s8s32"},
                                std::pair{LibGemmKind::kFp8E4M3, "cublaslt_fp8e4m3"}}) {
        try {
          const bool int8 = kind == LibGemmKind::kS8S32;
          const void* a = int8 ? static_cast<const void*>(pool.a8.get()) : pool.a_fp8.get();
          const void* b = int8 ? static_cast<const void*>(pool.b8.get()) : pool.b_fp8.get();
          void* y = int8 ? static_cast<void*>(pool.y32.get()) : pool.y16.get();
          LibGemm g(kind, m, n, k, a, b, y);
          const double bytes = mk + nk + mn * (int8 ? 4 : 2);
          rows.push_back(timer.time(name, LibGemm::dtype_name(kind), m, n, k, bytes, [&](cudaStream_t s) { g.run(s); }));
        } catch (const std::runtime_error& e) {
          notes["skipped"].push_back(std::string(name) + " " + std::to_string(m) + "x" + std::to_string(n) + "x" +
                                     std::to_string(k) + ": " + e.what());
        }
      }
      for (bool w4 : {false, true}) {
        GemmS8Problem p;
        p.a = pool.a8.get(), p.y = pool.y16.get(), p.m = m, p.n = n, p.k = k;
        p.b = w4 ? static_cast<const void*>(pool.b4.get()) : pool.b8.get();
        p.weights = w4 ? WeightFormat::kInt4Packed : WeightFormat::kInt8;
        p.scale_a = pool.sa.get(), p.n_scale_a = m, p.scale_b = pool.sb.get(), p.n_scale_b = n;
        GemmS8Plan plan(p);
        const double bytes = mk + (w4 ? nk / 2 : nk) + 2 * mn + 4.0 * (m + n);
        GemmRecord g = timer.time(w4 ? "ours_w4a8" : "ours_s8", w4 ? gemm_dtype::kW4A8 : gemm_dtype::kS8S8Fp16Out, m, n, k, bytes,
                                  [&](cudaStream_t s) { plan.run(s); });
        g.extra["plan"] = plan.describe();
        g.extra["scales"] = "per-token x per-channel";
        rows.push_back(std::move(g));
      }
      auto& fplan = flatten_plans[k];
      if (!fplan) fplan = std::make_unique<FlattenPlan>(k, opt.flatten_ratio, opt.seed + k);
      for (bool staggered : {false, true}) {  // the paper's equal split, then staggered copies (one add more)
        const long k_pad = fplan->k_pad;
        GemmRecord g = timer.time(staggered ? "ours_flatten_quant_staggered" : "ours_flatten_quant",
                                  staggered ? gemm_dtype::kFlattenQuantStaggered : gemm_dtype::kFlattenQuant, m, n, k,
                                  2 * mk + double(m) * k_pad + (staggered ? 4.0 * k_pad : 0.0), [&](cudaStream_t s) {
                                    flatten_quantize(pool.a16.get(), m, k, fplan->src.get(), fplan->inv_div.get(),
                                                     k_pad, 127.0f, pool.a8.get(), s,
                                                     staggered ? fplan->step_offset.get() : nullptr);
                                  });
        g.gops = 0;
        g.extra["k_pad"] = k_pad;
        g.extra["flatten_ratio"] = opt.flatten_ratio;
        rows.push_back(std::move(g));
      }
      if (auto [n1, n2] = kron_factors(k); n1 > 0) {
        const KronQuantPlan kp = make_kron_quant_plan(n1, n2, 8);
        GemmRecord g = timer.time("ours_kron_quant", gemm_dtype::kKronQuantInt8, m, n, k, 2 * mk + mk + 4.0 * m,
                                  [&](cudaStream_t s) {
                                    kron_quantize(kp, pool.a16.get(), m, pool.p1.get(), pool.p2.get(), kBenchmarkClip, pool.a8.get(),
                                                  pool.sa.get(), s);
                                  });
        g.gops = 2.0 * m * k * (n1 + n2) / (g.median_ms * 1e-3) / 1e9;  // the transform's own operations
        g.extra["n1"] = n1, g.extra["n2"] = n2;
        rows.push_back(std::move(g));
        // kron_quantize wrote per-token scales into pool.sa: restore positive random ones.
        fill_uniform_float(pool.sa.get(), pool.sa.size(), 1e-3f, 2e-3f, opt.seed + 8);
      }
      double fp16 = 0, ours_s8 = 0;
      for (const auto& g : rows) {
        if (g.backend == "cublas_fp16") fp16 = g.median_ms;
        if (g.backend == "ours_s8") ours_s8 = g.median_ms;
      }
      for (auto& g : rows) {
        g.ratio_to_fp32 = fp16 / g.median_ms;
        g.extra["ratio_denominator"] = "cublas_fp16 median of the same M,N,K (this job's ratio_to_fp32 is a ratio to fp16)";
        g.extra["flush_l2"] = opt.flush_l2;
        if (const GemmDtypeTraits* t = find_gemm_dtype(g.dtype); t && !t->is_gemm)  // an activation quantize op
          g.extra["share_of_ours_s8"] = g.median_ms / ours_s8;
      }
      std::printf("M=%-6ld N=%-6ld K=%-6ld fp16 %8.4f ms |", m, n, k, fp16);
      for (const auto& g : rows) std::printf(" %s %.3fx", g.backend.c_str(), g.ratio_to_fp32);
      std::printf("\n");
      std::fflush(stdout);
      all.insert(all.end(), rows.begin(), rows.end());
    }
  }
  FB_CUDA_CHECK(cudaStreamDestroy(stream));
  return all;
}

void run_gemm_probe(const std::vector<std::vector<long>>& mnk, bool flush_l2, int max_reps) {
  long max_m = 1, max_n = 1, max_k = 1;
  for (const auto& s : mnk) max_m = std::max(max_m, s[0]), max_n = std::max(max_n, s[1]), max_k = std::max(max_k, s[2]);
  OperandPool pool(max_m, max_n, max_k, max_k, 7);
  L2Flusher flusher;
  TimingOptions timing;
  timing.max_reps = max_reps, timing.budget_ms = 50, timing.flusher = flush_l2 ? &flusher : nullptr;
  const std::pair<int, int> forced[] = {{0, 0}, {64, 1}, {64, 2}, {128, 1}, {128, 2}, {128, 4}, {256, 1}};
  std::printf("probe (median us)            plan:auto          bn64/s1  bn64/s2 bn128/s1 bn128/s2 bn128/s4 bn256/s1\n");
  for (const auto& s : mnk) {
    for (bool w4 : {false, true}) {
      GemmS8Problem p;
      p.a = pool.a8.get(), p.y = pool.y16.get(), p.m = s[0], p.n = s[1], p.k = s[2];
      p.b = w4 ? static_cast<const void*>(pool.b4.get()) : pool.b8.get();
      p.weights = w4 ? WeightFormat::kInt4Packed : WeightFormat::kInt8;
      p.scale_a = pool.sa.get(), p.n_scale_a = p.m, p.scale_b = pool.sb.get(), p.n_scale_b = p.n;
      std::printf("%s %5ldx%5ldx%5ld", w4 ? "w4a8" : "s8  ", s[0], s[1], s[2]);
      for (auto [bn, split] : forced) {
        try {
          GemmS8Plan plan(p, split, bn);
          const Summary t = summarise(time_launches([&](cudaStream_t st) { plan.run(st); }, timing, nullptr));
          if (bn == 0) std::printf(" %7.1f [%s]", t.median * 1e3, plan.describe().c_str());
          else std::printf(" %8.1f", t.median * 1e3);
        } catch (const std::invalid_argument&) {
          std::printf(" %8s", "-");  // no such plan (e.g. 256-wide tiles for M ≤ 64)
        }
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
}

}  // namespace fb::cuda

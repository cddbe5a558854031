// flatbench-gpu-test: every CUDA kernel against its CPU reference (kernels/cuda/reference.h)
// on odd shapes, with fresh random inputs each run (the seed is printed) and outputs
// poisoned before each launch. Plain main: exit 0 when every check passes, 1 otherwise;
// exit 0 with "no CUDA device: skipped" where there is no GPU (CI), and "skipped" for
// the Hopper kernels on a GPU older than sm_90.
#include "kernels/cuda/cublas_baselines.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/gemm_s8.h"
#include "kernels/cuda/quant_kernels.h"
#include "kernels/cuda/reference.h"
#include "kernels/gemm_ref.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace fb::cuda;
namespace ref = fb::cuda_ref;
using fb::ClipRatios;

namespace {

int g_failures = 0;
std::mt19937_64 g_rng;

void report(bool ok, const std::string& name, const std::string& detail) {
  std::printf("%s  %-58s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  if (!ok) ++g_failures;
}

std::vector<int8_t> random_int8(size_t n, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = int8_t(d(g_rng));
  return v;
}
std::vector<float> random_float(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}
std::vector<__half> to_half(const std::vector<float>& v) {
  std::vector<__half> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = __float2half(v[i]);
  return h;
}
std::vector<float> to_float(const std::vector<__half>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = __half2float(v[i]);
  return f;
}

// max |got − want| / max |want|; NaN (an unwritten, poisoned output) counts as infinite.
double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    err = std::max(err, double(std::fabs(got[i] - want[i])));
    scale = std::max(scale, double(std::fabs(want[i])));
  }
  return err / std::max(scale, 1e-30);
}

std::string shape_str(long m, long n, long k) {
  return "M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k);
}

void test_gemm(long m, long n, long k, bool int4, bool per_token, int force_split, int force_bn) {
  const auto a = random_int8(size_t(m * k), -127, 127);
  std::vector<int8_t> b8;
  std::vector<uint8_t> b4;
  if (int4) {
    const auto bytes = random_int8(size_t(n * fb::int4_row_bytes(k)), -128, 127);
    b4.assign(bytes.begin(), bytes.end());
  } else {
    b8 = random_int8(size_t(n * k), -127, 127);
  }
  const auto sa = random_float(per_token ? size_t(m) : 1, 1e-4f, 2e-3f);
  const auto sb = random_float(per_token ? size_t(n) : 1, 1e-4f, 2e-3f);

  DeviceBuffer<int8_t> da(a);
  DeviceBuffer<int8_t> db8(b8);
  DeviceBuffer<uint8_t> db4(b4);
  DeviceBuffer<float> dsa(sa), dsb(sb);
  DeviceBuffer<__half> dy(size_t(m * n));
  GemmS8Problem p;
  p.a = da.get(), p.y = dy.get(), p.m = m, p.n = n, p.k = k;
  p.b = int4 ? static_cast<const void*>(db4.get()) : db8.get();
  p.weights = int4 ? WeightFormat::kInt4Packed : WeightFormat::kInt8;
  p.scale_a = dsa.get(), p.n_scale_a = long(sa.size()), p.scale_b = dsb.get(), p.n_scale_b = long(sb.size());
  GemmS8Plan plan(p, force_split, force_bn);
  std::vector<float> want = ref::gemm_dequant(a.data(), int4 ? static_cast<const void*>(b4.data()) : b8.data(), int4,
                                              m, n, k, sa, sb);
  for (auto& w : want) w = ref::round_to_half(w);
  // Twice: the second launch checks that split-K left its workspace clean.
  for (int launch = 0; launch < 2; ++launch) {
    dy.poison();
    plan.run(nullptr);
    FB_CUDA_CHECK(cudaDeviceSynchronize());
    const double err = rel_error(to_float(dy.download()), want);
    char detail[160];
    std::snprintf(detail, sizeof detail, "rel err %.2e  [%s]", err, plan.describe().c_str());
    report(err <= 1e-3, std::string(int4 ? "w4a8 " : "s8s8 ") + shape_str(m, n, k) +
                            (per_token ? " per-token" : " per-tensor") + " launch " + std::to_string(launch),
           detail);
  }
}

void test_library_gemms(long m, long n, long k) {
  // int8 → int32: exact.
  const auto a = random_int8(size_t(m * k), -127, 127), b = random_int8(size_t(n * k), -127, 127);
  std::vector<int32_t> want(size_t(m * n));
  fb::gemm_s8s8s32_ref(a.data(), b.data(), want.data(), m, n, k);
  DeviceBuffer<int8_t> da(a), db(b);
  DeviceBuffer<int32_t> dc(size_t(m * n));
  try {
    LibGemm g(LibGemmKind::kS8S32, m, n, k, da.get(), db.get(), dc.get());
    dc.poison(0x7F);
    g.run(nullptr);
    FB_CUDA_CHECK(cudaDeviceSynchronize());
    report(dc.download() == want, "cublasLt s8s8s32 " + shape_str(m, n, k), "exact match required");
  } catch (const std::runtime_error& e) {
    std::printf("SKIP  cublasLt s8s8s32 %s: %s\n", shape_str(m, n, k).c_str(), e.what());
  }
  // fp16: against the fp32 product of the same fp16 values.
  const auto af = random_float(size_t(m * k), -1, 1), bf = random_float(size_t(n * k), -1, 1);
  const auto ah = to_half(af), bh = to_half(bf);
  const auto a_r = to_float(ah), b_r = to_float(bh);
  std::vector<float> wantf(size_t(m * n));
  for (long i = 0; i < m; ++i)
    for (long j = 0; j < n; ++j) {
      double s = 0;
      for (long l = 0; l < k; ++l) s += double(a_r[i * k + l]) * b_r[j * k + l];
      wantf[i * n + j] = float(s);
    }
  DeviceBuffer<__half> dah(ah), dbh(bh), dyh(size_t(m * n));
  LibGemm h(LibGemmKind::kFp16, m, n, k, dah.get(), dbh.get(), dyh.get());
  dyh.poison();
  h.run(nullptr);
  FB_CUDA_CHECK(cudaDeviceSynchronize());
  const double err = rel_error(to_float(dyh.download()), wantf);
  report(err < 5e-3, "cublas fp16 " + shape_str(m, n, k), "rel err " + std::to_string(err));
}

// A flatten plan like FlattenQuant's: identity for the first K channels, a few channels
// repeated (their inv_div splits the value), zero padding up to a multiple of 32.
// Staggered: every flattened column also carries a step offset in (−1/2, 1/2), zero at the padding.
void test_flatten(long tokens, long k, long extra, bool staggered = false) {
  const long k_flat = k + extra, k_pad = (k_flat + 31) / 32 * 32;
  std::vector<int> src(size_t(k_pad), -1);
  std::vector<float> inv_div(size_t(k_pad), 0.0f), offset;
  std::uniform_int_distribution<long> pick(0, k - 1);
  for (long j = 0; j < k; ++j) src[j] = int(j), inv_div[j] = 1.0f;
  for (long j = k; j < k_flat; ++j) src[j] = int(pick(g_rng)), inv_div[j] = 0.5f;
  if (staggered) {
    offset = random_float(size_t(k_pad), -0.49f, 0.49f);
    for (long j = k_flat; j < k_pad; ++j) offset[j] = 0.0f;
  }
  const auto a = to_float(to_half(random_float(size_t(tokens * k), -8, 8)));
  const float inv_scale = 127.0f / 8.0f;
  const auto want = ref::flatten_quantize(a, tokens, k, src, inv_div, inv_scale, offset);
  DeviceBuffer<__half> da(to_half(a));
  DeviceBuffer<int> dsrc(src);
  DeviceBuffer<float> ddiv(inv_div);
  DeviceBuffer<float> doff(staggered ? offset : std::vector<float>(4, 0.0f));
  DeviceBuffer<int8_t> dq(size_t(tokens * k_pad));
  dq.poison(0x55);
  flatten_quantize(da.get(), tokens, k, dsrc.get(), ddiv.get(), k_pad, inv_scale, dq.get(), nullptr,
                   staggered ? doff.get() : nullptr);
  FB_CUDA_CHECK(cudaDeviceSynchronize());
  const auto got = dq.download();
  long mismatches = 0;
  for (size_t i = 0; i < want.size(); ++i) mismatches += got[i] != want[i];
  report(mismatches == 0, std::string(staggered ? "flatten_quantize staggered" : "flatten_quantize") + " T=" +
                              std::to_string(tokens) + " K=" + std::to_string(k) + " K_pad=" + std::to_string(k_pad),
         std::to_string(mismatches) + " codes differ (exact match required)");
}

void test_kron(long tokens, int n1, int n2, int bits) {
  const long k = long(n1) * n2;
  const auto x = to_float(to_half(random_float(size_t(tokens * k), -4, 4)));
  // Orthogonal-ish well-conditioned transforms: identity plus small noise.
  auto transform = [&](int n) {
    auto p = random_float(size_t(n) * n, -0.1f, 0.1f);
    for (int i = 0; i < n; ++i) p[size_t(i) * n + i] += 1.0f;
    return to_float(to_half(p));
  };
  const auto p1 = transform(n1), p2 = transform(n2);
  std::vector<float> want_scales;
  const ClipRatios clip{0.95f, 0.8f};  // learned clipping, two-sided (kernels/lac.h)
  const auto want = ref::kron_quantize(x, tokens, n1, n2, p1, p2, bits, clip, want_scales);

  const KronQuantPlan plan = make_kron_quant_plan(n1, n2, bits);
  DeviceBuffer<__half> dx(to_half(x)), dp1(to_half(p1)), dp2(to_half(p2));
  const size_t code_bytes = bits == 8 ? size_t(tokens * k) : size_t(tokens * k / 2);
  DeviceBuffer<uint8_t> dq(code_bytes);
  DeviceBuffer<float> ds{size_t(tokens)};
  dq.poison(0x55);
  ds.poison();
  kron_quantize(plan, dx.get(), tokens, dp1.get(), dp2.get(), clip, dq.get(), ds.get(), nullptr);
  FB_CUDA_CHECK(cudaDeviceSynchronize());
  const auto q = dq.download();
  const auto scales = ds.download();
  // GPU and CPU sum in different orders: a code may land one step away where a value
  // sits on a rounding boundary; more than 1% such codes, or any larger gap, fails.
  long off_by_one = 0, worse = 0;
  for (long t = 0; t < tokens; ++t)
    for (long e = 0; e < k; ++e) {
      int g;
      if (bits == 8) g = int8_t(q[size_t(t * k + e)]);
      else {
        const uint8_t byte = q[size_t((t * k + e) / 2)];
        const int nib = e % 2 == 0 ? byte & 0xF : byte >> 4;
        g = nib >= 8 ? nib - 16 : nib;
      }
      const int d = std::abs(g - want[size_t(t * k + e)]);
      off_by_one += d == 1;
      worse += d > 1;
    }
  double scale_err = 0;
  for (long t = 0; t < tokens; ++t)
    scale_err = std::max(scale_err, std::fabs(double(scales[t]) - want_scales[t]) / want_scales[t]);
  const bool ok = worse == 0 && off_by_one <= tokens * k / 100 && scale_err < 2e-3;
  char detail[160];
  std::snprintf(detail, sizeof detail, "off-by-one %ld/%ld, worse %ld, scale rel err %.1e", off_by_one, tokens * k,
                worse, scale_err);
  report(ok, "kron_quantize T=" + std::to_string(tokens) + " " + std::to_string(n1) + "x" + std::to_string(n2) +
                 " int" + std::to_string(bits),
         detail);
}

void expect_invalid(const std::string& name, const std::function<void()>& f) {
  try {
    f();
    report(false, name, "accepted bad input");
  } catch (const std::invalid_argument& e) {
    report(true, name, std::string("rejected: ") + e.what());
  }
}

}  // namespace

int main() {
  if (cuda_device_count() == 0) {
    std::printf("no CUDA device: skipped\n");
    return 0;
  }
  cudaDeviceProp prop{};
  FB_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const uint64_t seed = std::random_device{}();
  g_rng.seed(seed);
  std::printf("device %s (sm_%d%d), seed %llu\n", prop.name, prop.major, prop.minor, (unsigned long long)seed);
  try {
    test_library_gemms(64, 96, 128);
    test_library_gemms(33, 72, 200);
    test_flatten(37, 1000, 70);
    test_flatten(1, 4096, 300);
    test_flatten(37, 1000, 70, true);
    if (prop.major != 9) {
      std::printf("not a Hopper GPU: wgmma kernels skipped\n");
    } else {
      for (bool int4 : {false, true}) {
        test_gemm(1, 136, 96, int4, true, 0, 0);
        test_gemm(77, 200, 160, int4, true, 0, 0);
        test_gemm(130, 301, 1056, int4, false, 0, 0);
        test_gemm(257, 515, 2080, int4, true, 1, 256);
        test_gemm(5, 384, 4096, int4, true, 0, 0);             // split-K by the heuristic
        test_gemm(300, 1000, 2080, int4, false, 3, 256);       // forced split-K, 256-wide tiles
        test_gemm(513, 1031, 1024, int4, true, 1, 128);
        test_gemm(1100, 2100, 320, int4, true, 0, 0);           // more tiles than multiprocessors
        test_gemm(1500, 3000, 288, int4, false, 1, 256);
        test_gemm(700, 2900, 1024, int4, true, 2, 128);         // split-K over many tiles
        test_gemm(70, 333, 640, int4, true, 1, 64);             // 64-wide tiles (small-M plan)
        test_gemm(3, 4096, 4096, int4, true, 0, 0);             // the small-M plan: 64-row A, 64-wide tiles
        test_gemm(16, 8500, 256, int4, false, 0, 0);            // the small-M plan with 128-wide tiles
      }
      expect_invalid("gemm rejects K % 32 != 0", [] {
        int8_t* p = reinterpret_cast<int8_t*>(16);
        float s = 1;
        GemmS8Problem bad;
        bad.a = p, bad.b = p, bad.y = reinterpret_cast<__half*>(16), bad.scale_a = &s, bad.scale_b = &s;
        bad.m = 4, bad.n = 4, bad.k = 48;
        GemmS8Plan plan(bad);
      });
    }
    test_kron(19, 12, 20, 8);
    test_kron(7, 64, 64, 8);
    test_kron(5, 86, 128, 4);
    expect_invalid("kron rejects n2 > 128", [] { make_kron_quant_plan(64, 224, 8); });
    expect_invalid("kron rejects a clip ratio of 0", [] {
      kron_quantize(make_kron_quant_plan(8, 8, 8), nullptr, 1, nullptr, nullptr, {1.0f, 0.0f}, nullptr, nullptr, nullptr);
    });
  } catch (const std::exception& e) {
    std::printf("FAIL  exception: %s\n", e.what());
    ++g_failures;
  }
  std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "ALL PASSED", g_failures);
  return g_failures ? 1 : 0;
}

// GEMM backends for our integer kernels (kernels/gemm_s8.h), timed by the `gemm` evaluator:
//   ours_s8   — INT8 activations (per-token scales) × INT8 weights (per-channel scales), fp32 out
//   ours_w4a8 — the same with INT4 weights packed two per byte (per-channel scales)
//   ours_s8_avx2, ours_w4a8_avx2 — the same kernels forced onto the AVX2 path (the path a
//               CPU without AVX-512 VNNI runs), so both paths are measured on one machine
// Quantizing the activations is not part of run(): it is the fused activation operators'
// job (flatten_quant / kron_quant backends), timed on their own. The dequantizing epilogue
// is part of run(), as it is of any real linear layer.
#include "kernels/gemm_backend.h"
#include "kernels/gemm_backends_int.h"
#include "kernels/gemm_operands.h"
#include "kernels/gemm_s8.h"
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace fb {

int resolve_threads(int threads) {
  return threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
}

SymmetricRows quantize_rows_symmetric(const std::vector<float>& X, long rows, long cols, int bits) {
  const float qmax = float((1 << (bits - 1)) - 1);
  SymmetricRows q{std::vector<int8_t>(X.size()), std::vector<float>(rows)};
  for (long r = 0; r < rows; ++r) {
    const float* x = X.data() + r * cols;
    float absmax = 0;
    for (long c = 0; c < cols; ++c) absmax = std::max(absmax, std::fabs(x[c]));
    const float scale = absmax > 0 ? absmax / qmax : 1.0f;
    q.scales[r] = scale;
    for (long c = 0; c < cols; ++c)
      q.codes[r * cols + c] = int8_t(std::clamp(std::nearbyint(x[c] / scale), -qmax - 1, qmax));
  }
  return q;
}

std::vector<float> dequantize_rows(const SymmetricRows& q, long rows, long cols) {
  std::vector<float> out(q.codes.size());
  for (long r = 0; r < rows; ++r)
    for (long c = 0; c < cols; ++c) out[r * cols + c] = float(q.codes[r * cols + c]) * q.scales[r];
  return out;
}

namespace {

// Per-token INT8 activations × per-channel INT8/INT4 weights, packed once here.
class OursInt : public GemmProblem {
 public:
  OursInt(const GemmShape& s, uint64_t seed, int threads, int weight_bits, GemmIsa isa)
      : s_(s), threads_(resolve_threads(threads)), Y_(size_t(s.m * s.n)) {
    a_ = quantize_rows_symmetric(random_matrix(s.m, s.k, seed), s.m, s.k, 8);
    w_ = quantize_rows_symmetric(random_matrix(s.n, s.k, seed + 1), s.n, s.k, weight_bits);
    packed_ = weight_bits == 8
                  ? pack_weights_s8(w_.codes.data(), s.n, s.k, isa)
                  : pack_weights_s4(pack_int4(w_.codes.data(), int(s.n), int(s.k)).data(), s.n, s.k, isa);
    epilogue_ = {a_.scales.data(), s.m, w_.scales.data(), s.n, nullptr};
  }
  void run() override { gemm_s8_packed(a_.codes.data(), s_.m, packed_, epilogue_, Y_.data(), threads_); }
  // Against the fp32 product of the dequantized operands: only the fp32 epilogue rounds.
  double verify() override {
    run();
    const auto A = dequantize_rows(a_, s_.m, s_.k), B = dequantize_rows(w_, s_.n, s_.k);
    return sampled_gemm_error(A.data(), B.data(), Y_.data(), s_.m, s_.n, s_.k);
  }

 private:
  GemmShape s_;
  int threads_;
  SymmetricRows a_, w_;
  PackedWeights packed_;
  DequantEpilogue epilogue_;
  std::vector<float> Y_;
};

// AVX2 is the least either path needs (best_isa() picks AVX-512 VNNI where present).
bool has_avx2() { return isa_supported(GemmIsa::kAvx2); }

template <int WeightBits, GemmIsa Isa>
std::unique_ptr<GemmProblem> make_ours(const GemmShape& s, uint64_t seed, int threads) {
  return std::make_unique<OursInt>(s, seed, threads, WeightBits, Isa);
}

}  // namespace

FB_REGISTER_GEMM_BACKEND({"ours_s8", gemm_dtype::kS8S8S32,
                          "our INT8 GEMM (AVX-512 VNNI or AVX2), per-token x per-channel dequantizing epilogue",
                          false, has_avx2, make_ours<8, GemmIsa::kAuto>});
FB_REGISTER_GEMM_BACKEND({"ours_w4a8", gemm_dtype::kW4A8,
                          "our INT8 x INT4-weight GEMM (nibbles unpacked in registers), per-token x per-channel epilogue",
                          false, has_avx2, make_ours<4, GemmIsa::kAuto>});
FB_REGISTER_GEMM_BACKEND({"ours_s8_avx2", gemm_dtype::kS8S8S32, "ours_s8 forced onto its AVX2 path (vpmaddwd on int16 pairs)",
                          false, has_avx2, make_ours<8, GemmIsa::kAvx2>});
FB_REGISTER_GEMM_BACKEND({"ours_w4a8_avx2", gemm_dtype::kW4A8, "ours_w4a8 forced onto its AVX2 path", false, has_avx2,
                          make_ours<4, GemmIsa::kAvx2>});

}  // namespace fb

// The fused activation operators as `gemm` evaluator backends, timed at the M×K activation
// shape of the GEMM they feed (N is ignored), so each row of the GEMM table sits beside the
// INT8 GEMM of the same shape:
//   flatten_quant — FlattenQuant's gather+scale+per-tensor INT8 quantize, with a plan that
//                   splits every 64th channel in two (flatten ratio ≈ 1.6%, K'' padded to 32)
//   kron_quant    — FlatQuant's P1ᵀ·X·P2 (n1·n2 = K split as the method splits it) +
//                   per-token INT8 quantize with learned clipping (LAC, kernels/lac.h)
// verify() first demands bit-identical codes from the reference kernel (else it reports an
// error of 1), then returns the quantization error relative to the fp32 values (clipped to
// the code range, as LAC clips them), which must stay within half a quantization step.
#include "kernels/fused_quant.h"
#include "kernels/gemm_backend.h"
#include "kernels/gemm_backends_int.h"
#include "kernels/gemm_operands.h"

#include <algorithm>
#include <cmath>

namespace fb {

namespace {

constexpr int kBits = 8;  // the codes feed the INT8-activation GEMMs (ours_s8, ours_w4a8)
constexpr float kQmax = 127.0f;
constexpr long kVerifyRows = 16;

class FlattenQuantProblem : public GemmProblem {
 public:
  FlattenQuantProblem(const GemmShape& s, uint64_t seed, int threads)
      : m_(s.m), threads_(resolve_threads(threads)), A_(random_matrix(s.m, s.k, seed)) {
    std::vector<int> copies(s.k, 1);
    for (long k = 0; k < s.k; k += 64) copies[k] = 2;
    plan_ = make_flatten_plan(copies, 32);
    Q_.resize(size_t(m_ * plan_.k_out));
  }
  void run() override { flatten_quantize(A_.data(), m_, plan_, kScale, kBits, Q_.data(), threads_); }
  double verify() override {
    run();
    std::vector<int8_t> want(Q_.size());
    flatten_quantize_ref(A_.data(), m_, plan_, kScale, kBits, want.data());
    if (want != Q_) return 1.0;
    double max_err = 0, max_val = 0;
    for (long t = 0; t < m_; ++t)
      for (size_t j = 0; j < plan_.src.size(); ++j) {
        const double exact = double(A_[t * plan_.k_in + plan_.src[j]] * plan_.inv_div[j]);
        max_err = std::max(max_err, std::fabs(exact - double(Q_[t * plan_.k_out + j]) * kScale));
        max_val = std::max(max_val, std::fabs(exact));
      }
    tolerance_ = 0.5 * kScale / max_val * (1 + 1e-5);
    return max_err / max_val;
  }
  double tolerance() const override { return tolerance_; }

 private:
  static constexpr float kScale = 1.0f / kQmax;  // static per-tensor scale: inputs lie in [−1, 1)
  long m_;
  int threads_;
  std::vector<float> A_;
  FlattenPlan plan_;
  std::vector<int8_t> Q_;
  double tolerance_ = 0;
};

class KronQuantProblem : public GemmProblem {
 public:
  KronQuantProblem(const GemmShape& s, uint64_t seed, int threads)
      : m_(s.m), k_(s.k), threads_(resolve_threads(threads)), X_(random_matrix(s.m, s.k, seed)),
        Q_(size_t(s.m * s.k)), scales_(size_t(s.m)) {
    const auto [n1, n2] = kron_factor_sizes(s.k);
    f_ = {n1, n2, random_matrix(n1, n1, seed + 2), random_matrix(n2, n2, seed + 3)};
    for (auto& v : f_.p1) v /= std::sqrt(float(n1));  // keep the transform's scale near 1
    for (auto& v : f_.p2) v /= std::sqrt(float(n2));
  }
  void run() override { kron_quantize(X_.data(), m_, f_, kBits, kBenchmarkClip, Q_.data(), scales_.data(), threads_); }
  // On the first rows only: the reference transform costs 2·K·(n1+n2) scalar flops a token.
  double verify() override {
    run();
    const long rows = std::min(m_, kVerifyRows);
    std::vector<int8_t> want(size_t(rows * k_));
    std::vector<float> want_scales(rows), Y(size_t(rows * k_));
    kron_quantize_ref(X_.data(), rows, f_, kBits, kBenchmarkClip, want.data(), want_scales.data());
    if (!std::equal(want.begin(), want.end(), Q_.begin()) ||
        !std::equal(want_scales.begin(), want_scales.end(), scales_.begin()))
      return 1.0;
    kron_transform_ref(X_.data(), rows, f_, Y.data());
    double worst = 0;
    for (long t = 0; t < rows; ++t) {
      double max_err = 0, max_val = 0;
      const double s = scales_[t];
      for (long j = 0; j < k_; ++j) {
        const double y = std::clamp(double(Y[t * k_ + j]), -(kQmax + 1) * s, kQmax * s);
        max_err = std::max(max_err, std::fabs(y - double(Q_[t * k_ + j]) * scales_[t]));
        max_val = std::max(max_val, std::fabs(y));
      }
      if (max_val > 0) worst = std::max(worst, max_err / max_val);
    }
    return worst;
  }
  double tolerance() const override { return 0.5 / kQmax * (1 + 1e-4); }

 private:
  long m_, k_;
  int threads_;
  std::vector<float> X_;
  KronFactors f_;
  std::vector<int8_t> Q_;
  std::vector<float> scales_;
};

bool always() { return true; }

}  // namespace

FB_REGISTER_GEMM_BACKEND({"flatten_quant", gemm_dtype::kFlattenQuant,
                          "FlattenQuant gather+scale+per-tensor INT8 quantize of the M x K activations "
                          "(every 64th channel split in two, K'' padded to 32)",
                          false, always,
                          [](const GemmShape& s, uint64_t seed, int threads) -> std::unique_ptr<GemmProblem> {
                            return std::make_unique<FlattenQuantProblem>(s, seed, threads);
                          }});
FB_REGISTER_GEMM_BACKEND({"kron_quant", gemm_dtype::kKronQuant,
                          "FlatQuant Kronecker transform P1^T X P2 + per-token INT8 quantize of the M x K activations",
                          false, always,
                          [](const GemmShape& s, uint64_t seed, int threads) -> std::unique_ptr<GemmProblem> {
                            return std::make_unique<KronQuantProblem>(s, seed, threads);
                          }});

}  // namespace fb

// fp32 GEMM backends: OpenBLAS directly, and Eigen on top of it (EIGEN_USE_BLAS).
// These are the baselines every low-bit kernel is compared with in the same run.
#include "kernels/gemm_backend.h"
#include "kernels/gemm_operands.h"
#include "core/tensor.h"

#include <cblas.h>

extern "C" void openblas_set_num_threads(int);

namespace fb {

namespace {

class OpenBlasFp32 : public GemmProblem {
 public:
  OpenBlasFp32(const GemmShape& s, uint64_t seed, int threads)
      : s_(s), A_(random_matrix(s.m, s.k, seed)), B_(random_matrix(s.n, s.k, seed + 1)),
        C_(static_cast<size_t>(s.m * s.n)) {
    if (threads > 0) openblas_set_num_threads(threads);
  }
  void run() override {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s_.m, s_.n, s_.k, 1.f, A_.data(), s_.k, B_.data(), s_.k, 0.f,
                C_.data(), s_.n);
  }
  double verify() override {
    run();
    return sampled_gemm_error(A_.data(), B_.data(), C_.data(), s_.m, s_.n, s_.k);
  }

 private:
  GemmShape s_;
  std::vector<float> A_, B_, C_;
};

class EigenFp32 : public GemmProblem {
 public:
  EigenFp32(const GemmShape& s, uint64_t seed, int threads) : s_(s) {
    auto a = random_matrix(s.m, s.k, seed), b = random_matrix(s.n, s.k, seed + 1);
    A_ = Eigen::Map<Mat>(a.data(), s.m, s.k);
    B_ = Eigen::Map<Mat>(b.data(), s.n, s.k);
    C_.resize(s.m, s.n);
    if (threads > 0) openblas_set_num_threads(threads);
  }
  void run() override { C_.noalias() = A_ * B_.transpose(); }
  double verify() override {
    run();
    return sampled_gemm_error(A_.data(), B_.data(), C_.data(), s_.m, s_.n, s_.k);
  }

 private:
  GemmShape s_;
  Mat A_, B_, C_;
};

bool always() { return true; }

}  // namespace

FB_REGISTER_GEMM_BACKEND({"openblas_fp32", gemm_dtype::kFp32, "OpenBLAS cblas_sgemm (C = A·Bᵀ)", true, always,
                          [](const GemmShape& s, uint64_t seed, int threads) -> std::unique_ptr<GemmProblem> {
                            return std::make_unique<OpenBlasFp32>(s, seed, threads);
                          }});
FB_REGISTER_GEMM_BACKEND({"eigen_fp32", gemm_dtype::kFp32, "Eigen product on top of OpenBLAS (EIGEN_USE_BLAS)", true, always,
                          [](const GemmShape& s, uint64_t seed, int threads) -> std::unique_ptr<GemmProblem> {
                            return std::make_unique<EigenFp32>(s, seed, threads);
                          }});

}  // namespace fb

#include "kernels/cuda/cublas_baselines.h"

#include "kernels/cuda/common.h"
#include "kernels/gemm_dtype.h"

#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>

namespace fb::cuda {

namespace {

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + " failed: cublas status " + std::to_string(int(s)));
}

constexpr size_t kWorkspaceBytes = 64ull << 20;

}  // namespace

struct LibGemm::Impl {
  LibGemmKind kind;
  long m, n, k;
  const void *a, *b;
  void* y;
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo{};
  void* workspace = nullptr;
};

const char* LibGemm::dtype_name(LibGemmKind kind) {
  switch (kind) {
    case LibGemmKind::kFp16: return gemm_dtype::kFp16;
    case LibGemmKind::kS8S32: return gemm_dtype::kS8S8S32;
    case LibGemmKind::kFp8E4M3: return gemm_dtype::kFp8E4M3;
  }
  return "?";
}

LibGemm::LibGemm(LibGemmKind kind, long m, long n, long k, const void* a, const void* b, void* y)
    : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.kind = kind, im.m = m, im.n = n, im.k = k, im.a = a, im.b = b, im.y = y;
  if (kind == LibGemmKind::kFp16) {
    check_cublas(cublasCreate(&im.blas), "cublasCreate");
    FB_CUDA_CHECK(cudaMalloc(&im.workspace, kWorkspaceBytes));
    check_cublas(cublasSetWorkspace(im.blas, im.workspace, kWorkspaceBytes), "cublasSetWorkspace");
    return;
  }
  const bool int8 = kind == LibGemmKind::kS8S32;
  const cudaDataType_t in_type = int8 ? CUDA_R_8I : CUDA_R_8F_E4M3;
  const cudaDataType_t out_type = int8 ? CUDA_R_32I : CUDA_R_16F;
  check_cublas(cublasLtCreate(&im.lt), "cublasLtCreate");
  check_cublas(cublasLtMatmulDescCreate(&im.desc, int8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F,
                                        int8 ? CUDA_R_32I : CUDA_R_32F),
               "cublasLtMatmulDescCreate");
  const cublasOperation_t trans = CUBLAS_OP_T, no_trans = CUBLAS_OP_N;
  check_cublas(cublasLtMatmulDescSetAttribute(im.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)), "TRANSA");
  check_cublas(cublasLtMatmulDescSetAttribute(im.desc, CUBLASLT_MATMUL_DESC_TRANSB, &no_trans, sizeof(no_trans)), "TRANSB");
  // Column-major view: first operand B (K×N, transposed), second A (K×M), output N×M.
  check_cublas(cublasLtMatrixLayoutCreate(&im.la, in_type, k, n, k), "layout B");
  check_cublas(cublasLtMatrixLayoutCreate(&im.lb, in_type, k, m, k), "layout A");
  check_cublas(cublasLtMatrixLayoutCreate(&im.lc, out_type, n, m, n), "layout C");
  FB_CUDA_CHECK(cudaMalloc(&im.workspace, kWorkspaceBytes));

  cublasLtMatmulPreference_t pref = nullptr;
  check_cublas(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const size_t ws = kWorkspaceBytes;
  check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
               "preference workspace");
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(im.lt, im.desc, im.la, im.lb, im.lc, im.lc, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    throw std::runtime_error(std::string("cuBLASLt has no ") + dtype_name(kind) + " algorithm for M=" +
                             std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k));
  im.algo = result.algo;
}

LibGemm::~LibGemm() {
  Impl& im = *impl_;
  if (im.la) cublasLtMatrixLayoutDestroy(im.la);
  if (im.lb) cublasLtMatrixLayoutDestroy(im.lb);
  if (im.lc) cublasLtMatrixLayoutDestroy(im.lc);
  if (im.desc) cublasLtMatmulDescDestroy(im.desc);
  if (im.lt) cublasLtDestroy(im.lt);
  if (im.blas) cublasDestroy(im.blas);
  cudaFree(im.workspace);
}

void LibGemm::run(cudaStream_t stream) const {
  const Impl& im = *impl_;
  if (im.kind == LibGemmKind::kFp16) {
    const float one = 1.0f, zero = 0.0f;
    check_cublas(cublasSetStream(im.blas, stream), "cublasSetStream");
    check_cublas(cublasGemmEx(im.blas, CUBLAS_OP_T, CUBLAS_OP_N, int(im.n), int(im.m), int(im.k), &one, im.b,
                              CUDA_R_16F, int(im.k), im.a, CUDA_R_16F, int(im.k), &zero, im.y, CUDA_R_16F, int(im.n),
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx fp16");
    return;
  }
  const int32_t one_i = 1, zero_i = 0;
  const float one_f = 1.0f, zero_f = 0.0f;
  const bool int8 = im.kind == LibGemmKind::kS8S32;
  const void* alpha = int8 ? static_cast<const void*>(&one_i) : &one_f;
  const void* beta = int8 ? static_cast<const void*>(&zero_i) : &zero_f;
  check_cublas(cublasLtMatmul(im.lt, im.desc, alpha, im.b, im.la, im.a, im.lb, beta, im.y, im.lc, im.y, im.lc,
                              &im.algo, im.workspace, kWorkspaceBytes, stream),
               "cublasLtMatmul");
}

}  // namespace fb::cuda

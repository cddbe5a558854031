// Library baselines timed beside our kernels, each for Y[M×N] = A[M×K]·B[N×K]ᵀ with
// row-major operands (the "TN" form the integer and fp8 tensor-core paths require):
//   fp16    cublasGemmEx, fp16 in/out, fp32 accumulation (tensor cores)
//   s8s8s32 cuBLASLt, int8 in, int32 out (IMMA); dequantization not included
//   fp8e4m3 cuBLASLt, e4m3 in, fp16 out, fp32 accumulation, unit scales
// Row-major C = A·Bᵀ is column-major Cᵀ = B·Aᵀ, so each call passes B first, transposed.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <memory>
#include <string>

namespace fb::cuda {

enum class LibGemmKind { kFp16, kS8S32, kFp8E4M3 };

class LibGemm {
 public:
  // a, b, y: device buffers of the kind's element types. Throws std::runtime_error when
  // the library has no algorithm for the shape (the caller records the backend as skipped).
  LibGemm(LibGemmKind kind, long m, long n, long k, const void* a, const void* b, void* y);
  ~LibGemm();
  LibGemm(const LibGemm&) = delete;
  LibGemm& operator=(const LibGemm&) = delete;
  void run(cudaStream_t stream) const;
  static const char* dtype_name(LibGemmKind kind);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace fb::cuda

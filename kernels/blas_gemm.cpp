#include "kernels/blas_gemm.h"

#include <cblas.h>

namespace fb {

void gemm_overwrite(const float* A, long lda, const float* B, long ldb, bool b_transposed, float* C, long ldc,
                    long m, long n, long k) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, b_transposed ? CblasTrans : CblasNoTrans, int(m), int(n), int(k), 1.0f, A,
              int(lda), B, int(ldb), 0.0f, C, int(ldc));
}

void gemm_overwrite(const double* A, long lda, const double* B, long ldb, bool b_transposed, double* C, long ldc,
                    long m, long n, long k) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, b_transposed ? CblasTrans : CblasNoTrans, int(m), int(n), int(k), 1.0, A,
              int(lda), B, int(ldb), 0.0, C, int(ldc));
}

}  // namespace fb

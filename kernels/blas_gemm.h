// C = A·B or A·Bᵀ through OpenBLAS with β = 0, on row-major operands given by pointer and
// leading dimension (blocks of larger matrices included). Eigen's `C.noalias() = A·B` on top
// of BLAS (EIGEN_USE_BLAS) zeroes C first and then accumulates into it, a memset as large as
// the product's output: in FlatQuant's calibration attention that was 7% of a step
// (methods/flatquant/block_ops.cpp). The results are the same bits (0 + x = x).
// Apart from cblas.h, which clashes with Eigen's BLAS declarations in one translation unit.
#pragma once

namespace fb {

void gemm_overwrite(const float* A, long lda, const float* B, long ldb, bool b_transposed, float* C, long ldc,
                    long m, long n, long k);
void gemm_overwrite(const double* A, long lda, const double* B, long ldb, bool b_transposed, double* C, long ldc,
                    long m, long n, long k);

}  // namespace fb

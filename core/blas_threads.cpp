#include "core/blas_threads.h"

extern "C" {  // OpenBLAS's thread control (cblas.h declares it too, but clashes with Eigen's BLAS header)
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace fb {

int blas_threads() { return openblas_get_num_threads(); }

BlasThreadsFor::BlasThreadsFor(int threads) {
  const int now = openblas_get_num_threads();
  if (now != threads) saved_ = now, openblas_set_num_threads(threads);
}

BlasThreadsFor::~BlasThreadsFor() {
  if (saved_ > 0) openblas_set_num_threads(saved_);
}

}  // namespace fb

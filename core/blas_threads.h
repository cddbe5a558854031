// OpenBLAS's thread count for a scope. Work that threads itself (OpenMP over windows, heads or
// documents) runs its GEMMs single-threaded meanwhile: two thread pools on the same cores make
// each other wait (FlatQuant's calibration ran 2.3× slower with both on 2 cores).
#pragma once

namespace fb {

int blas_threads();  // OpenBLAS's current thread count

class BlasThreadsFor {
 public:
  explicit BlasThreadsFor(int threads);  // sets the count when it differs
  ~BlasThreadsFor();                     // restores it
  BlasThreadsFor(const BlasThreadsFor&) = delete;
  BlasThreadsFor& operator=(const BlasThreadsFor&) = delete;

 private:
  int saved_ = 0;
};

}  // namespace fb

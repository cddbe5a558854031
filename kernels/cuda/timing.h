// CUDA-event timing (docs/backends.md#cuda-kernels): warm-up launches first, then one event pair
// per repetition (optionally after an L2 flush, outside the timed pair), median taken by
// the caller. The repetition count adapts to the kernel's length: enough to fill
// `budget_ms`, between 5 and max_reps.
#pragma once

#include "kernels/cuda/common.h"

#include <functional>
#include <vector>

namespace fb::cuda {

// Evicts L2 by writing a buffer of twice its size.
class L2Flusher {
 public:
  L2Flusher();
  ~L2Flusher();
  void flush(cudaStream_t stream) const;
  size_t bytes() const { return bytes_; }

 private:
  void* buffer_ = nullptr;
  size_t bytes_ = 0;
};

struct TimingOptions {
  int warmup = 3;
  int max_reps = 50;
  double budget_ms = 150;
  const L2Flusher* flusher = nullptr;  // null: no flush between repetitions
};

// Per-repetition times in ms.
std::vector<double> time_launches(const std::function<void(cudaStream_t)>& launch, const TimingOptions& opt,
                                  cudaStream_t stream);

}  // namespace fb::cuda

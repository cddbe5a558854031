#include "kernels/cuda/timing.h"

#include <algorithm>

namespace fb::cuda {

L2Flusher::L2Flusher() {
  int dev = 0, l2 = 0;
  FB_CUDA_CHECK(cudaGetDevice(&dev));
  FB_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  bytes_ = 2 * size_t(l2);
  FB_CUDA_CHECK(cudaMalloc(&buffer_, bytes_));
}

L2Flusher::~L2Flusher() { cudaFree(buffer_); }

void L2Flusher::flush(cudaStream_t stream) const { FB_CUDA_CHECK(cudaMemsetAsync(buffer_, 0x5A, bytes_, stream)); }

namespace {

struct EventPair {
  cudaEvent_t start = nullptr, stop = nullptr;
  EventPair() {
    FB_CUDA_CHECK(cudaEventCreate(&start));
    FB_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~EventPair() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  float elapsed_ms() const {
    float ms = 0;
    FB_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms;
  }
};

}  // namespace

std::vector<double> time_launches(const std::function<void(cudaStream_t)>& launch, const TimingOptions& opt,
                                  cudaStream_t stream) {
  for (int i = 0; i < opt.warmup; ++i) launch(stream);
  // One timed probe sizes the repetition count.
  EventPair probe;
  if (opt.flusher) opt.flusher->flush(stream);
  FB_CUDA_CHECK(cudaEventRecord(probe.start, stream));
  launch(stream);
  FB_CUDA_CHECK(cudaEventRecord(probe.stop, stream));
  FB_CUDA_CHECK(cudaEventSynchronize(probe.stop));
  const double once = std::max(1e-3, double(probe.elapsed_ms()));
  const int reps = std::clamp(int(opt.budget_ms / once), 5, std::max(5, opt.max_reps));

  std::vector<EventPair> events(static_cast<size_t>(reps));
  for (auto& e : events) {
    if (opt.flusher) opt.flusher->flush(stream);
    FB_CUDA_CHECK(cudaEventRecord(e.start, stream));
    launch(stream);
    FB_CUDA_CHECK(cudaEventRecord(e.stop, stream));
  }
  FB_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> ms;
  ms.reserve(events.size());
  for (const auto& e : events) ms.push_back(e.elapsed_ms());
  return ms;
}

}  // namespace fb::cuda

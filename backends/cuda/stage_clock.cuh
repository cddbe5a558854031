// Device time per stage of the decoder (included by backends/cuda/device_model.cu): a CUDA event
// is recorded where each stage starts, on the one stream every kernel and cuBLAS call of the
// model uses, so two consecutive events bracket exactly one stage's work. Recording an event
// costs the host about a microsecond and the device nothing measurable; the events are read
// once per score call, when the host waits for the device anyway. The totals go into the job's
// provenance (ran_on.stage_ms), so every CUDA row says where its time went.
#pragma once

#include <map>
#include <string>
#include <vector>

class StageClock {
 public:
  StageClock() = default;
  StageClock(const StageClock&) = delete;
  StageClock& operator=(const StageClock&) = delete;
  ~StageClock() {
    for (cudaEvent_t e : pool_) cudaEventDestroy(e);
  }

  // Ends the open stage (if any) and starts `stage` (a string literal); null ends without starting.
  void enter(const char* stage) {
    if (used_ == pool_.size()) {
      cudaEvent_t e = nullptr;
      FB_CU(cudaEventCreate(&e));
      pool_.push_back(e);
    }
    FB_CU(cudaEventRecord(pool_[used_], 0));
    names_.push_back(stage);
    ++used_;
  }

  // Ends the open stage, waits for the device and adds each stage's time to the totals.
  void settle() {
    if (used_ == 0) return;
    enter(nullptr);
    FB_CU(cudaEventSynchronize(pool_[used_ - 1]));
    for (size_t i = 0; i + 1 < used_; ++i) {
      if (!names_[i]) continue;
      float ms = 0;
      FB_CU(cudaEventElapsedTime(&ms, pool_[i], pool_[i + 1]));
      totals_[names_[i]] += ms;
    }
    used_ = 0;
    names_.clear();
  }

  const std::map<std::string, double>& totals_ms() const { return totals_; }
  void reset() { totals_.clear(); }

 private:
  std::vector<cudaEvent_t> pool_;
  std::vector<const char*> names_;
  size_t used_ = 0;
  std::map<std::string, double> totals_;
};

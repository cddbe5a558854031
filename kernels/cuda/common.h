// Error checking shared by every CUDA file: each runtime call's status is checked and a
// failure throws with the call, file and line, so a tool or test stops with a clear message.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace fb::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " +
                           cudaGetErrorString(e));
}

}  // namespace fb::cuda

#define FB_CUDA_CHECK(call)                                                        \
  do {                                                                             \
    cudaError_t fb_cuda_err_ = (call);                                             \
    if (fb_cuda_err_ != cudaSuccess) ::fb::cuda::throw_cuda_error(fb_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors surface here.
#define FB_CUDA_CHECK_LAUNCH() FB_CUDA_CHECK(cudaGetLastError())

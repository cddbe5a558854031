#include "kernels/cuda/operands.h"

#include "kernels/cuda/common.h"

#include <cuda_fp8.h>

namespace fb::cuda {

namespace {

__device__ inline uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
__device__ inline float unit(uint64_t seed, size_t i) { return float(mix(seed * 0x100000001B3ull + i) >> 40) * 0x1p-24f; }

template <class F>
__global__ void fill_kernel(size_t n, F f) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) f(i);
}

template <class F>
void launch_fill(size_t n, F f) {
  if (n == 0) return;
  fill_kernel<<<1024, 256>>>(n, f);
  FB_CUDA_CHECK_LAUNCH();
  FB_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace

void fill_uniform_half(__half* p, size_t n, float lo, float hi, uint64_t seed) {
  launch_fill(n, [=] __device__(size_t i) { p[i] = __float2half(lo + (hi - lo) * unit(seed, i)); });
}
void fill_uniform_float(float* p, size_t n, float lo, float hi, uint64_t seed) {
  launch_fill(n, [=] __device__(size_t i) { p[i] = lo + (hi - lo) * unit(seed, i); });
}
void fill_int8(int8_t* p, size_t n, int lo, int hi, uint64_t seed) {
  launch_fill(n, [=] __device__(size_t i) { p[i] = int8_t(lo + int(unit(seed, i) * float(hi - lo + 1) * 0.999999f)); });
}
void fill_bytes(uint8_t* p, size_t n, uint64_t seed) {
  launch_fill(n, [=] __device__(size_t i) { p[i] = uint8_t(mix(seed * 0x100000001B3ull + i)); });
}
void fill_fp8_e4m3(uint8_t* p, size_t n, float lo, float hi, uint64_t seed) {
  launch_fill(n, [=] __device__(size_t i) {
    p[i] = __nv_cvt_float_to_fp8(lo + (hi - lo) * unit(seed, i), __NV_SATFINITE, __NV_E4M3);
  });
}

}  // namespace fb::cuda

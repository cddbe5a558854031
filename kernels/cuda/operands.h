// Random device operands for timing: generated on the GPU from a hash of (seed, index), so
// a sweep fills gigabytes in milliseconds. Never zeros: they hide unwritten outputs and can run
// faster than real data (docs/backends.md#cuda-kernels).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fb::cuda {

void fill_uniform_half(__half* p, size_t n, float lo, float hi, uint64_t seed);
void fill_uniform_float(float* p, size_t n, float lo, float hi, uint64_t seed);
void fill_int8(int8_t* p, size_t n, int lo, int hi, uint64_t seed);          // uniform in [lo, hi]
void fill_bytes(uint8_t* p, size_t n, uint64_t seed);                         // e.g. packed int4
void fill_fp8_e4m3(uint8_t* p, size_t n, float lo, float hi, uint64_t seed);  // finite e4m3 values

}  // namespace fb::cuda

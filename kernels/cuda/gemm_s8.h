// Our Hopper integer GEMMs (sm_90a, wgmma through inline PTX, TMA loads):
//
//   Y[M×N] (fp16) = dequant( A[M×K] (int8) · Bᵀ )      B: N×K int8, or N×K int4 packed
//   dequant:  Y[m,n] = float(acc[m,n]) · scale_a[m or 0] · scale_b[n or 0]
//
// Layouts follow kernels/gemm_ref.h: row-major, K contiguous; packed int4 has the even k
// in the low nibble, two's complement. Hopper has no int4 tensor-core instruction, so the
// W4A8 path moves packed int4 from memory (half the weight bytes) and widens it to int8
// in shared memory before wgmma.
//
// Requirements (checked, std::invalid_argument otherwise): K a positive multiple of 32
// (TMA needs 16-byte row strides, also for the packed rows; FlattenQuant pads K to 32 for
// the same reason); device pointers 16-byte aligned; M, N ≥ 1, any value.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

namespace fb::cuda {

enum class WeightFormat { kInt8, kInt4Packed };

struct GemmS8Problem {
  const int8_t* a = nullptr;      // M×K activations codes
  const void* b = nullptr;        // N×K int8, or N×(K/2) bytes of packed int4
  __half* y = nullptr;            // M×N output
  const float* scale_a = nullptr; // 1 (per-tensor) or M (per-token) floats
  long n_scale_a = 1;
  const float* scale_b = nullptr; // 1 (per-tensor) or N (per-channel) floats
  long n_scale_b = 1;
  long m = 0, n = 0, k = 0;
  WeightFormat weights = WeightFormat::kInt8;
};

// A prepared launch for one problem: tensor maps, tile shape, split-K workspace. Build it
// outside the timed region; run() only launches.
class GemmS8Plan {
 public:
  // force_split > 0 overrides the split-K heuristic (tests use it to cover both paths);
  // force_bn is 0 (heuristic), 64, 128 or 256.
  explicit GemmS8Plan(const GemmS8Problem& problem, int force_split = 0, int force_bn = 0);
  ~GemmS8Plan();
  GemmS8Plan(const GemmS8Plan&) = delete;
  GemmS8Plan& operator=(const GemmS8Plan&) = delete;

  void run(cudaStream_t stream) const;
  std::string describe() const;  // e.g. "tile=128x256x128 stages=4 split=1 grid=256"

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace fb::cuda

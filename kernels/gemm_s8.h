// Fast integer GEMMs for the CPU: INT8 activations × INT8 or INT4 weights → INT32, with a
// fused dequantizing epilogue (fp32 out). Weights are packed once (prepare time) into a
// blocked layout for one instruction set; activations are used in place.
//
// Two paths, chosen at run time by CPU detection (the build needs no -march=native):
//   avx512_vnni — vpdpbusd on 64-col × 6-row register tiles. vpdpbusd multiplies unsigned
//                 by signed bytes, so the weights are stored with an offset (s8: w+128,
//                 s4: w+8, both non-negative) and each row's offset·Σₖ a[m,k] is subtracted
//                 at the end: exact in int32 for K ≤ 65793 (larger K is refused). Activations are
//                 packed per (row block, k block) so a tile's broadcasts are contiguous.
//   avx2        — vpmaddwd on sign-extended int16 pairs (16-col × 4-row tiles); exact, and
//                 free of vpmaddubsw's int16 saturation. INT4 weights use the same offset
//                 trick (w+8) so they unpack with one mask and one shift.
// The plain references are in kernels/gemm_ref.h; tests/kernels_gemm_test.cpp holds them equal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace fb {

enum class GemmIsa { kAuto, kAvx2, kAvx512Vnni };

const char* isa_name(GemmIsa isa);
bool isa_supported(GemmIsa isa);  // the CPU (and OS) can run this path
GemmIsa best_isa();                // the fastest supported path; throws if the CPU has not even AVX2

enum class WeightFormat { kS8, kS4 };

// B (N×K weights) packed for one path. Movable, not copyable.
struct PackedWeights {
  GemmIsa isa = GemmIsa::kAuto;
  WeightFormat format = WeightFormat::kS8;
  long n = 0, k = 0;
  long panels = 0;        // ceil(N / panel width)
  long panel_bytes = 0;   // bytes from one panel to the next
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> data{nullptr, nullptr};
  size_t bytes() const { return size_t(panels) * size_t(panel_bytes); }
};

// isa = kAuto picks best_isa(); naming an unsupported path throws std::runtime_error, so a
// test can force either path on a machine that has both.
PackedWeights pack_weights_s8(const int8_t* B, long N, long K, GemmIsa isa = GemmIsa::kAuto);
// B4 in the layout of kernels/gemm_ref.h (two's complement nibbles, row stride (K+1)/2).
PackedWeights pack_weights_s4(const uint8_t* B4, long N, long K, GemmIsa isa = GemmIsa::kAuto);

// Y[m,n] = float(C[m,n]) · sa[m or 0] · sb[n or 0] (+ bias[n]); counts as in dequantize_s32_ref.
struct DequantEpilogue {
  const float* sa = nullptr;
  long n_sa = 1;
  const float* sb = nullptr;
  long n_sb = 1;
  const float* bias = nullptr;  // N values, or null
};

// C (M×N int32) = A (M×K int8, row-major, row stride K) · Bᵀ.
void gemm_s8_packed(const int8_t* A, long M, const PackedWeights& B, int32_t* C, int threads = 1);
// Y (M×N fp32) = dequantize(A · Bᵀ), the epilogue applied in registers.
void gemm_s8_packed(const int8_t* A, long M, const PackedWeights& B, const DequantEpilogue& epilogue, float* Y,
                    int threads = 1);

}  // namespace fb

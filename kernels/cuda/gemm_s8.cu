// INT8×INT8→INT32 and W4A8 GEMMs for Hopper with a dequantizing fp16 epilogue.
//
// Structure (one CTA = 3 warpgroups, 384 threads):
//   warpgroup 0   producer: one thread issues TMA loads of A and B tiles into a ring of
//                 STAGES shared-memory buffers, each guarded by a "full" mbarrier
//                 (transaction bytes) and an "empty" mbarrier (released by consumers);
//   warpgroups 1,2 consumers: each owns 64 rows of the 128-row tile and issues
//                 wgmma m64n{BN}k32 (4 per 128-byte k-block), keeping one k-block of
//                 wgmma in flight while the next is issued.
// W4A8: the packed tile lands in shared memory as is (half the bytes of int8); warps 1-3
// of the producer warpgroup widen it to int8 in the 128-byte-swizzled layout wgmma reads
// (a third mbarrier per stage says "widened"), so widening overlaps the consumers' wgmmas.
// Split-K (small M, where the tiles alone cannot fill the GPU): each split adds its
// dequantized partial tile into an fp32 workspace with atomics; the last split of a tile
// (a per-tile counter) converts it to fp16 and zeroes the workspace for the next launch.
#include "kernels/cuda/gemm_s8.h"

#include "kernels/cuda/common.h"
#include "kernels/cuda/hopper.cuh"
#include "kernels/cuda/wgmma_s8.cuh"

#include <cudaTypedefs.h>

#include <algorithm>
#include <stdexcept>

namespace fb::cuda {

namespace {

constexpr int kBM = 128;        // rows of A per CTA (two consumer warpgroups × 64)
constexpr int kBK = 128;        // k per block: one 128-byte swizzle row of int8
constexpr int kThreads = 384;
constexpr int kConsumerThreads = 256;
constexpr int kGroupM = 8;
constexpr int kWideners = 96;   // W4A8: warps 1-3 of the producer warpgroup widen int4 → int8      // tile raster: 8 M-tiles share each B tile in L2

struct KernelParams {
  int m, n, k;
  int tiles_m, tiles_n;
  int kblocks, kblocks_per_split, splits;
  __half* y;
  const float* scale_a;
  const float* scale_b;
  int scale_a_per_row, scale_b_per_col;
  int y_vec16;          // N % 8 == 0 and Y 16-byte aligned: 16-byte output stores
  int a_box_bytes;      // bytes of A per stage: 128 rows, or 64 when M ≤ 64 (no zero-filled half)
  float acc_scale;      // 1, or 1/16 for W4A8 (its widened weights are 16·w)
  float* workspace;     // M×N fp32, zero between launches (split-K only)
  unsigned* counters;   // one per tile, zero between launches (split-K only)
};

template <int BN, int STAGES, bool kW4, int A_ROWS>
struct Layout {
  // 128-k sub-blocks per stage: 2 for the small-M W4A8 plans, so that each TMA row of
  // packed B is 128 bytes long (with 64-byte rows the copy engine moved half the bytes
  // per row request and W4A8 streamed no faster than INT8).
  static constexpr int kSub = (kW4 && A_ROWS == 64) ? 2 : 1;
  static constexpr int kABytes = kSub * A_ROWS * kBK;  // A_ROWS: 128, or 64 for the small-M plans
  static constexpr int kBBytes = kW4 ? kSub * BN * kBK / 2 : BN * kBK;  // as loaded (packed for W4)
  static constexpr int kWideBytes = kSub * BN * kBK;                    // widened int8 B (W4)
  static constexpr int kAOffset = 0;
  static constexpr int kBOffset = STAGES * kABytes;
  static constexpr int kWideOffset = kBOffset + STAGES * kBBytes;
  static constexpr int kBarOffset = kWideOffset + (kW4 ? STAGES * kWideBytes : 0);
  static constexpr int kBytes = kBarOffset + 3 * STAGES * 8;  // full, empty, widened
  static constexpr int kDynamicSmem = kBytes + 1024;          // slack to align the base to 1024
  static_assert(kABytes % 1024 == 0 && kBBytes % 1024 == 0, "tiles must keep 1024-byte alignment");
  static_assert(2 * 64 * (BN * 2 + 16) <= kWideOffset, "the epilogue's staging tile must fit in the stages");
};

// Group-M raster: consecutive CTAs walk down kGroupM tile rows before moving right, so
// the CTAs resident at once share A and B tiles through L2.
__device__ inline void tile_of(int t, int tiles_m, int tiles_n, int& tm, int& tn) {
  const int per_group = kGroupM * tiles_n;
  const int first_m = (t / per_group) * kGroupM;
  const int group_rows = min(tiles_m - first_m, kGroupM);
  const int r = t % per_group;
  tm = first_m + r % group_rows;
  tn = r / group_rows;
}

// Widens 8 packed int4 (one 32-bit word, k ascending from the low nibble) to 8 bytes
// holding 16·v: each nibble moves to the high half of its byte, where its two's-complement
// sign bit becomes the byte's sign bit, so no sign extension is needed. The accumulator is
// then 16·(A·B), exact in int32 for K < 2^31 / (16·128·8) ≈ 131000, and the epilogue
// multiplies by 1/16 (exact: a power of two).
__device__ inline void widen_int4x8(uint32_t w, uint32_t& first, uint32_t& second) {
  const uint32_t even = (w << 4) & 0xF0F0F0F0u, odd = w & 0xF0F0F0F0u;
  first = __byte_perm(even, odd, 0x5140);   // k0 k1 k2 k3
  second = __byte_perm(even, odd, 0x7362);  // k4 k5 k6 k7
}

// Packed tile (BN rows × SUB·64 bytes, plain) → SUB int8 tiles (BN rows × 128 bytes each,
// 128-byte swizzle: 16-byte chunk c of row r lives at chunk c ^ (r % 8)). tid in
// [0, kWideners).
template <int BN, int SUB>
__device__ inline void widen_tile(const uint8_t* packed, uint8_t* wide, int tid) {
#pragma unroll 4
  for (int c = tid; c < BN * 4 * SUB; c += kWideners) {
    const int row = c / (4 * SUB), pc = c % (4 * SUB);
    const int sub = pc / 4, q = pc % 4;  // 128-k sub-block, and 32-k chunk within it
    const uint4 v = *reinterpret_cast<const uint4*>(packed + row * 64 * SUB + pc * 16);
    uint4 lo, hi;
    widen_int4x8(v.x, lo.x, lo.y);
    widen_int4x8(v.y, lo.z, lo.w);
    widen_int4x8(v.z, hi.x, hi.y);
    widen_int4x8(v.w, hi.z, hi.w);
    uint8_t* out = wide + sub * BN * 128 + row * 128;
    const int sw = row & 7;
    *reinterpret_cast<uint4*>(out + (((2 * q) ^ sw) << 4)) = lo;
    *reinterpret_cast<uint4*>(out + (((2 * q + 1) ^ sw) << 4)) = hi;
  }
}

template <int BN, int STAGES, bool kW4, int A_ROWS>
__device__ void producer(const CUtensorMap* tm_a, const CUtensorMap* tm_b, uint8_t* smem, uint64_t* full,
                         uint64_t* empty, int tile_m, int tile_n, int kb0, int nkb, int a_box_bytes) {
  using L = Layout<BN, STAGES, kW4, A_ROWS>;
  for (int i = 0; i < nkb; ++i) {
    const int s = i % STAGES;
    if (i >= STAGES) mbar_wait(&empty[s], ((i / STAGES) - 1) & 1);
    mbar_arrive_expect_tx(&full[s], L::kSub * a_box_bytes + L::kBBytes);
    const int kb = kb0 + i;  // in stages of kSub·128 k
#pragma unroll
    for (int j = 0; j < L::kSub; ++j)
      tma_load_2d(smem + L::kAOffset + s * L::kABytes + j * A_ROWS * kBK, tm_a, &full[s], (kb * L::kSub + j) * kBK,
                  tile_m * kBM);
    tma_load_2d(smem + L::kBOffset + s * L::kBBytes, tm_b, &full[s], kW4 ? kb * L::kSub * kBK / 2 : kb * kBK,
                tile_n * BN);
  }
}

// W4A8: warps 1-3 of the producer warpgroup widen each landed packed tile into the
// stage's int8 tile while the consumers' wgmmas run, then arrive on `widened`. The stage
// is refilled (and so rewritten) only after the consumers release it.
template <int BN, int STAGES, int A_ROWS>
__device__ void widener(uint8_t* smem, uint64_t* full, uint64_t* widened, int nkb) {
  using L = Layout<BN, STAGES, true, A_ROWS>;
  const int tid = threadIdx.x - 32;
  for (int i = 0; i < nkb; ++i) {
    const int s = i % STAGES;
    mbar_wait(&full[s], (i / STAGES) & 1);
    widen_tile<BN, L::kSub>(smem + L::kBOffset + s * L::kBBytes, smem + L::kWideOffset + s * L::kWideBytes, tid);
    fence_proxy_async();  // the stores are read next by wgmma (async proxy)
    __syncwarp();
    if (tid % 32 == 0) mbar_arrive(&widened[s]);
  }
}

// Split-K: adds one consumer warpgroup's dequantized 64×BN partial tile into the fp32
// workspace. wgmma accumulator layout: for 8-column group j, register 4j+2h+c holds
// row = warp·16 + lane/4 + 8h, col = 8j + 2·(lane%4) + c.
template <int BN>
__device__ void add_partial_tile(const KernelParams& p, const int32_t (&acc)[BN / 2], int row_base, int col_base) {
  const int lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = row_base + warp * 16 + lane / 4 + 8 * h;
    if (row >= p.m) continue;
    const float sa = p.scale_a[p.scale_a_per_row ? row : 0];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      const int col = col_base + 8 * j + 2 * (lane % 4);
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        if (col + c >= p.n) continue;
        const float v = float(acc[4 * j + 2 * h + c]) * p.acc_scale * sa * p.scale_b[p.scale_b_per_col ? col + c : 0];
        atomicAdd(&p.workspace[long(row) * p.n + col + c], v);
      }
    }
  }
}

// Non-split epilogue: each consumer warpgroup dequantizes its 64×BN fragment into a
// padded fp16 tile in shared memory (the pipeline buffers, free once both warpgroups'
// wgmmas are done), then writes it out row-contiguous, 16 bytes per thread and store.
// Storing fragments straight to global memory costs one 2-byte store per element and
// dominated short-K shapes.
template <int BN>
__device__ void store_tile_staged(const KernelParams& p, const int32_t (&acc)[BN / 2], int row_base, int col_base,
                                  uint8_t* staging, int cw) {
  constexpr int kPitch = BN * 2 + 16;  // +16 bytes: the fragment writes hit 32 distinct banks
  constexpr int kChunksPerRow = BN / 8;
  uint8_t* tile = staging + cw * 64 * kPitch;
  const int lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = warp * 16 + lane / 4 + 8 * h;
    const int row = row_base + r;
    const float sa = row < p.m ? p.scale_a[p.scale_a_per_row ? row : 0] : 0.0f;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      const int c = 8 * j + 2 * (lane % 4), col = col_base + c;
      const float sb0 = col < p.n ? p.scale_b[p.scale_b_per_col ? col : 0] : 0.0f;
      const float sb1 = col + 1 < p.n ? p.scale_b[p.scale_b_per_col ? col + 1 : 0] : 0.0f;
      const float v0 = float(acc[4 * j + 2 * h]) * p.acc_scale * sa * sb0;
      const float v1 = float(acc[4 * j + 2 * h + 1]) * p.acc_scale * sa * sb1;
      const __half2 v = __floats2half2_rn(v0, v1);
      *reinterpret_cast<__half2*>(tile + r * kPitch + c * 2) = v;
    }
  }
  named_barrier_sync(2 + cw, 128);
  for (int c = threadIdx.x % 128; c < 64 * kChunksPerRow; c += 128) {
    const int r = c / kChunksPerRow, ch = c % kChunksPerRow;
    const int row = row_base + r, col = col_base + ch * 8;
    if (row >= p.m || col >= p.n) continue;
    const uint4 v = *reinterpret_cast<const uint4*>(tile + r * kPitch + ch * 16);
    __half* out = p.y + long(row) * p.n + col;
    if (p.y_vec16 && col + 8 <= p.n) {
      *reinterpret_cast<uint4*>(out) = v;
    } else {
      const __half* e = reinterpret_cast<const __half*>(&v);
#pragma unroll
      for (int i = 0; i < 8; ++i)  // unrolled: constant indices keep v in registers
        if (col + i < p.n) out[i] = e[i];
    }
  }
}

// Last split of a tile: fp32 workspace → fp16 output, workspace back to zero. Each
// thread visits the positions its own fragment covers (every split wrote the same set).
template <int BN>
__device__ void finish_split_tile(const KernelParams& p, int row_base, int col_base) {
  const int lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = row_base + warp * 16 + lane / 4 + 8 * h;
    if (row >= p.m) continue;
    for (int j = 0; j < BN / 8; ++j) {
      const int col = col_base + 8 * j + 2 * (lane % 4);
      for (int c = 0; c < 2; ++c) {
        if (col + c >= p.n) continue;
        const long idx = long(row) * p.n + col + c;
        p.y[idx] = __float2half_rn(__ldcg(&p.workspace[idx]));
        __stcg(&p.workspace[idx], 0.0f);
      }
    }
  }
}

template <int BN, int STAGES, bool kW4, int A_ROWS>
__device__ void consumer(const KernelParams& p, uint8_t* smem, uint64_t* full, uint64_t* empty, uint64_t* widened,
                         int tile_m, int tile_n, int nkb) {
  using L = Layout<BN, STAGES, kW4, A_ROWS>;
  const int cw = threadIdx.x / 128 - 1;        // consumer warpgroup 0 or 1
  const int ctid = threadIdx.x - 128;          // 0..255 among consumers
  int32_t acc[BN / 2];
#pragma unroll
  for (int r = 0; r < BN / 2; ++r) acc[r] = 0;
  // A warpgroup whose 64 rows all lie past M (small M) issues no wgmma; its half of the
  // A stage may even be unloaded (64-row boxes). It still releases every stage.
  const bool has_rows = tile_m * kBM + cw * 64 < p.m;

  if (!has_rows) {  // keep the stage ring turning, nothing else
    for (int i = 0; i < nkb; ++i) {
      const int s = i % STAGES;
      mbar_wait(&full[s], (i / STAGES) & 1);
      if constexpr (kW4) mbar_wait(&widened[s], (i / STAGES) & 1);
      if (ctid % 128 == 0) mbar_arrive(&empty[s]);
    }
  } else {
    for (int i = 0; i < nkb; ++i) {
      const int s = i % STAGES;
      mbar_wait(&full[s], (i / STAGES) & 1);
      const uint8_t* a_tile = smem + L::kAOffset + s * L::kABytes + cw * 64 * kBK;
      const uint8_t* b_tile = smem + L::kBOffset + s * L::kBBytes;
      if constexpr (kW4) {
        mbar_wait(&widened[s], (i / STAGES) & 1);
        b_tile = smem + L::kWideOffset + s * L::kWideBytes;
      }
      wgmma_fence();
#pragma unroll
      for (int j = 0; j < L::kSub; ++j) {
        const uint64_t da = desc_k_major_sw128(a_tile + j * A_ROWS * kBK);
        const uint64_t db = desc_k_major_sw128(b_tile + j * BN * kBK);
#pragma unroll
        for (int kk = 0; kk < kBK / 32; ++kk) WgmmaS8<BN>::mma(acc, da + 2 * kk, db + 2 * kk, true);
      }
      wgmma_commit();
      wgmma_wait<1>();  // the previous k-block's wgmma is done: release its stage
      if (i > 0 && ctid % 128 == 0) mbar_arrive(&empty[(i - 1) % STAGES]);
    }
    wgmma_wait<0>();
  }
#pragma unroll
  for (int r = 0; r < BN / 2; ++r) fence_operand(acc[r]);

  const int row_base = tile_m * kBM + cw * 64, col_base = tile_n * BN;
  if (p.splits == 1) {
    named_barrier_sync(1, kConsumerThreads);  // both warpgroups are done reading the stages
    store_tile_staged<BN>(p, acc, row_base, col_base, smem, cw);
    return;
  }
  add_partial_tile<BN>(p, acc, row_base, col_base);

  __shared__ int is_last;
  __threadfence();
  named_barrier_sync(1, kConsumerThreads);
  const int tile = tile_m * p.tiles_n + tile_n;
  if (ctid == 0) is_last = atomicAdd(&p.counters[tile], 1u) == unsigned(p.splits - 1);
  named_barrier_sync(1, kConsumerThreads);
  if (!is_last) return;
  __threadfence();
  finish_split_tile<BN>(p, row_base, col_base);
  if (ctid == 0) p.counters[tile] = 0;
}

template <int BN, int STAGES, bool kW4, int A_ROWS>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_s8_kernel(const __grid_constant__ CUtensorMap tm_a, const __grid_constant__ CUtensorMap tm_b,
                   const KernelParams p) {
  using L = Layout<BN, STAGES, kW4, A_ROWS>;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + L::kBarOffset);
  uint64_t* empty = full + STAGES;
  uint64_t* widened = empty + STAGES;

  int tile_m, tile_n;
  tile_of(blockIdx.x, p.tiles_m, p.tiles_n, tile_m, tile_n);
  const int kb0 = blockIdx.y * p.kblocks_per_split;
  const int nkb = min(p.kblocks, kb0 + p.kblocks_per_split) - kb0;

  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], 2);  // one arrival per consumer warpgroup
      mbar_init(&widened[s], kWideners / 32);
    }
    mbar_fence_init();
  }
  __syncthreads();

  // No setmaxnreg: under the 384-thread cap (168 registers) the consumers' 128 int32
  // accumulators already fit without spills, and the W4A8 wideners need registers too.
  if (threadIdx.x < 128) {
    if (threadIdx.x == 0) producer<BN, STAGES, kW4, A_ROWS>(&tm_a, &tm_b, smem, full, empty, tile_m, tile_n, kb0, nkb,
                                                           p.a_box_bytes);
    if constexpr (kW4)
      if (threadIdx.x >= 32) widener<BN, STAGES, A_ROWS>(smem, full, widened, nkb);
  } else {
    consumer<BN, STAGES, kW4, A_ROWS>(p, smem, full, empty, widened, tile_m, tile_n, nkb);
  }
}

// ---- host side ----------------------------------------------------------------

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    FB_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
    if (q != cudaDriverEntryPointSuccess || !f) throw std::runtime_error("cuTensorMapEncodeTiled not found in the driver");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// A 2-D byte tensor (`outer` rows of `inner` bytes, row pitch `pitch`) read in boxes.
CUtensorMap byte_tensor_map(const void* base, uint64_t inner, uint64_t outer, uint64_t pitch, uint32_t box_inner,
                            uint32_t box_outer, CUtensorMapSwizzle swizzle) {
  CUtensorMap map{};
  const cuuint64_t dims[2] = {inner, outer};
  const cuuint64_t strides[1] = {pitch};
  const cuuint32_t box[2] = {box_inner, box_outer};
  const cuuint32_t elem_strides[2] = {1, 1};
  CUresult r = tensor_map_encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(base), dims, strides,
                                    box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw std::runtime_error("cuTensorMapEncodeTiled failed with CUresult " + std::to_string(r));
  return map;
}

using KernelFn = void (*)(CUtensorMap, CUtensorMap, KernelParams);

template <int BN, int STAGES, bool kW4, int A_ROWS>
KernelFn prepared_kernel(int& smem_bytes) {
  using L = Layout<BN, STAGES, kW4, A_ROWS>;
  static const bool configured = [] {
    FB_CUDA_CHECK(cudaFuncSetAttribute(gemm_s8_kernel<BN, STAGES, kW4, A_ROWS>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       L::kDynamicSmem));
    return true;
  }();
  (void)configured;
  smem_bytes = L::kDynamicSmem;
  return reinterpret_cast<KernelFn>(gemm_s8_kernel<BN, STAGES, kW4, A_ROWS>);
}

void check_problem(const GemmS8Problem& p) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("GemmS8Plan: " + what); };
  if (p.m < 1 || p.n < 1 || p.k < 1) fail("M, N, K must be positive");
  if (p.k % 32 != 0) fail("K = " + std::to_string(p.k) + " is not a multiple of 32 (pad K, as flatten does)");
  if (!p.a || !p.b || !p.y || !p.scale_a || !p.scale_b) fail("null pointer");
  if (p.n_scale_a != 1 && p.n_scale_a != p.m) fail("scale_a count must be 1 or M");
  if (p.n_scale_b != 1 && p.n_scale_b != p.n) fail("scale_b count must be 1 or N");
  if ((reinterpret_cast<uintptr_t>(p.a) | reinterpret_cast<uintptr_t>(p.b)) % 16) fail("A and B must be 16-byte aligned");
  if (p.m > (1L << 30) || p.n > (1L << 30) || p.k > (1L << 30)) fail("dimension too large");
  if (p.weights == WeightFormat::kInt4Packed && p.k > 131072) fail("W4A8 needs K ≤ 131072 (int32 accumulator of 16·w)");
}

int multiprocessors() {
  int dev = 0, sms = 0;
  FB_CUDA_CHECK(cudaGetDevice(&dev));
  FB_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return sms;
}

int ceil_div(long a, long b) { return int((a + b - 1) / b); }

}  // namespace

struct GemmS8Plan::Impl {
  CUtensorMap tm_a{}, tm_b{};
  KernelParams params{};
  KernelFn kernel = nullptr;
  int smem_bytes = 0, bn = 0, stages = 0, k_per_stage = 128;
  dim3 grid;
};

GemmS8Plan::GemmS8Plan(const GemmS8Problem& prob, int force_split, int force_bn) : impl_(std::make_unique<Impl>()) {
  check_problem(prob);
  const bool w4 = prob.weights == WeightFormat::kInt4Packed;
  const int sms = multiprocessors();
  const bool small_m = prob.m <= 64;
  const int k_sub = w4 && small_m ? 2 : 1;  // must match Layout::kSub of the chosen kernel
  const int tiles_m = ceil_div(prob.m, kBM), kblocks = ceil_div(prob.k, kBK * k_sub);

  // Big problems: 128×256 tiles. Otherwise 128×128 (or, when even those leave half the
  // multiprocessors idle, 128×64) tiles, and split K only when the
  // tiles would leave most multiprocessors idle (fewer than 1/8 of them busy): measured on
  // an H100, the split's atomic reduction costs more than idle SMs everywhere else.
  int bn = 256;
  if (small_m || long(tiles_m) * ceil_div(prob.n, 256) < sms) bn = 128;
  if (long(tiles_m) * ceil_div(prob.n, 128) * 2 < sms) bn = 64;  // small M: more CTAs streaming B
  if (force_bn) bn = force_bn;
  if (bn != 64 && bn != 128 && bn != 256) throw std::invalid_argument("GemmS8Plan: force_bn must be 0, 64, 128 or 256");
  const int tiles = tiles_m * ceil_div(prob.n, bn);
  int splits = force_split > 0 ? force_split : (tiles * 8 < sms ? std::max(1, std::min(sms / tiles, kblocks / 4)) : 1);
  splits = std::clamp(splits, 1, kblocks);
  const int per_split = ceil_div(kblocks, splits);
  splits = ceil_div(kblocks, per_split);  // no empty splits

  Impl& im = *impl_;
  im.bn = bn;
  im.k_per_stage = kBK * k_sub;
  KernelParams& kp = im.params;
  kp.m = int(prob.m), kp.n = int(prob.n), kp.k = int(prob.k);
  kp.tiles_m = tiles_m, kp.tiles_n = ceil_div(prob.n, bn);
  kp.kblocks = kblocks, kp.kblocks_per_split = per_split, kp.splits = splits;
  kp.y = prob.y, kp.scale_a = prob.scale_a, kp.scale_b = prob.scale_b;
  kp.scale_a_per_row = prob.n_scale_a > 1, kp.scale_b_per_col = prob.n_scale_b > 1;
  kp.acc_scale = w4 ? 1.0f / 16 : 1.0f;
  kp.y_vec16 = prob.n % 8 == 0 && reinterpret_cast<uintptr_t>(prob.y) % 16 == 0;
  if (splits > 1) {
    FB_CUDA_CHECK(cudaMalloc(&kp.workspace, sizeof(float) * prob.m * prob.n));
    FB_CUDA_CHECK(cudaMemset(kp.workspace, 0, sizeof(float) * prob.m * prob.n));
    FB_CUDA_CHECK(cudaMalloc(&kp.counters, sizeof(unsigned) * tiles));
    FB_CUDA_CHECK(cudaMemset(kp.counters, 0, sizeof(unsigned) * tiles));
  }

  const int a_rows = small_m ? 64 : kBM;
  kp.a_box_bytes = a_rows * kBK;
  im.tm_a = byte_tensor_map(prob.a, prob.k, prob.m, prob.k, kBK, a_rows, CU_TENSOR_MAP_SWIZZLE_128B);
  if (w4)
    im.tm_b = byte_tensor_map(prob.b, prob.k / 2, prob.n, prob.k / 2, k_sub * kBK / 2, bn, CU_TENSOR_MAP_SWIZZLE_NONE);
  else im.tm_b = byte_tensor_map(prob.b, prob.k, prob.n, prob.k, kBK, bn, CU_TENSOR_MAP_SWIZZLE_128B);

  // Stage counts: as many as fit in 227 KB. The small-M plans (M ≤ 64) keep 64-row A
  // stages, so more k-blocks of B are in flight: they stream B and nothing else matters.
  if (small_m) {
    if (bn == 64 && !w4) im.kernel = prepared_kernel<64, 13, false, 64>(im.smem_bytes), im.stages = 13;
    if (bn == 64 && w4) im.kernel = prepared_kernel<64, 5, true, 64>(im.smem_bytes), im.stages = 5;
    if (bn == 128 && !w4) im.kernel = prepared_kernel<128, 9, false, 64>(im.smem_bytes), im.stages = 9;
    if (bn == 128 && w4) im.kernel = prepared_kernel<128, 3, true, 64>(im.smem_bytes), im.stages = 3;
  } else {
    if (bn == 64 && !w4) im.kernel = prepared_kernel<64, 9, false, 128>(im.smem_bytes), im.stages = 9;
    if (bn == 64 && w4) im.kernel = prepared_kernel<64, 8, true, 128>(im.smem_bytes), im.stages = 8;
    if (bn == 128 && !w4) im.kernel = prepared_kernel<128, 7, false, 128>(im.smem_bytes), im.stages = 7;
    if (bn == 128 && w4) im.kernel = prepared_kernel<128, 5, true, 128>(im.smem_bytes), im.stages = 5;
    if (bn == 256 && !w4) im.kernel = prepared_kernel<256, 4, false, 128>(im.smem_bytes), im.stages = 4;
    if (bn == 256 && w4) im.kernel = prepared_kernel<256, 3, true, 128>(im.smem_bytes), im.stages = 3;
  }
  if (!im.kernel) throw std::invalid_argument("GemmS8Plan: no kernel for tile width " + std::to_string(bn) +
                                              (small_m ? " with M ≤ 64" : ""));
  im.grid = dim3(unsigned(tiles), unsigned(splits));
}

GemmS8Plan::~GemmS8Plan() {
  cudaFree(impl_->params.workspace);
  cudaFree(impl_->params.counters);
}

void GemmS8Plan::run(cudaStream_t stream) const {
  const Impl& im = *impl_;
  im.kernel<<<im.grid, kThreads, im.smem_bytes, stream>>>(im.tm_a, im.tm_b, im.params);
  FB_CUDA_CHECK_LAUNCH();
}

std::string GemmS8Plan::describe() const {
  const Impl& im = *impl_;
  return "tile=128x" + std::to_string(im.bn) + "x" + std::to_string(im.k_per_stage) + " stages=" + std::to_string(im.stages) +
         " split=" + std::to_string(im.params.splits) + " grid=" + std::to_string(im.grid.x * im.grid.y);
}

}  // namespace fb::cuda

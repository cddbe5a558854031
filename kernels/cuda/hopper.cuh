// Thin inline-PTX wrappers for the Hopper (sm_90a) features the GEMM uses: mbarriers,
// the bulk tensor copy engine (TMA), wgmma matrix descriptors and fences.
// No CUTLASS here (not available offline); each wrapper is one or two PTX instructions,
// named after the instruction so the PTX ISA manual is the documentation.
#pragma once

#include <cuda.h>
#include <cstdint>

namespace fb::cuda {

__device__ inline uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// ---- mbarrier ---------------------------------------------------------------
__device__ inline void mbar_init(uint64_t* bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(arrivals));
}
// Makes the initialised barriers visible to the async proxy (TMA completes on them).
__device__ inline void mbar_fence_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
__device__ inline void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ inline void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}
// Spins until the barrier's phase with the given parity has completed.
__device__ inline void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(smem_u32(bar)),
      "r"(parity)
      : "memory");
}

// ---- TMA --------------------------------------------------------------------
// Copies one box of a 2-D tensor map (coordinates: inner, outer) into shared memory;
// completion is signalled on `bar` as transaction bytes. Out-of-range elements read 0.
__device__ inline void tma_load_2d(void* dst, const CUtensorMap* map, uint64_t* bar, int inner, int outer) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::
          "r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_u32(bar)), "r"(inner), "r"(outer)
      : "memory");
}

// ---- fences and barriers ----------------------------------------------------
// Ordinary shared-memory stores that wgmma (the async proxy) reads next need this.
__device__ inline void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
__device__ inline void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// ---- wgmma ------------------------------------------------------------------
__device__ inline void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ inline void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int kPending>
__device__ inline void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving reads of an accumulator above the wgmma_wait that
// completes it (the asm "writes" the register after the wait).
__device__ inline void fence_operand(int32_t& r) { asm volatile("" : "+r"(r)::"memory"); }

// Matrix descriptor for a K-major tile stored in the 128-byte swizzle layout that TMA's
// CU_TENSOR_MAP_SWIZZLE_128B writes: rows of 128 bytes, 8-row atoms of 1024 bytes (the
// stride byte offset); the leading byte offset is unused for this layout. The tile must
// start on a 1024-byte boundary; advancing the start address by 32 bytes (descriptor + 2)
// selects the next k32 slice inside the atom.
__device__ inline uint64_t desc_k_major_sw128(const void* tile) {
  uint64_t desc = (smem_u32(tile) & 0x3FFFF) >> 4;
  desc |= uint64_t(1) << 16;            // leading byte offset (ignored)
  desc |= uint64_t(1024 >> 4) << 32;    // stride byte offset: one 8-row atom
  desc |= uint64_t(1) << 62;            // swizzle mode: 128 B
  return desc;
}

}  // namespace fb::cuda

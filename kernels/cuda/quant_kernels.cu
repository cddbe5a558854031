#include "kernels/cuda/quant_kernels.h"

#include "kernels/cuda/common.h"

#include <mma.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace fb::cuda {

namespace {

__device__ inline int8_t quantize_code(float v, float qmax) {
  return static_cast<int8_t>(fminf(fmaxf(rintf(v), -qmax - 1.0f), qmax));
}

// Each thread makes a 4×4 block of codes: 4 consecutive output columns (one 32-bit store
// per row) of 4 token rows, so the plan (src, inv_div) is read once per 4 rows. The
// gathered rows are small and read through L1.
constexpr int kFlattenRows = 4;
constexpr int kFlattenThreads = 128;

__global__ void __launch_bounds__(kFlattenThreads)
    flatten_quantize_kernel(const __half* __restrict__ a, long tokens, int k, const int* __restrict__ src,
                            const float* __restrict__ inv_div, const float* __restrict__ step_offset, int k_pad,
                            float inv_scale, int8_t* __restrict__ q) {
  const int j4 = blockIdx.x * kFlattenThreads + threadIdx.x;
  if (j4 >= k_pad / 4) return;
  const int4 s = reinterpret_cast<const int4*>(src)[j4];
  const float4 d = reinterpret_cast<const float4*>(inv_div)[j4];
  const float4 o = step_offset ? reinterpret_cast<const float4*>(step_offset)[j4] : make_float4(0.f, 0.f, 0.f, 0.f);
  const int cols[4] = {s.x, s.y, s.z, s.w};
  const float div[4] = {d.x, d.y, d.z, d.w};
  const float off[4] = {o.x, o.y, o.z, o.w};
  const long t0 = long(blockIdx.y) * kFlattenRows;
#pragma unroll
  for (int r = 0; r < kFlattenRows; ++r) {
    const long t = t0 + r;
    if (t >= tokens) break;
    const __half* row = a + t * k;
    int8_t c[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const float v = cols[u] < 0 ? 0.0f : (__half2float(row[cols[u]]) * div[u]) * inv_scale;
      c[u] = quantize_code(__fadd_rn(v, off[u]), 127.0f);  // not fused: as the reference rounds
    }
    reinterpret_cast<char4*>(q + t * k_pad)[j4] = make_char4(c[0], c[1], c[2], c[3]);
  }
}

constexpr int kKronThreads = 256;  // 8 warps
constexpr int kKronWarps = kKronThreads / 32;

int round16(int v) { return (v + 15) / 16 * 16; }

// Shared-memory layout of the Kronecker kernel. Row pitches are padded by 16 bytes: a
// pitch that is a multiple of 128 bytes (64×64, 128×128) puts every row of a 16×16
// fragment in the same banks, an 8-way conflict on each fragment load and store.
struct KronSmem {
  int n1p, n2p;
  __device__ __host__ int xp() const { return n2p + 8; }   // X, T pitch (halfs)
  __device__ __host__ int p1p() const { return n1p + 8; }  // P1 pitch
  __device__ __host__ int p2p() const { return n2p + 8; }  // P2 pitch
  __device__ __host__ int yp() const { return n2p + 4; }   // Y pitch (floats)
  __device__ __host__ int x_elems() const { return n1p * xp(); }
  // fp16: X, T = X·P2, P1, P2; fp32: Y, one 16×16 scratch per warp, the two range words.
  __device__ __host__ int bytes() const {
    return 2 * (2 * x_elems() + n1p * p1p() + n2p * p2p()) + 4 * n1p * yp() + 4 * 256 * kKronWarps + 64;
  }
};

// Copies a rows×cols fp16 matrix into a zero-padded rows_p×cols_p shared buffer.
// (pitch: the buffer's row pitch in halfs, ≥ cols_p; the pad columns beyond cols_p are
// never read).
__device__ void load_padded(__half* dst, const __half* src, int rows, int cols, int rows_p, int cols_p, int pitch) {
  for (int i = threadIdx.x; i < rows_p * cols_p; i += blockDim.x) {
    const int r = i / cols_p, c = i % cols_p;
    dst[r * pitch + c] = (r < rows && c < cols) ? src[r * cols + c] : __float2half(0.0f);
  }
}

// One token's n1×n2 block into the padded buffer, whose padding is already zero. With
// n2 % 8 == 0 every thread issues its 16-byte loads before any store (latency overlap).
__device__ void load_token(__half* dst, const __half* src, int n1, int n2, int pitch) {
  const int k = n1 * n2;
  if (n2 % 8 == 0) {
    constexpr int kPerThread = 8;  // up to 16384 elements / (256 threads · 8)
    uint4 v[kPerThread];
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) {
      const int c = threadIdx.x + u * kKronThreads;
      if (c * 8 < k) v[u] = reinterpret_cast<const uint4*>(src)[c];
    }
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) {
      const int c = threadIdx.x + u * kKronThreads, i = c * 8;
      if (i < k) *reinterpret_cast<uint4*>(dst + (i / n2) * pitch + i % n2) = v[u];
    }
  } else {
    for (int i = threadIdx.x; i < k; i += kKronThreads) dst[(i / n2) * pitch + i % n2] = src[i];
  }
}

__device__ float warp_absmax(float v) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Codes of one token from Y (fp32, row pitch yp), multiplied by inv_s = 1/s. With
// n2 % 4 == 0 each warp takes whole rows and each lane 4 consecutive columns (int8: one
// 32-bit store; int4: one 16-bit store), so no index needs a division.
__device__ void store_codes(const float* sy, int n1, int n2, int yp, float inv_s, float qmax, int bits, void* out) {
  const int k = n1 * n2;
  if (n2 % 4 == 0) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int r = warp; r < n1; r += kKronWarps)
      for (int c = 4 * lane; c < n2; c += 128) {
        const float4 y = *reinterpret_cast<const float4*>(sy + r * yp + c);
        const int c0 = quantize_code(y.x * inv_s, qmax), c1 = quantize_code(y.y * inv_s, qmax);
        const int c2 = quantize_code(y.z * inv_s, qmax), c3 = quantize_code(y.w * inv_s, qmax);
        const int i4 = (r * n2 + c) / 4;
        if (bits == 8) reinterpret_cast<char4*>(out)[i4] = make_char4(c0, c1, c2, c3);
        else reinterpret_cast<uint16_t*>(out)[i4] = uint16_t((c0 & 0xF) | (c1 & 0xF) << 4 | (c2 & 0xF) << 8 | (c3 & 0xF) << 12);
      }
    return;
  }
  auto code_at = [&](int i) { return int(quantize_code(sy[(i / n2) * yp + i % n2] * inv_s, qmax)); };
  if (bits == 8) {
    for (int i = threadIdx.x; i < k; i += kKronThreads) static_cast<int8_t*>(out)[i] = int8_t(code_at(i));
  } else {
    for (int b = threadIdx.x; b < k / 2; b += kKronThreads)
      static_cast<uint8_t*>(out)[b] = uint8_t((code_at(2 * b) & 0xF) | (code_at(2 * b + 1) & 0xF) << 4);
  }
}

// Persistent CTAs: P1, P2 are loaded into shared memory once per CTA, then the CTA
// walks tokens. Per token: X → T = X·P2 (fp16) → Y = P1ᵀ·T (fp32; its absmax is taken
// from the accumulator fragments, padding included, which is zero) → codes.
__global__ void __launch_bounds__(kKronThreads) kron_quantize_kernel(const __half* __restrict__ x, long tokens,
                                                                     int n1, int n2, int n1p, int n2p,
                                                                     const __half* __restrict__ p1,
                                                                     const __half* __restrict__ p2, int bits,
                                                                     float clip_hi, float clip_lo,
                                                                     void* __restrict__ q, float* __restrict__ scales) {
  using namespace nvcuda;
  extern __shared__ __align__(128) uint8_t smem[];
  const KronSmem L{n1p, n2p};
  __half* sx = reinterpret_cast<__half*>(smem);
  __half* st = sx + L.x_elems();
  __half* sp1 = st + L.x_elems();
  __half* sp2 = sp1 + n1p * L.p1p();
  float* sy = reinterpret_cast<float*>(sp2 + n2p * L.p2p());
  float* scratch = sy + n1p * L.yp();
  const int xp = L.xp(), p1p = L.p1p(), p2p = L.p2p(), yp = L.yp();
  unsigned* range_bits = reinterpret_cast<unsigned*>(scratch + 256 * kKronWarps);  // max(Y, 0), max(−Y, 0)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int k = n1 * n2;
  const float qmax = bits == 8 ? 127.0f : 7.0f;
  const int tiles_r = n1p / 16, tiles_c = n2p / 16;

  load_padded(sp1, p1, n1, n1, n1p, n1p, p1p);
  load_padded(sp2, p2, n2, n2, n2p, n2p, p2p);
  for (int i = threadIdx.x; i < L.x_elems(); i += kKronThreads) sx[i] = __float2half(0.0f);
  __syncthreads();

  for (long t = blockIdx.x; t < tokens; t += gridDim.x) {
    load_token(sx, x + t * k, n1, n2, xp);
    if (threadIdx.x == 0) range_bits[0] = range_bits[1] = 0;
    __syncthreads();
    // T = X · P2, one 16×16 output tile per warp at a time.
    for (int tile = warp; tile < tiles_r * tiles_c; tile += kKronWarps) {
      const int tr = tile / tiles_c, tc = tile % tiles_c;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int kk = 0; kk < n2p; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, sx + tr * 16 * xp + kk, xp);
        wmma::load_matrix_sync(fb, sp2 + kk * p2p + tc * 16, p2p);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      float* sc = scratch + warp * 256;
      wmma::store_matrix_sync(sc, acc, 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) st[(tr * 16 + e / 16) * xp + tc * 16 + e % 16] = __float2half(sc[e]);
      __syncwarp();
    }
    __syncthreads();
    // Y = P1ᵀ · T: P1 row-major read as column-major is P1ᵀ.
    float top = 0.0f, bottom = 0.0f;  // max(Y) and −min(Y), both ≥ 0 (padding is zero)
    for (int tile = warp; tile < tiles_r * tiles_c; tile += kKronWarps) {
      const int tr = tile / tiles_c, tc = tile % tiles_c;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int kk = 0; kk < n1p; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::col_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, sp1 + kk * p1p + tr * 16, p1p);
        wmma::load_matrix_sync(fb, st + kk * xp + tc * 16, xp);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      for (int e = 0; e < acc.num_elements; ++e) top = fmaxf(top, acc.x[e]), bottom = fmaxf(bottom, -acc.x[e]);
      wmma::store_matrix_sync(sy + tr * 16 * yp + tc * 16, acc, yp, wmma::mem_row_major);
    }
    top = warp_absmax(top), bottom = warp_absmax(bottom);
    if (lane == 0) {  // non-negative floats order as integers
      atomicMax(range_bits, __float_as_uint(top));
      atomicMax(range_bits + 1, __float_as_uint(bottom));
    }
    __syncthreads();
    const float m = fmaxf(__uint_as_float(range_bits[0]) * clip_hi, __uint_as_float(range_bits[1]) * clip_lo);
    const float s = m > 0.0f ? m / qmax : 1.0f;
    if (threadIdx.x == 0) scales[t] = s;
    store_codes(sy, n1, n2, yp, 1.0f / s, qmax, bits,
                bits == 8 ? static_cast<void*>(static_cast<int8_t*>(q) + t * k)
                          : static_cast<void*>(static_cast<uint8_t*>(q) + t * (k / 2)));
    __syncthreads();  // sx, sy and the absmax are rewritten for the next token
  }
}

}  // namespace

void flatten_quantize(const __half* a, long tokens, long k, const int* src, const float* inv_div, long k_pad,
                      float inv_scale, int8_t* q, cudaStream_t stream, const float* step_offset) {
  if (k_pad % 32 != 0) throw std::invalid_argument("flatten_quantize: K_pad = " + std::to_string(k_pad) + " is not a multiple of 32");
  if (tokens < 1 || k < 1) throw std::invalid_argument("flatten_quantize: empty input");
  if ((tokens + kFlattenRows - 1) / kFlattenRows > 65535) throw std::invalid_argument("flatten_quantize: too many tokens for one launch");
  const dim3 grid(unsigned((k_pad / 4 + kFlattenThreads - 1) / kFlattenThreads),
                  unsigned((tokens + kFlattenRows - 1) / kFlattenRows));
  flatten_quantize_kernel<<<grid, kFlattenThreads, 0, stream>>>(a, tokens, int(k), src, inv_div, step_offset, int(k_pad),
                                                                 inv_scale, q);
  FB_CUDA_CHECK_LAUNCH();
}

KronQuantPlan make_kron_quant_plan(int n1, int n2, int bits) {
  if (n1 < 1 || n2 < 1 || n1 > 128 || n2 > 128)
    throw std::invalid_argument("kron_quantize: n1 = " + std::to_string(n1) + ", n2 = " + std::to_string(n2) +
                                " outside 1..128 (shared-memory limit of this kernel)");
  if (bits != 8 && bits != 4) throw std::invalid_argument("kron_quantize: bits must be 8 or 4");
  if (bits == 4 && (n1 * n2) % 2) throw std::invalid_argument("kron_quantize: int4 codes need an even K");
  KronQuantPlan p;
  p.n1 = n1, p.n2 = n2, p.bits = bits, p.n1_pad = round16(n1), p.n2_pad = round16(n2);
  p.smem_bytes = KronSmem{p.n1_pad, p.n2_pad}.bytes();
  int dev = 0, sms = 0;
  FB_CUDA_CHECK(cudaGetDevice(&dev));
  FB_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  FB_CUDA_CHECK(cudaFuncSetAttribute(kron_quantize_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, p.smem_bytes));
  int per_sm = 0;
  FB_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kron_quantize_kernel, kKronThreads, p.smem_bytes));
  p.blocks = sms * std::max(per_sm, 1);
  return p;
}

void kron_quantize(const KronQuantPlan& plan, const __half* x, long tokens, const __half* p1, const __half* p2,
                   ClipRatios clip, void* q, float* scales, cudaStream_t stream) {
  for (float r : {clip.hi, clip.lo})
    if (!(r > 0 && r <= 1)) throw std::invalid_argument("kron_quantize: clip ratio " + std::to_string(r) + " outside (0, 1]");
  const unsigned blocks = unsigned(std::min<long>(tokens, plan.blocks));
  kron_quantize_kernel<<<blocks, kKronThreads, plan.smem_bytes, stream>>>(x, tokens, plan.n1, plan.n2, plan.n1_pad,
                                                                         plan.n2_pad, p1, p2, plan.bits, clip.hi, clip.lo, q, scales);
  FB_CUDA_CHECK_LAUNCH();
}

}  // namespace fb::cuda

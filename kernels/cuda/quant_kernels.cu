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

// One CTA per token row; each thread writes 4 consecutive codes (one 32-bit store).
// The gathered row is small and read through L1, so the gather costs little more than
// a contiguous read.
__global__ void flatten_quantize_kernel(const __half* __restrict__ a, int k, const int* __restrict__ src,
                                        const float* __restrict__ inv_div, int k_pad, float inv_scale,
                                        int8_t* __restrict__ q) {
  const long t = blockIdx.x;
  const __half* row = a + t * k;
  char4* out = reinterpret_cast<char4*>(q + t * k_pad);
  for (int j4 = threadIdx.x; j4 < k_pad / 4; j4 += blockDim.x) {
    int8_t c[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int j = 4 * j4 + u;
      const int s = src[j];
      const float v = s < 0 ? 0.0f : (__half2float(row[s]) * inv_div[j]) * inv_scale;
      c[u] = quantize_code(v, 127.0f);
    }
    out[j4] = make_char4(c[0], c[1], c[2], c[3]);
  }
}

constexpr int kKronThreads = 256;  // 8 warps
constexpr int kKronWarps = kKronThreads / 32;

int round16(int v) { return (v + 15) / 16 * 16; }

struct KronSmem {
  int n1p, n2p;
  __device__ __host__ int x_elems() const { return n1p * n2p; }
  // fp16: X (n1p×n2p), T = X·P2 (n1p×n2p), P1 (n1p²), P2 (n2p²); then fp32 Y (n1p×n2p)
  // and one 16×16 fp32 scratch per warp.
  __device__ __host__ int bytes() const {
    return 2 * (2 * x_elems() + n1p * n1p + n2p * n2p) + 4 * x_elems() + 4 * 256 * kKronWarps + 64;
  }
};

// Copies a rows×cols fp16 matrix into a zero-padded rows_p×cols_p shared buffer.
__device__ void load_padded(__half* dst, const __half* src, int rows, int cols, int rows_p, int cols_p) {
  for (int i = threadIdx.x; i < rows_p * cols_p; i += blockDim.x) {
    const int r = i / cols_p, c = i % cols_p;
    dst[i] = (r < rows && c < cols) ? src[r * cols + c] : __float2half(0.0f);
  }
}

__device__ float block_absmax(float v, float* red) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < kKronWarps ? red[lane] : 0.0f;
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // red is reused by the next token
  return v;
}

// Persistent CTAs: P1, P2 are loaded into shared memory once per CTA, then the CTA
// walks tokens. Per token: X → T = X·P2 (fp16) → Y = P1ᵀ·T (fp32) → absmax → codes.
__global__ void __launch_bounds__(kKronThreads) kron_quantize_kernel(const __half* __restrict__ x, long tokens,
                                                                     int n1, int n2, int n1p, int n2p,
                                                                     const __half* __restrict__ p1,
                                                                     const __half* __restrict__ p2, int bits,
                                                                     void* __restrict__ q, float* __restrict__ scales) {
  using namespace nvcuda;
  extern __shared__ __align__(128) uint8_t smem[];
  const KronSmem L{n1p, n2p};
  __half* sx = reinterpret_cast<__half*>(smem);
  __half* st = sx + L.x_elems();
  __half* sp1 = st + L.x_elems();
  __half* sp2 = sp1 + n1p * n1p;
  float* sy = reinterpret_cast<float*>(sp2 + n2p * n2p);
  float* scratch = sy + L.x_elems();
  float* red = scratch + 256 * kKronWarps;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int k = n1 * n2;
  const float qmax = bits == 8 ? 127.0f : 7.0f;

  load_padded(sp1, p1, n1, n1, n1p, n1p);
  load_padded(sp2, p2, n2, n2, n2p, n2p);

  for (long t = blockIdx.x; t < tokens; t += gridDim.x) {
    load_padded(sx, x + t * k, n1, n2, n1p, n2p);
    __syncthreads();
    // T = X · P2, one 16×16 output tile per warp at a time.
    const int tiles_r = n1p / 16, tiles_c = n2p / 16;
    for (int tile = warp; tile < tiles_r * tiles_c; tile += kKronWarps) {
      const int tr = tile / tiles_c, tc = tile % tiles_c;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int kk = 0; kk < n2p; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, sx + tr * 16 * n2p + kk, n2p);
        wmma::load_matrix_sync(fb, sp2 + kk * n2p + tc * 16, n2p);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      float* sc = scratch + warp * 256;
      wmma::store_matrix_sync(sc, acc, 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) st[(tr * 16 + e / 16) * n2p + tc * 16 + e % 16] = __float2half(sc[e]);
      __syncwarp();
    }
    __syncthreads();
    // Y = P1ᵀ · T: P1 row-major read as column-major is P1ᵀ.
    for (int tile = warp; tile < tiles_r * tiles_c; tile += kKronWarps) {
      const int tr = tile / tiles_c, tc = tile % tiles_c;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int kk = 0; kk < n1p; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::col_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, sp1 + kk * n1p + tr * 16, n1p);
        wmma::load_matrix_sync(fb, st + kk * n2p + tc * 16, n2p);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(sy + tr * 16 * n2p + tc * 16, acc, n2p, wmma::mem_row_major);
    }
    __syncthreads();
    float m = 0.0f;
    for (int i = threadIdx.x; i < k; i += blockDim.x) m = fmaxf(m, fabsf(sy[(i / n2) * n2p + i % n2]));
    m = block_absmax(m, red);
    const float s = m > 0.0f ? m / qmax : 1.0f;
    if (threadIdx.x == 0) scales[t] = s;
    if (bits == 8) {
      int8_t* out = static_cast<int8_t*>(q) + t * k;
      for (int i = threadIdx.x; i < k; i += blockDim.x) out[i] = quantize_code(sy[(i / n2) * n2p + i % n2] / s, qmax);
    } else {
      uint8_t* out = static_cast<uint8_t*>(q) + t * (k / 2);
      for (int b = threadIdx.x; b < k / 2; b += blockDim.x) {
        const int i0 = 2 * b, i1 = 2 * b + 1;
        const int c0 = quantize_code(sy[(i0 / n2) * n2p + i0 % n2] / s, qmax);
        const int c1 = quantize_code(sy[(i1 / n2) * n2p + i1 % n2] / s, qmax);
        out[b] = static_cast<uint8_t>((c0 & 0xF) | ((c1 & 0xF) << 4));
      }
    }
    __syncthreads();  // sx / sy are rewritten for the next token
  }
}

}  // namespace

void flatten_quantize(const __half* a, long tokens, long k, const int* src, const float* inv_div, long k_pad,
                      float inv_scale, int8_t* q, cudaStream_t stream) {
  if (k_pad % 32 != 0) throw std::invalid_argument("flatten_quantize: K_pad = " + std::to_string(k_pad) + " is not a multiple of 32");
  if (tokens < 1 || k < 1) throw std::invalid_argument("flatten_quantize: empty input");
  const int threads = k_pad / 4 >= 256 ? 256 : int(k_pad / 4);
  flatten_quantize_kernel<<<unsigned(tokens), threads, 0, stream>>>(a, int(k), src, inv_div, int(k_pad), inv_scale, q);
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
                   void* q, float* scales, cudaStream_t stream) {
  const unsigned blocks = unsigned(std::min<long>(tokens, plan.blocks));
  kron_quantize_kernel<<<blocks, kKronThreads, plan.smem_bytes, stream>>>(x, tokens, plan.n1, plan.n2, plan.n1_pad,
                                                                         plan.n2_pad, p1, p2, plan.bits, q, scales);
  FB_CUDA_CHECK_LAUNCH();
}

}  // namespace fb::cuda

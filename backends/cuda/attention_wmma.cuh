// Causal attention on tensor cores (fp16 / bf16 models, head_dim 64 or 128), included by
// device_model.cu inside its anonymous namespace after the CUDA-core kernel it replaces there.
// The same tiles and masks as attention_kernel (one sequence of the packed batch per tile, keys
// from the sequence start to the row itself), FlashAttention-2's order of work: a block holds 64
// query rows of one head (4 warps × 16 rows), walks the key tiles of 64, and keeps per row the
// running max m, the running sum l and the unnormalised output O in shared memory:
//   S = Q·Kᵀ (wmma, fp32 accumulate) → p = exp(s − m_new), l = l·e^(m−m_new) + Σp,
//   O = O·e^(m−m_new) + P·V (wmma), and at the end O / l.
// Q (scaled by 1/√hd, as the CPU scales its query rows), K, V and P are rounded to the model's
// dtype for the products; everything else stays fp32. The fp32 model keeps the CUDA-core kernel.
#include <mma.h>

constexpr int kTcRows = 64, kTcKeys = 64, kTcWarps = 4;

template <int HD>
struct TcLayout {  // padded leading dimensions (wmma needs multiples of 8 halves / 4 floats)
  static constexpr int qk = HD + 8, s = kTcKeys + 4, p = kTcKeys + 8, o = HD + 4;
  static constexpr size_t bytes(size_t elem) {
    return elem * (3 * size_t(kTcRows) * qk + size_t(kTcRows) * p) + 4 * (size_t(kTcRows) * (s + o) + 2 * kTcRows);
  }
};

template <class T, class OutT, int HD>
__global__ void __launch_bounds__(kTcWarps * 32)
    attention_wmma_kernel(const float* qkv, int ld, int k_off, int v_off, OutT* out, int ldo, const AttentionTile* tiles,
                          int group, float scale) {
  using namespace nvcuda;
  using L = TcLayout<HD>;
  extern __shared__ __align__(128) unsigned char raw[];
  T* qs = reinterpret_cast<T*>(raw);
  T* ks = qs + kTcRows * L::qk;
  T* vs = ks + kTcKeys * L::qk;
  T* ps = vs + kTcKeys * L::qk;                                    // 64 × p, warp w owns rows 16w…
  float* ss = reinterpret_cast<float*>(ps + kTcRows * L::p);      // 64 × s
  float* os = ss + kTcRows * L::s;                                 // 64 × o
  float* m_run = os + kTcRows * L::o;
  float* l_run = m_run + kTcRows;

  const AttentionTile tile = tiles[blockIdx.x];
  const int h = blockIdx.y, kvh = h / group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int q_last = min(tile.q0 + kTcRows, tile.seq_end) - 1;
  for (int i = threadIdx.x; i < kTcRows * HD; i += blockDim.x) {
    const int r = i / HD, d = i % HD, row = tile.q0 + r;
    qs[r * L::qk + d] = from_f<T>(row <= q_last ? qkv[size_t(row) * ld + h * HD + d] * scale : 0.f);
  }
  for (int i = threadIdx.x; i < kTcRows * L::o; i += blockDim.x) os[i] = 0.f;
  for (int i = threadIdx.x; i < kTcRows; i += blockDim.x) m_run[i] = -INFINITY, l_run[i] = 0.f;

  const int w0 = warp * 16;           // the warp's first row in the block
  const int row0 = tile.q0 + w0;      // … in the batch
  for (int k0 = tile.seq_start; k0 <= q_last; k0 += kTcKeys) {
    __syncthreads();  // the previous tile is consumed (and Q, O, m, l are in place)
    for (int i = threadIdx.x; i < kTcKeys * HD; i += blockDim.x) {
      const int j = i / HD, d = i % HD, key = k0 + j;
      const bool in = key <= q_last;
      ks[j * L::qk + d] = from_f<T>(in ? qkv[size_t(key) * ld + k_off + kvh * HD + d] : 0.f);
      vs[j * L::qk + d] = from_f<T>(in ? qkv[size_t(key) * ld + v_off + kvh * HD + d] : 0.f);
    }
    __syncthreads();
    if (row0 > q_last || k0 > row0 + 15) continue;  // no row of this warp sees these keys (uniform per warp)

    // S (16 × 64) = Q_w · K_tileᵀ.
    for (int n = 0; n < kTcKeys / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
        wmma::load_matrix_sync(a, qs + w0 * L::qk + kk * 16, L::qk);
        wmma::load_matrix_sync(b, ks + n * 16 * L::qk + kk * 16, L::qk);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(ss + w0 * L::s + n * 16, acc, L::s, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax: two lanes per row, 32 keys each.
    {
      const int i = lane / 2, half = lane % 2, r = row0 + i;
      const float* srow = ss + (w0 + i) * L::s + half * 32;
      float mx = -INFINITY;
      for (int j = 0; j < 32; ++j) {
        const int key = k0 + half * 32 + j;
        if (key <= r && r <= q_last) mx = fmaxf(mx, srow[j]);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      const float m_old = m_run[w0 + i];
      const float m_new = fmaxf(m_old, mx);
      const float corr = m_new == -INFINITY ? 1.f : expf(m_old - m_new);
      T* prow = ps + (w0 + i) * L::p + half * 32;
      float sum = 0.f;
      for (int j = 0; j < 32; ++j) {
        const int key = k0 + half * 32 + j;
        const float p = (key <= r && r <= q_last) ? expf(srow[j] - m_new) : 0.f;
        sum += p;
        prow[j] = from_f<T>(p);
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      float* orow = os + (w0 + i) * L::o + half * (HD / 2);
      for (int d = 0; d < HD / 2; ++d) orow[d] *= corr;
      __syncwarp();
      if (half == 0) l_run[w0 + i] = l_run[w0 + i] * corr + sum, m_run[w0 + i] = m_new;
    }
    __syncwarp();

    // O_w (16 × HD) += P_w (16 × 64) · V_tile (64 × HD).
    for (int n = 0; n < HD / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, os + w0 * L::o + n * 16, L::o, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kTcKeys / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::load_matrix_sync(a, ps + w0 * L::p + kk * 16, L::p);
        wmma::load_matrix_sync(b, vs + kk * 16 * L::qk + n * 16, L::qk);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(os + w0 * L::o + n * 16, acc, L::o, wmma::mem_row_major);
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kTcRows * HD; i += blockDim.x) {
    const int r = i / HD, d = i % HD, row = tile.q0 + r;
    if (row <= q_last) out[size_t(row) * ldo + h * HD + d] = from_f<OutT>(os[r * L::o + d] / l_run[r]);
  }
}

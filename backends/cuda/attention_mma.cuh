// Causal attention on tensor cores (fp16 / bf16 models, head_dim 64 or 128), included by
// device_model.cu inside its anonymous namespace after the CUDA-core kernel it replaces there.
// The same tiles and masks as attention_kernel (one sequence of the packed batch per tile, keys
// from the sequence start to the row itself), in FlashAttention-2's order of work: a block holds
// 16 query rows per warp of one head (4 warps: 64 rows, or 8: 128) and walks the key tiles of 64,
// each warp keeping
// its rows' running max m, running sum l and unnormalised output O in registers:
//   S = Q·Kᵀ (mma m16n8k16, fp32 accumulate) → p = exp(s − m_new), l = l·e^(m−m_new) + Σp,
//   O = O·e^(m−m_new) + P·V (mma, P straight from S's registers), and at the end O / l.
// K and V tiles come in by cp.async into two stages of shared memory, the next tile loading
// while the current one is used. The input is q|k|v already in the model's dtype, q scaled by
// 1/√hd before its rounding, as the CPU scales its query row (device_model.cu's rope kernel
// writes it so); P is rounded to the dtype for its product; the softmax is fp32.
//
// Fragment layouts are PTX's for mma.m16n8k16 (g = lane / 4, t = lane % 4): A holds rows g and
// g + 8, columns 2t, 2t + 1 (+ 8); B holds k rows 2t, 2t + 1 (+ 8) of column g; C holds rows g
// and g + 8, columns 2t, 2t + 1. An accumulator pair of S is therefore an A pair of P.

constexpr int kTcKeys = 64;

template <int HD, int WARPS>
struct TcLayout {  // rows padded by 16 bytes, so ldmatrix's eight row addresses hit distinct banks
  static constexpr int rows = 16 * WARPS, threads = 32 * WARPS;
  static constexpr int ld = HD + 8;
  static constexpr size_t tile = size_t(kTcKeys) * ld;  // elements of one K or V tile
  static constexpr size_t bytes(size_t elem) { return elem * (size_t(rows) * ld + 4 * tile); }  // Q, 2 × (K, V)
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// 16 bytes global → shared, zero-filled when `valid` is false (rows past the sequence's end).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// c += a · b for one m16n8k16 tile.
template <class T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
}

// ROWS × HD elements starting at `src` (row stride ld_src) into shared `dst` (row stride
// HD + 8), 16 bytes per copy by THREADS threads; rows past `last_row` are zero-filled.
template <class T, int HD, int ROWS, int THREADS>
__device__ __forceinline__ void load_rows_async(T* dst, const T* src, size_t ld_src, int first_row, int last_row) {
  constexpr int chunks_per_row = HD * int(sizeof(T)) / 16, per = 16 / int(sizeof(T));
  for (int i = threadIdx.x; i < ROWS * chunks_per_row; i += THREADS) {
    const int r = i / chunks_per_row, c = (i % chunks_per_row) * per;
    const bool valid = first_row + r <= last_row;
    const T* from = src + size_t(valid ? first_row + r : first_row) * ld_src + c;
    cp_async16(dst + r * (HD + 8) + c, from, valid);
  }
}

template <class T, class OutT, int HD, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    attention_mma_kernel(const T* qkv, int ld, int k_off, int v_off, OutT* out, int ldo, const AttentionTile* tiles,
                         int group) {
  using L = TcLayout<HD, WARPS>;
  constexpr int kRows = L::rows, kThreads = L::threads;
  extern __shared__ __align__(128) unsigned char raw[];
  T* qs = reinterpret_cast<T*>(raw);
  T* const kv = qs + kRows * L::ld;  // stage s: K at kv + 2s·tile, V right after it

  const AttentionTile tile = tiles[blockIdx.x];
  const int h = blockIdx.y, kvh = h / group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int q_last = min(tile.q0 + kRows, tile.seq_end) - 1;
  const T* k_src = qkv + k_off + kvh * HD;
  const T* v_src = qkv + v_off + kvh * HD;

  load_rows_async<T, HD, kRows, kThreads>(qs, qkv + h * HD, size_t(ld), tile.q0, q_last);
  load_rows_async<T, HD, kTcKeys, kThreads>(kv, k_src, size_t(ld), tile.seq_start, q_last);
  load_rows_async<T, HD, kTcKeys, kThreads>(kv + L::tile, v_src, size_t(ld), tile.seq_start, q_last);
  cp_async_commit();

  const int w0 = warp * 16;                                 // the warp's first row in the block
  const int r_lo = tile.q0 + w0 + g, r_hi = r_lo + 8;       // this thread's two rows in the batch
  uint32_t qf[HD / 16][4];                                  // the warp's 16 query rows as A fragments
  float o[HD / 8][4];
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.f, l_hi = 0.f;  // l: this thread's columns only

  int stage = 0;
  for (int k0 = tile.seq_start; k0 <= q_last; k0 += kTcKeys, stage ^= 1) {
    const int next = k0 + kTcKeys;
    if (next <= q_last) {  // the next tile loads into the other stage while this one is used
      T* const to = kv + 2 * (stage ^ 1) * L::tile;
      load_rows_async<T, HD, kTcKeys, kThreads>(to, k_src, size_t(ld), next, q_last);
      load_rows_async<T, HD, kTcKeys, kThreads>(to + L::tile, v_src, size_t(ld), next, q_last);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (k0 == tile.seq_start) {
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk)
        ldmatrix_x4(qf[kk], qs + (w0 + lane % 8 + (lane / 8) % 2 * 8) * L::ld + kk * 16 + lane / 16 * 8);
    }
    // Rows of this warp before the tile's first key (a 128-row block's first warps on its
    // second key tile) see none of it: they skip it (uniform per warp; no barrier inside).
    if (k0 <= tile.q0 + w0 + 15) {
      const T* kt = kv + 2 * stage * L::tile;
      const T* vt = kt + L::tile;

      // S (16 × 64) = Q_w · K_tileᵀ: B of key columns j, j + 8 from one ldmatrix over K's rows.
      float s[kTcKeys / 8][4];
#pragma unroll
      for (int n = 0; n < kTcKeys / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
        for (int n = 0; n < kTcKeys / 8; n += 2) {
          uint32_t b[4];
          ldmatrix_x4(b, kt + (n * 8 + lane % 8 + lane / 16 * 8) * L::ld + kk * 16 + (lane / 8) % 2 * 8);
          mma16816<T>(s[n], qf[kk], b[0], b[1]);
          mma16816<T>(s[n + 1], qf[kk], b[2], b[3]);
        }
      }

      // Online softmax over this thread's columns, the row's max shared across its four lanes.
      const bool diagonal = k0 + kTcKeys - 1 > tile.q0 + w0;  // some key of the tile lies past a row of the warp
      float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
      for (int n = 0; n < kTcKeys / 8; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = k0 + n * 8 + 2 * t + e;
          if (diagonal) {
            if (key > r_lo || r_lo > q_last) s[n][e] = -INFINITY;
            if (key > r_hi || r_hi > q_last) s[n][2 + e] = -INFINITY;
          }
          mx_lo = fmaxf(mx_lo, s[n][e]), mx_hi = fmaxf(mx_hi, s[n][2 + e]);
        }
#pragma unroll
      for (int x = 1; x <= 2; x <<= 1) {
        mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, x));
        mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, x));
      }
      const float mn_lo = fmaxf(m_lo, mx_lo), mn_hi = fmaxf(m_hi, mx_hi);
      // A row with no key yet (only rows past the sequence's end) keeps m = −∞: no NaN from −∞ − −∞.
      const float base_lo = mn_lo == -INFINITY ? 0.f : mn_lo, base_hi = mn_hi == -INFINITY ? 0.f : mn_hi;
      const float corr_lo = expf(m_lo - base_lo), corr_hi = expf(m_hi - base_hi);
      m_lo = mn_lo, m_hi = mn_hi;
      float sum_lo = 0.f, sum_hi = 0.f;
      uint32_t pf[kTcKeys / 16][4];  // P as A fragments, one per 16 keys
#pragma unroll
      for (int n = 0; n < kTcKeys / 8; ++n) {
        const float p0 = expf(s[n][0] - base_lo), p1 = expf(s[n][1] - base_lo);
        const float p2 = expf(s[n][2] - base_hi), p3 = expf(s[n][3] - base_hi);
        sum_lo += p0 + p1, sum_hi += p2 + p3;
        pf[n / 2][(n % 2) * 2] = pack2<T>(p0, p1);
        pf[n / 2][(n % 2) * 2 + 1] = pack2<T>(p2, p3);
      }
      l_lo = l_lo * corr_lo + sum_lo, l_hi = l_hi * corr_hi + sum_hi;
#pragma unroll
      for (int n = 0; n < HD / 8; ++n) o[n][0] *= corr_lo, o[n][1] *= corr_lo, o[n][2] *= corr_hi, o[n][3] *= corr_hi;

      // O_w (16 × HD) += P_w (16 × 64) · V_tile (64 × HD): B of dims d, d + 8 from one transposing ldmatrix.
#pragma unroll
      for (int kk = 0; kk < kTcKeys / 16; ++kk) {
#pragma unroll
        for (int n = 0; n < HD / 8; n += 2) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, vt + (kk * 16 + lane % 8 + (lane / 8) % 2 * 8) * L::ld + n * 8 + lane / 16 * 8);
          mma16816<T>(o[n], pf[kk], b[0], b[1]);
          mma16816<T>(o[n + 1], pf[kk], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before the next iteration refills it
  }

#pragma unroll
  for (int x = 1; x <= 2; x <<= 1) {
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, x);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, x);
  }
#pragma unroll
  for (int n = 0; n < HD / 8; ++n)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int d = h * HD + n * 8 + 2 * t + e;
      if (r_lo <= q_last) out[size_t(r_lo) * ldo + d] = from_f<OutT>(o[n][e] / l_lo);
      if (r_hi <= q_last) out[size_t(r_hi) * ldo + d] = from_f<OutT>(o[n][2 + e] / l_hi);
    }
}

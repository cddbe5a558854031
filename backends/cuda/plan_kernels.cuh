// The kernels of the operators' plans (models/op_plan.h), included by device_model.cu. Each one
// follows models/op_plan.cpp (the CPU execution of a plan) formula for formula; where the order
// of float operations decides the bits (x·(1/s) + offset, s·(q − z)), the operations are the
// round-to-nearest intrinsics, so nvcc cannot contract them into an FMA the CPU does not do.
//
// Included inside device_model.cu's anonymous namespace, after its element-type helpers (from_f).

// A HostQuant on the device; offsets index the fp32 arena (-1: none).
struct DevQuant {
  int scope = 0, bits = 16, group = 0, qmin = 0, qmax = 0;
  bool sym = true, reciprocal = false;
  float hi = 1, lo = 1, scale = 1, zero = 0;
  long step_offset = -1;
};

struct ScaleZero2 {
  float s, z;
};

// PlanQuant's rule from a range that brackets 0.
__device__ __forceinline__ ScaleZero2 plan_scale(float mx, float mn, const DevQuant& q) {
  if (q.sym) {
    const float a = fmaxf(__fmul_rn(mx, q.hi), -__fmul_rn(mn, q.lo));
    return {a == 0.f ? 1.f : __fdiv_rn(a, float(q.qmax)), 0.f};
  }
  float hi = __fmul_rn(mx, q.hi), lo = __fmul_rn(mn, q.lo);
  if (hi == 0.f && lo == 0.f) hi = 1.f, lo = -1.f;
  const float s = __fdiv_rn(__fsub_rn(hi, lo), float(q.qmax));
  return {s, rintf(__fdiv_rn(-lo, s))};
}

// The grid code of x: clamp(round(v + offset) + z, qmin, qmax).
__device__ __forceinline__ float plan_code(float x, ScaleZero2 sz, float inv, float off, const DevQuant& q) {
  const float v = q.reciprocal ? __fmul_rn(x, inv) : __fdiv_rn(x, sz.s);
  return fminf(fmaxf(__fadd_rn(rintf(__fadd_rn(v, off)), sz.z), float(q.qmin)), float(q.qmax));
}
__device__ __forceinline__ float plan_fake_quant(float x, ScaleZero2 sz, float inv, float off, const DevQuant& q) {
  return __fmul_rn(sz.s, __fsub_rn(plan_code(x, sz, inv, off, q), sz.z));
}

// Max and min (bracketing 0) over the block; every thread gets them.
__device__ void block_range(float& mx, float& mn, float* shared /* 64 */) {
  for (int o = 16; o > 0; o >>= 1) {
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = (blockDim.x + 31) / 32;
  __syncthreads();
  if (lane == 0) shared[warp] = mx, shared[32 + warp] = mn;
  __syncthreads();
  mx = 0.f, mn = 0.f;
  for (int w = 0; w < warps; ++w) mx = fmaxf(mx, shared[w]), mn = fminf(mn, shared[32 + w]);
}

// One row per block: out[r, c] = fake-quant of x[r, c] over `width` columns. Row groups find
// their range here; the sequence scope reads its window's range (seq_range, by seq_of_row);
// fixed uses the given scale. In place (out == x, same ld) is allowed. With row_scale (one
// scale per row only), out holds the integers q − z, exact in fp16 / bf16, and row_scale[r] the
// scale, which the GEMM's output rows take afterwards: ŷ = s·((q − z)·Ŵᵀ), the fake-quant
// product without rounding s·(q − z) to the GEMM's dtype.
template <class OutT>
__global__ void plan_quant_kernel(const float* x, int ldx, OutT* out, int ldo, int width, DevQuant q,
                                  const float* arena, const float2* seq_range, const int* seq_of_row,
                                  float* row_scale) {
  __shared__ float shared[64];
  const int r = blockIdx.x;
  const float* row = x + size_t(r) * ldx;
  OutT* o = out + size_t(r) * ldo;
  const float* offs = q.step_offset >= 0 ? arena + q.step_offset : nullptr;
  if (q.scope == 1) {
    const int g = q.group > 0 ? q.group : width;
    for (int c0 = 0; c0 < width; c0 += g) {
      const int n = min(g, width - c0);
      float mx = 0.f, mn = 0.f;
      for (int i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, row[c0 + i]), mn = fminf(mn, row[c0 + i]);
      block_range(mx, mn, shared);
      const ScaleZero2 sz = plan_scale(mx, mn, q);
      const float inv = __frcp_rn(sz.s);
      if (row_scale) {  // one group per row (the caller checks): the codes and the row's scale
        if (threadIdx.x == 0) row_scale[r] = sz.s;
        for (int i = threadIdx.x; i < n; i += blockDim.x)
          o[c0 + i] = from_f<OutT>(__fsub_rn(plan_code(row[c0 + i], sz, inv, offs ? offs[c0 + i] : 0.f, q), sz.z));
        continue;
      }
      for (int i = threadIdx.x; i < n; i += blockDim.x)
        o[c0 + i] = from_f<OutT>(plan_fake_quant(row[c0 + i], sz, inv, offs ? offs[c0 + i] : 0.f, q));
    }
    return;
  }
  ScaleZero2 sz{q.scale, q.zero};
  if (q.scope == 2) {
    const float2 range = seq_range[seq_of_row[r]];
    sz = plan_scale(range.x, range.y, q);
  }
  const float inv = __frcp_rn(sz.s);
  if (row_scale) {
    if (threadIdx.x == 0) row_scale[r] = sz.s;
    for (int c = threadIdx.x; c < width; c += blockDim.x)
      o[c] = from_f<OutT>(__fsub_rn(plan_code(row[c], sz, inv, offs ? offs[c] : 0.f, q), sz.z));
    return;
  }
  for (int c = threadIdx.x; c < width; c += blockDim.x)
    o[c] = from_f<OutT>(plan_fake_quant(row[c], sz, inv, offs ? offs[c] : 0.f, q));
}

// y[r, 0…n) *= scale[r] (row stride ldy): the factored activation scale of plan_quant_kernel.
__global__ void scale_rows_kernel(float* y, int ldy, int n, const float* scale, int rows) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x)
    for (int c = threadIdx.x; c < n; c += blockDim.x) y[size_t(r) * ldy + c] *= scale[r];
}

// (max, min) of each row, bracketing 0.
__global__ void row_range_kernel(const float* x, int ldx, int width, float2* out) {
  __shared__ float shared[64];
  const float* row = x + size_t(blockIdx.x) * ldx;
  float mx = 0.f, mn = 0.f;
  for (int c = threadIdx.x; c < width; c += blockDim.x) mx = fmaxf(mx, row[c]), mn = fminf(mn, row[c]);
  block_range(mx, mn, shared);
  if (threadIdx.x == 0) out[blockIdx.x] = make_float2(mx, mn);
}

// The range of each sequence's rows [offsets[s], offsets[s+1]).
__global__ void sequence_range_kernel(const float2* rows, const int* offsets, float2* out) {
  __shared__ float shared[64];
  float mx = 0.f, mn = 0.f;
  for (int r = offsets[blockIdx.x] + threadIdx.x; r < offsets[blockIdx.x + 1]; r += blockDim.x)
    mx = fmaxf(mx, rows[r].x), mn = fminf(mn, rows[r].y);
  block_range(mx, mn, shared);
  if (threadIdx.x == 0) out[blockIdx.x] = make_float2(mx, mn);
}

// out = clamp(x, −limit, limit) per column (FlattenQuant's outlier suppression).
__global__ void clip_columns_kernel(const float* x, int ldx, const float* limit, float* out, int width, int rows) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x)
    for (int c = threadIdx.x; c < width; c += blockDim.x)
      out[size_t(r) * width + c] = fminf(fmaxf(x[size_t(r) * ldx + c], -limit[c]), limit[c]);
}

// FlattenQuant's gather: out[r, j] = x[r, src[j]]·div[j] for j < n_src, 0 up to `width`.
__global__ void flatten_kernel(const float* x, int ldx, const int* src, const float* div, int n_src, float* out,
                               int width, int rows) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x)
    for (int j = threadIdx.x; j < width; j += blockDim.x)
      out[size_t(r) * width + j] = j < n_src ? __fmul_rn(x[size_t(r) * ldx + src[j]], div[j]) : 0.f;
}

template <class OutT>
__global__ void convert_rows_kernel(const float* x, int ldx, OutT* out, int width, int rows) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x)
    for (int c = threadIdx.x; c < width; c += blockDim.x) out[size_t(r) * width + c] = from_f<OutT>(x[size_t(r) * ldx + c]);
}

// x_h ← x_h·M for every head h of the region (columns col0 + h·hd …) of 16 rows per block; M is
// hd×hd row-major, one thread per output column. In place: a block reads its rows first.
constexpr int kHeadRows = 16;
__global__ void head_transform_kernel(float* x, int ld, int col0, int hd, const float* M, int rows) {
  extern __shared__ float xs[];  // kHeadRows × hd
  const int h = blockIdx.y, r0 = blockIdx.x * kHeadRows, d = threadIdx.x;
  for (int i = 0; i < kHeadRows; ++i) {
    const int r = r0 + i;
    xs[i * hd + d] = r < rows ? x[size_t(r) * ld + col0 + h * hd + d] : 0.f;
  }
  __syncthreads();
  float acc[kHeadRows];
#pragma unroll
  for (int i = 0; i < kHeadRows; ++i) acc[i] = 0.f;
  for (int e = 0; e < hd; ++e) {
    const float m = M[size_t(e) * hd + d];
#pragma unroll
    for (int i = 0; i < kHeadRows; ++i) acc[i] += xs[i * hd + e] * m;
  }
  for (int i = 0; i < kHeadRows; ++i) {
    const int r = r0 + i;
    if (r < rows) x[size_t(r) * ld + col0 + h * hd + d] = acc[i];
  }
}

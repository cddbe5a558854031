// Integer GEMM driver: CPU detection, weight packing (prepare time, scalar) and the blocked,
// threaded loop over register tiles (kernels/gemm_s8_tiles.h). Loop order per thread
// (Goto/BLIS): rows in blocks of kMC → k in blocks of kKC (partials kept in the output
// buffer; the vnni path packs this A block once per thread) → its panels of NR columns (the
// panel's k-slice streams from L2, the packed A block stays in L2) → MR-row tiles. Threads
// split the panels (or the rows when there are fewer panels than threads), statically.
#include "kernels/gemm_s8.h"

#include "kernels/gemm_ref.h"
#include "kernels/gemm_s8_tiles.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace fb {

using namespace gemm_detail;

namespace {

// Measured on the 2-core EPYC VM (single thread, 256×4096×4096): k blocks of 512/1024/2048
// ran 32/25/12% slower than 4096 — each block boundary round-trips the int32 partials
// through C, whose rows (4·N bytes apart, often a multiple of 4 KiB) share L1 sets — while
// a panel's 64×4096-byte k-slice still streams well from L2. Row blocks of 48/96 rows were
// no better than 192.
constexpr long kKC = 4096;  // k block: multiple of 8 (the largest packing group)
constexpr long kMC = 192;   // row block: multiple of both MRs
// Largest K whose int32 sums cannot overflow: |a·(w+128)| ≤ 128·255 per term.
constexpr long kMaxK = 2147483647L / (255L * 128L);  // 65793

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("kernels/gemm_s8: " + what); }

long round_up(long v, long to) { return (v + to - 1) / to * to; }

// How one (isa, format) pair stores weights and which tile reads them.
struct Layout {
  int mr = 0, nr = 0;
  long k_pad = 0;          // weights padded to a multiple of this many k
  long panel_bytes_per_k;  // panel bytes per k (k blocks start at multiples of kKC)
  int32_t weight_offset;   // added to every stored weight; subtracted back via row sums
  bool widen_a;            // tiles read int16 activations
  void (*tile)(const TileJob&);
};

Layout layout_of(GemmIsa isa, WeightFormat format) {
  const bool s8 = format == WeightFormat::kS8;
  if (isa == GemmIsa::kAvx512Vnni)
    return s8 ? Layout{kVnniMR, kVnniNR, 4, 64, 128, false, tile_vnni_s8}
              : Layout{kVnniMR, kVnniNR, 8, 32, 8, false, tile_vnni_s4};
  if (isa == GemmIsa::kAvx2)
    return s8 ? Layout{kAvx2MR, kAvx2NR, 4, 32, 0, true, tile_avx2_s8}
              : Layout{kAvx2MR, kAvx2NR, 4, 8, 8, true, tile_avx2_s4};
  fail("no layout for isa " + std::string(isa_name(isa)));
}

GemmIsa resolve(GemmIsa isa) {
  if (isa == GemmIsa::kAuto) return best_isa();
  if (!isa_supported(isa))
    throw std::runtime_error(std::string("kernels/gemm_s8: this CPU cannot run the ") + isa_name(isa) + " path");
  return isa;
}

void free_aligned(uint8_t* p) { std::free(p); }

PackedWeights allocate(GemmIsa isa, WeightFormat format, long N, long K) {
  if (N <= 0 || K <= 0) fail("weights must be non-empty, got N=" + std::to_string(N) + " K=" + std::to_string(K));
  if (K > kMaxK)
    fail("K=" + std::to_string(K) + " could overflow the int32 sums (at most " + std::to_string(kMaxK) + ")");
  const Layout L = layout_of(isa, format);
  PackedWeights w;
  w.isa = isa;
  w.format = format;
  w.n = N;
  w.k = K;
  w.panels = (N + L.nr - 1) / L.nr;
  w.panel_bytes = round_up(K, L.k_pad) * L.panel_bytes_per_k;
  auto* raw = static_cast<uint8_t*>(std::aligned_alloc(64, round_up(long(w.bytes()), 64)));
  if (!raw) throw std::bad_alloc();
  std::memset(raw, 0, w.bytes());
  w.data = {raw, free_aligned};
  return w;
}

// Weight w at (n, k), 0 outside the matrix; `get` reads the caller's format.
template <class Get>
int32_t weight_or_zero(const Get& get, long N, long K, long n, long k) {
  return n < N && k < K ? get(n, k) : 0;
}

// Writes every panel in the layout documented in kernels/gemm_s8_tiles.h.
template <class Get>
void pack(PackedWeights& w, const Get& get) {
  const long N = w.n, K = w.k;
  const long k_padded = round_up(K, layout_of(w.isa, w.format).k_pad);
  auto at = [&](long n, long k) { return weight_or_zero(get, N, K, n, k); };
  auto nib = [&](long n, long k) { return n < N && k < K ? uint8_t((get(n, k) + 8) & 0x0F) : uint8_t(0); };
  for (long p = 0; p < w.panels; ++p) {
    uint8_t* out = w.data.get() + p * w.panel_bytes;
    if (w.isa == GemmIsa::kAvx512Vnni && w.format == WeightFormat::kS8) {
      for (long g = 0; g < k_padded / 4; ++g)
        for (long c = 0; c < 64; ++c)
          for (long i = 0; i < 4; ++i) *out++ = uint8_t(at(64 * p + c, 4 * g + i) + 128);
    } else if (w.isa == GemmIsa::kAvx512Vnni) {
      for (long o = 0; o < k_padded / 8; ++o)
        for (long j = 0; j < 4; ++j)
          for (long i = 0; i < 64; ++i) {
            const long n = 64 * p + 16 * j + i / 4, k = 8 * o + i % 4;
            *out++ = uint8_t(nib(n, k) | nib(n, k + 4) << 4);
          }
    } else if (w.format == WeightFormat::kS8) {
      auto* out16 = reinterpret_cast<int16_t*>(out);
      for (long q = 0; q < k_padded / 2; ++q)
        for (long c = 0; c < 16; ++c)
          for (long i = 0; i < 2; ++i) *out16++ = int16_t(at(16 * p + c, 2 * q + i));
    } else {
      for (long q = 0; q < k_padded / 4; ++q)
        for (long h = 0; h < 2; ++h)
          for (long i = 0; i < 16; ++i) {
            const long n = 16 * p + 8 * h + i / 2, k = 4 * q + i % 2;
            *out++ = uint8_t(nib(n, k) | nib(n, k + 2) << 4);
          }
    }
  }
}

// Per-thread scratch reused across calls (avoids page-faulting fresh buffers every run).
struct Workspace {
  std::vector<int32_t> row_corr;
  std::vector<int16_t> a16;
};
Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

struct Output {
  int32_t* c = nullptr;  // int32 output, or the fp32 output's memory reused for partials
  float* y = nullptr;
  const DequantEpilogue* epilogue = nullptr;
};

// The half-open ranges [begin, end) of rows and panels that thread t of T owns.
struct ThreadShare {
  long row_begin, row_end, panel_begin, panel_end;
};
ThreadShare share_of(int t, int T, long M, long panels, int mr) {
  const long tn = std::min<long>(T, panels), tm = std::max<long>(1, T / tn);
  const long ti = t / tn, tj = t % tn;
  if (ti >= tm) return {0, 0, 0, 0};
  const long row_tiles = (M + mr - 1) / mr;
  auto split = [](long total, long parts, long i) { return total * i / parts; };
  return {std::min(M, split(row_tiles, tm, ti) * mr), std::min(M, split(row_tiles, tm, ti + 1) * mr),
          split(panels, tn, tj), split(panels, tn, tj + 1)};
}

// Where a thread's tiles find A: the vnni path packs each (row block, k block) into a
// per-thread buffer; the avx2 path reads the int16 copy of A made before the loop.
struct ASource {
  const int8_t* A = nullptr;     // caller's A (vnni)
  const int16_t* a16 = nullptr;  // widened A (avx2)
  long ld = 0;                   // row stride of A or a16, in elements
};

void run_share(const ThreadShare& s, const Layout& L, const PackedWeights& W, const ASource& src,
               const int32_t* row_corr, const Output& out) {
  const long N = W.n, K = W.k;
  const DequantEpilogue* ep = out.epilogue;
  thread_local std::vector<int8_t> packed;  // OpenMP threads persist, so this is reused
  if (!src.a16) packed.resize(size_t((kMC + kVnniMR) / kVnniMR * packed_a_tile_bytes(kKC)));
  for (long m0 = s.row_begin; m0 < s.row_end; m0 += kMC) {
    const long m_end = std::min(s.row_end, m0 + kMC);
    for (long k0 = 0; k0 < K; k0 += kKC) {
      const long k_len = std::min(kKC, K - k0);
      if (!src.a16) pack_a_vnni(src.A + m0 * src.ld + k0, src.ld, m_end - m0, k_len, packed.data());
      for (long p = s.panel_begin; p < s.panel_end; ++p) {
        const long n0 = p * L.nr;
        for (long r0 = m0; r0 < m_end; r0 += L.mr) {
          TileJob job;
          if (src.a16) {
            job.a = src.a16 + r0 * src.ld + k0;
            job.lda = src.ld;
          } else {
            job.a = packed.data() + (r0 - m0) / L.mr * packed_a_tile_bytes(k_len);
          }
          job.b = W.data.get() + p * W.panel_bytes + k0 * L.panel_bytes_per_k;
          job.k_len = k_len;
          job.rows = int(std::min<long>(L.mr, m_end - r0));
          job.cols = int(std::min<long>(L.nr, N - n0));
          job.first = k0 == 0;
          job.last = k0 + kKC >= K;
          job.c = out.c + r0 * N + n0;
          job.ldc = N;
          job.row_corr = row_corr ? row_corr + r0 : nullptr;
          if (out.y) {
            job.y = out.y + r0 * N + n0;
            job.ldy = N;
            job.sa_per_row = ep->n_sa != 1;
            job.sa = ep->sa + (job.sa_per_row ? r0 : 0);
            job.sb_per_col = ep->n_sb != 1;
            job.sb = ep->sb + (job.sb_per_col ? n0 : 0);
            job.bias = ep->bias ? ep->bias + n0 : nullptr;
          }
          L.tile(job);
        }
      }
    }
  }
}

// int16 row stride for the avx2 copy of A: k padded to 4, plus a cache line when the
// stride is a multiple of 1 KiB (rows that far apart share L1 sets).
long widened_stride(long K) {
  const long ld = round_up(K, 4);
  return (2 * ld) % 1024 == 0 ? ld + 32 : ld;
}

// Threads worth a fork/join: each must get at least kMinMacsPerThread of work (≈ 30 µs on
// one core) and a tile of its own; a team whose members wait on a descheduled sibling costs
// more than it saves on small shapes, most of all on a shared machine.
constexpr long kMinMacsPerThread = 1L << 22;
int useful_threads(int threads, long M, const PackedWeights& W, const Layout& L) {
  const long by_work = std::max(1L, M * W.n * W.k / kMinMacsPerThread);
  const long by_tiles = W.panels * ((M + L.mr - 1) / L.mr);
  return int(std::max(1L, std::min({long(threads), by_work, by_tiles})));
}

void check_epilogue(const DequantEpilogue& ep, long M, long N) {
  if (!ep.sa || !ep.sb) fail("the dequantizing epilogue needs both scale arrays");
  if (ep.n_sa != 1 && ep.n_sa != M)
    fail("sa has " + std::to_string(ep.n_sa) + " scales, expected 1 or M=" + std::to_string(M));
  if (ep.n_sb != 1 && ep.n_sb != N)
    fail("sb has " + std::to_string(ep.n_sb) + " scales, expected 1 or N=" + std::to_string(N));
}

void run(const int8_t* A, long M, const PackedWeights& W, const Output& out, int threads) {
  if (!W.data) fail("weights were not packed");
  if (M < 0) fail("negative row count M=" + std::to_string(M));
  if (M == 0) return;
  if (out.epilogue) check_epilogue(*out.epilogue, M, W.n);
  const Layout L = layout_of(W.isa, W.format);
  Workspace& ws = workspace();
  const bool corrected = L.weight_offset != 0;
  if (corrected && ws.row_corr.size() < size_t(M)) ws.row_corr.resize(M);
  int32_t* row_corr = corrected ? ws.row_corr.data() : nullptr;
  ASource src{A, nullptr, W.k};
  if (L.widen_a) {
    src.ld = widened_stride(W.k);
    if (ws.a16.size() < size_t(M * src.ld)) ws.a16.resize(M * src.ld);
    src.a16 = ws.a16.data();
  }

  const int team = useful_threads(threads, M, W, L);
#pragma omp parallel if (team > 1) num_threads(team)
  {
    // Row sums (and int16 widening) first: every tile of a row needs its correction.
#pragma omp for schedule(static)
    for (long m = 0; m < M; ++m) {
      if (L.widen_a)
        widen_rows_avx2(A + m * W.k, 1, W.k, ws.a16.data() + m * src.ld, src.ld, L.weight_offset,
                        row_corr ? row_corr + m : nullptr);
      else
        row_corrections_avx512(A + m * W.k, 1, W.k, W.k, L.weight_offset, row_corr + m);
    }
    const ThreadShare s = share_of(omp_get_thread_num(), omp_get_num_threads(), M, W.panels, L.mr);
    run_share(s, L, W, src, row_corr, out);
  }
}

}  // namespace

const char* isa_name(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kAuto: return "auto";
    case GemmIsa::kAvx2: return "avx2";
    case GemmIsa::kAvx512Vnni: return "avx512_vnni";
  }
  return "?";
}

bool isa_supported(GemmIsa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case GemmIsa::kAuto: return isa_supported(GemmIsa::kAvx2);
    case GemmIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GemmIsa::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

GemmIsa best_isa() {
  if (isa_supported(GemmIsa::kAvx512Vnni)) return GemmIsa::kAvx512Vnni;
  if (isa_supported(GemmIsa::kAvx2)) return GemmIsa::kAvx2;
  throw std::runtime_error("kernels/gemm_s8: the integer GEMM needs at least AVX2 + FMA");
}

PackedWeights pack_weights_s8(const int8_t* B, long N, long K, GemmIsa isa) {
  PackedWeights w = allocate(resolve(isa), WeightFormat::kS8, N, K);
  pack(w, [&](long n, long k) { return int32_t(B[n * K + k]); });
  return w;
}

PackedWeights pack_weights_s4(const uint8_t* B4, long N, long K, GemmIsa isa) {
  PackedWeights w = allocate(resolve(isa), WeightFormat::kS4, N, K);
  const long stride = int4_row_bytes(K);
  pack(w, [&](long n, long k) { return int4_at(B4 + n * stride, k); });
  return w;
}

void gemm_s8_packed(const int8_t* A, long M, const PackedWeights& B, int32_t* C, int threads) {
  run(A, M, B, Output{C, nullptr, nullptr}, threads);
}

void gemm_s8_packed(const int8_t* A, long M, const PackedWeights& B, const DequantEpilogue& epilogue, float* Y,
                    int threads) {
  // The fp32 output doubles as the int32 partial-sum buffer (same size, written before read).
  run(A, M, B, Output{reinterpret_cast<int32_t*>(Y), Y, &epilogue}, threads);
}

}  // namespace fb

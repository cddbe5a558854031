// oneDNN (libdnnl 2.6) matmul backends: the anchors our kernels are measured beside, in the
// same job. Weights are handed over in oneDNN's preferred layout (format_tag::any, reordered
// once at prepare time), just as our kernels pack theirs.
//   onednn_fp32 — f32 × f32 → f32
//   onednn_s8   — s8 × s8 → f32 with per-channel output scales. The per-token factor of
//                 ours_s8's epilogue is left out: in oneDNN 2.6 a row-broadcast binary-mul
//                 post-op sends matmul to its reference kernel (ref_int8, ~1000× slower), so
//                 this anchor does one multiply per output less than ours_s8.
#ifdef FLATBENCH_HAVE_DNNL

#include "kernels/gemm_backend.h"
#include "kernels/gemm_backends_int.h"
#include "kernels/gemm_operands.h"

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>

namespace fb {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// One matmul C[M×N] = A[M×K] · B[N×K]ᵀ with its operands in oneDNN memory.
class OneDnnMatmul : public GemmProblem {
 public:
  void run() override {
    omp_set_num_threads(threads_);
    prim_.execute(stream_, args_);
    stream_.wait();
  }

 protected:
  OneDnnMatmul(const GemmShape& s, int threads) : s_(s), threads_(resolve_threads(threads)) {}

  // Builds the primitive; weights (N×K row-major = K×N in "ba") go through a reorder into
  // whatever layout the primitive asked for.
  void build(dt src_t, dt wei_t, const void* A, const void* B, const dnnl::primitive_attr& attr) {
    memory::desc a_md({s_.m, s_.k}, src_t, tag::ab), b_any({s_.k, s_.n}, wei_t, tag::any),
        b_user({s_.k, s_.n}, wei_t, tag::ba), c_md({s_.m, s_.n}, dt::f32, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_any, c_md), attr, engine_);
    prim_ = dnnl::matmul(pd);
    src_ = memory(a_md, engine_, const_cast<void*>(A));
    memory user_b(b_user, engine_, const_cast<void*>(B));
    wei_ = memory(pd.weights_desc(), engine_);
    dnnl::reorder(user_b, wei_).execute(stream_, user_b, wei_);
    dst_ = memory(c_md, engine_);
    stream_.wait();
    args_ = {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, wei_}, {DNNL_ARG_DST, dst_}};
  }
  const float* output() const { return static_cast<const float*>(dst_.get_data_handle()); }

  GemmShape s_;
  int threads_;
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  dnnl::matmul prim_;
  memory src_, wei_, dst_;
  std::unordered_map<int, memory> args_;
};

class OneDnnFp32 : public OneDnnMatmul {
 public:
  OneDnnFp32(const GemmShape& s, uint64_t seed, int threads)
      : OneDnnMatmul(s, threads), A_(random_matrix(s.m, s.k, seed)), B_(random_matrix(s.n, s.k, seed + 1)) {
    build(dt::f32, dt::f32, A_.data(), B_.data(), {});
  }
  double verify() override {
    run();
    return sampled_gemm_error(A_.data(), B_.data(), output(), s_.m, s_.n, s_.k);
  }

 private:
  std::vector<float> A_, B_;
};

class OneDnnS8 : public OneDnnMatmul {
 public:
  OneDnnS8(const GemmShape& s, uint64_t seed, int threads) : OneDnnMatmul(s, threads) {
    a_ = quantize_rows_symmetric(random_matrix(s.m, s.k, seed), s.m, s.k, 8);
    w_ = quantize_rows_symmetric(random_matrix(s.n, s.k, seed + 1), s.n, s.k, 8);
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, w_.scales);  // per output channel (dim 1 of C)
    build(dt::s8, dt::s8, a_.codes.data(), w_.codes.data(), attr);
  }
  // Without the per-token factor the output is codes(A) · dequantized(B)ᵀ.
  double verify() override {
    run();
    std::fill(a_.scales.begin(), a_.scales.end(), 1.0f);
    const auto A = dequantize_rows(a_, s_.m, s_.k), B = dequantize_rows(w_, s_.n, s_.k);
    return sampled_gemm_error(A.data(), B.data(), output(), s_.m, s_.n, s_.k);
  }

 private:
  SymmetricRows a_, w_;
};

bool always() { return true; }

}  // namespace

FB_REGISTER_GEMM_BACKEND({"onednn_fp32", gemm_dtype::kFp32, "oneDNN matmul f32 (weights in oneDNN's blocked layout)", true,
                          always, [](const GemmShape& s, uint64_t seed, int threads) -> std::unique_ptr<GemmProblem> {
                            return std::make_unique<OneDnnFp32>(s, seed, threads);
                          }});
FB_REGISTER_GEMM_BACKEND({"onednn_s8", gemm_dtype::kS8S8S32,
                          "oneDNN matmul s8 x s8 -> f32 with per-channel output scales (no per-token factor: see gemm_onednn.cpp)",
                          false, always,
                          [](const GemmShape& s, uint64_t seed, int threads) -> std::unique_ptr<GemmProblem> {
                            return std::make_unique<OneDnnS8>(s, seed, threads);
                          }});

}  // namespace fb

#endif  // FLATBENCH_HAVE_DNNL

#ifndef FLATBENCH_HAVE_DNNL
// Built without oneDNN (its CMake config failed at configure time: cmake/OptionalPackage.cmake).
// The names stay registered, so configs that list them still load, and each of their GEMM rows
// is not_supported instead of the whole config being refused as naming unknown backends.
#include "kernels/gemm_backend.h"

#include <stdexcept>

namespace fb {
namespace {

bool not_built() { return false; }

std::unique_ptr<GemmProblem> not_built_problem(const GemmShape&, uint64_t, int) {
  throw std::logic_error("this flatbench was built without oneDNN");
}

}  // namespace

FB_REGISTER_GEMM_BACKEND({"onednn_fp32", gemm_dtype::kFp32, "oneDNN matmul f32 — not in this build (oneDNN was not found)",
                          true, not_built, not_built_problem});
FB_REGISTER_GEMM_BACKEND({"onednn_s8", gemm_dtype::kS8S8S32, "oneDNN matmul s8 x s8 — not in this build (oneDNN was not found)",
                          false, not_built, not_built_problem});

}  // namespace fb
#endif  // !FLATBENCH_HAVE_DNNL

// Runs independent forward passes (PPL windows, zero-shot documents) over the items of an
// evaluation: one item per thread with BLAS single-threaded meanwhile (for small models this
// beats threading inside the GEMMs by far), or serially when a hook must see forwards one at
// a time (a calibration site hook, or an attention hook not marked pure).
#pragma once

#include "core/blas_threads.h"
#include "core/progress.h"
#include "models/model.h"

#include <exception>
#include <optional>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fb {

// Whether forwards of `model` may run concurrently: no site hook, every attention hook pure.
inline bool forwards_may_run_concurrently(const Model& model) {
  return !model.site_hook && attention_hook_is_pure(model.attention_hook);
}

// fn(i) for i in [0, n), on `threads` threads (0: OpenMP's default) when the model allows it.
// Progress counts finished items; the first exception is rethrown after the loop, and
// OpenBLAS's thread count is restored.
template <class Fn>
void for_each_forward(const Model& model, int n, int threads, Progress& progress, Fn fn) {
  const bool serial = !forwards_may_run_concurrently(model) || threads == 1;
#ifdef _OPENMP
  const int use = serial ? 1 : (threads > 0 ? threads : omp_get_max_threads());
#else
  const int use = 1;
#endif
  std::optional<BlasThreadsFor> single_blas;
  if (use > 1) single_blas.emplace(1);
  long done = 0;
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(use) if (use > 1)
  for (int i = 0; i < n; ++i) {
    try {
      fn(i);
    } catch (...) {
#pragma omp critical(for_each_forward_error)
      if (!error) error = std::current_exception();
    }
#pragma omp critical(for_each_forward_progress)
    progress.step(++done);
  }
  single_blas.reset();
  if (error) std::rethrow_exception(error);
}

}  // namespace fb

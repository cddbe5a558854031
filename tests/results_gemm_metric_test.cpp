// The one spelling of a GEMM timing metric, shared by the CPU gemm evaluator and flatbench-gpu.
#include "core/results.h"

#include <gtest/gtest.h>

namespace fb {
namespace {

GemmRecord timed(const std::string& backend, long m, long n, long k, std::vector<double> samples, double median) {
  GemmRecord g;
  g.backend = backend;
  g.m = m, g.n = n, g.k = k;
  g.samples_ms = std::move(samples);
  g.reps = int(g.samples_ms.size());
  g.median_ms = median;
  return g;
}

TEST(GemmMetric, NameIsMsBackendAndShape) {
  EXPECT_EQ(gemm_metric_name(timed("openblas_fp32", 256, 768, 3072, {}, 0)), "ms/openblas_fp32/256x768x3072");
}

TEST(GemmMetric, CarriesTheMedianAndEveryRepetition) {
  JobResult r;
  const Metric& m = add_gemm_metric(r, timed("cublas", 1, 2, 3, {1.0, 3.0}, 2.0));
  ASSERT_EQ(r.metrics.size(), 1u);
  EXPECT_EQ(m.name, "ms/cublas/1x2x3");
  EXPECT_EQ(m.unit, "ms");
  EXPECT_DOUBLE_EQ(m.value, 2.0);
  EXPECT_EQ(m.n, 2);
  EXPECT_EQ(m.samples, (std::vector<double>{1.0, 3.0}));
  EXPECT_DOUBLE_EQ(m.stddev, summarise({1.0, 3.0}).stddev);
}

}  // namespace
}  // namespace fb

// Table 5 groups GEMM rows by their dtype's traits row; a dtype without a row is not guessed
// into a column but named in a note, so a new backend's numbers are not silently dropped.
#include "reports/tables.h"
#include "reports_test_util.h"

#include <gtest/gtest.h>

namespace fb {
namespace {

GemmRecord gemm(const char* backend, const char* dtype, double ms) {
  GemmRecord x;
  x.backend = backend;
  x.dtype = dtype;
  x.m = 64, x.n = 128, x.k = 128;
  x.median_ms = ms;
  return x;
}

TEST(ReportGemmDtype, Table5NamesTheDtypesItCannotClassify) {
  test::ReportDb db;
  const std::string run = db.run();
  JobResult r;
  r.gemms = {gemm("openblas_fp32", "fp32", 2.0), gemm("some_bf16", "bf16", 0.7), gemm("some_u4", "u4x", 0.3)};
  db.job(run, test::make_spec("", "", json::object(), "gemm"), r);
  const Table t = build_tables(db.store, "t5_latency").at(0);
  ASSERT_FALSE(t.rows.empty());
  const auto& row = t.rows[0];
  const auto col = [&](const char* h) { return std::find(t.headers.begin(), t.headers.end(), h) - t.headers.begin(); };
  EXPECT_EQ(row[col("fp32 ms")], "2");
  EXPECT_EQ(row[col("fp16 ms")], "") << "bf16 is not fp16";
  EXPECT_EQ(row[col("int4 ms")], "") << "u4x is not known to be int4";
  bool noted = false;
  for (const auto& n : t.notes)
    noted |= n.find("bf16") != std::string::npos && n.find("u4x") != std::string::npos && n.find("some_bf16") != std::string::npos;
  EXPECT_TRUE(noted) << "a note names the unclassified dtypes and their backends";
}

}  // namespace
}  // namespace fb

// The GEMM dtype traits table: every dtype a backend records has its row, and the reports'
// precision class is the row's, never a guess from the dtype's spelling.
#include "kernels/gemm_backend.h"
#include "kernels/gemm_dtype.h"
#include "reports/tables.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace fb {
namespace {

TEST(GemmDtype, EveryRegisteredBackendsDtypeHasATraitsRow) {
  const auto& backends = Registry<GemmBackendInfo>::instance().all();
  ASSERT_FALSE(backends.empty());
  for (const auto& [name, b] : backends) EXPECT_NE(find_gemm_dtype(b.dtype), nullptr) << name << ": dtype " << b.dtype;
}

TEST(GemmDtype, RowsAreUniqueAndTheirClassesAreTable5Columns) {
  std::set<std::string_view> names;
  for (const GemmDtypeTraits& d : kGemmDtypes) {
    EXPECT_TRUE(names.insert(d.name).second) << "two rows named " << d.name;
    EXPECT_NE(std::find(std::begin(kPrecisionClasses), std::end(kPrecisionClasses), d.report_class),
              std::end(kPrecisionClasses))
        << d.name << ": report class " << d.report_class;
    EXPECT_EQ(d.is_gemm, !d.accumulator.empty()) << d.name << ": only a GEMM accumulates";
    EXPECT_EQ(d.is_gemm, d.weight_bits > 0) << d.name << ": only a GEMM has weights";
  }
}

TEST(GemmDtype, PrecisionClassOfEachKnownDtype) {
  const std::pair<const char*, const char*> expected[] = {
      {"fp32", "fp32"},           {"fp16", "fp16"},       {"fp8e4m3", "fp8"},
      {"s8s8s32", "int8"},        {"s8s8_fp16out", "int8"}, {"w4a8", "int4"},
      {"flatten_quant", "flatten"}, {"flatten_quant_staggered", "flatten_staggered"},
      {"kron_quant", "transform"}, {"kron_quant_int8", "transform"}};
  for (const auto& [dtype, cls] : expected) EXPECT_EQ(precision_class(dtype), cls) << dtype;
  EXPECT_EQ(find_gemm_dtype("w4a8")->weight_bits, 4);
  EXPECT_EQ(find_gemm_dtype("w4a8")->math, "int8");  // the int4 weights are widened to int8 before the multiply
  EXPECT_EQ(find_gemm_dtype("fp8e4m3")->math, "fp8");
}

// Spellings no backend records: the old substring guesser filed them under a class ("bf16" as
// fp16, "u4x" as int4, "float" as fp32); an unknown dtype must stay unclassified instead.
TEST(GemmDtype, UnknownDtypesAreNotGuessed) {
  for (const char* dtype : {"bf16", "u4x", "float", "int8_lookalike", "fp8e5m2", "nf4_lut", ""})
    EXPECT_EQ(precision_class(dtype), "") << dtype;
}

}  // namespace
}  // namespace fb

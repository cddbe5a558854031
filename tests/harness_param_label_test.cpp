// One parameter label for config job labels and report table cells: the non-default
// parameters in schema order, paths left out, values shown by the caller's formatter.
#include "harness/param_label.h"
#include "reports/tables.h"
#include "reports_test_util.h"

#include <gtest/gtest.h>

namespace fb {
namespace {

using T = ParamType;

ParamSchema schema() {
  return {{"w_bits", T::Int, 4, "weight bits"},
          {"alpha", T::Float, 0.5, "strength"},
          {"weights", T::String, "w.bin", "a file under the data dir", {}, ParamRole::file, {}},
          {"mode", T::String, "kl", "mode", {"kl", "int8"}}};
}

std::string dump(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

TEST(ParamLabel, NonDefaultParametersInSchemaOrder) {
  const json params = {{"mode", "int8"}, {"w_bits", 8}, {"alpha", 0.5}};
  EXPECT_EQ(param_label(schema(), params, dump), "w_bits=8,mode=int8");
  EXPECT_EQ(param_label(schema(), params, dump, {"w_bits"}), "mode=int8") << "a parameter the table has a column for";
  EXPECT_EQ(param_label(schema(), {{"w_bits", 4}}, dump), "") << "defaults are not shown";
}

TEST(ParamLabel, PathsAreLeftOutAndUndeclaredParametersFollow) {
  const json params = {{"weights", "other.bin"}, {"old_knob", 3}, {"alpha", 0.25}};
  EXPECT_EQ(param_label(schema(), params, dump), "alpha=0.25,old_knob=3") << "a spec from an older schema keeps its settings";
}

// The report's method cell and the config's label come from the same selection: schema order
// (not the spec's alphabetical key order), the same defaults left out.
TEST(ParamLabel, ReportMethodCellUsesSchemaOrder) {
  const json spec = test::make_spec("m", "flattenquant", {{"bits_mode", "int4"}, {"pad_to", 64}, {"alpha", 0.5}}, "ppl");
  EXPECT_EQ(method_cell(spec), "flattenquant(pad_to=64,bits_mode=int4)");  // alpha = 0.5 is the default
}

}  // namespace
}  // namespace fb

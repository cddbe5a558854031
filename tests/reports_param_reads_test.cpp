// Every method parameter a report table or plot reads from a job spec exists in the registered
// schema of the method it is read from: a spelling no method has (the old `flatten_beta`,
// `kl_threshold`) would show an empty column without an error.
#include "core/registry.h"
#include "methods/method.h"
#include "reports/param_reads.h"
#include "reports/plot.h"
#include "reports/tables.h"
#include "reports_test_util.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace fb {
namespace {

void expect_in_schema(const std::string& reader, const ParamRef& ref) {
  EXPECT_EQ(param_ref_problem(ref), "") << reader << " reads " << ref.part << " " << ref.owner << "." << ref.name;
}

TEST(ReportParamReads, EveryParameterATableReadsIsInItsMethodsSchema) {
  size_t reads = 0;
  for (const TableDef& t : table_defs())
    for (const ParamRef& ref : t.reads) {
      expect_in_schema("table " + t.name, ref);
      ++reads;
    }
  EXPECT_GE(reads, 8u) << "the FlattenQuant tables and the FlatQuant comparison list what they read";
}

TEST(ReportParamReads, EveryParameterAPlotReadsIsInItsMethodsSchema) {
  size_t reads = 0;
  for (const PlotDef& p : plot_defs())
    for (const ParamRef& ref : p.reads) {
      expect_in_schema("plot " + p.name, ref);
      ++reads;
    }
  EXPECT_GE(reads, 2u) << "the β and γ plots list the parameter they sweep";
}

TEST(ReportParamReads, TheSweptParametersAreFlattenQuantsOwn) {
  const MethodInfo* fq = Registry<MethodInfo>::instance().find("flattenquant");
  ASSERT_NE(fq, nullptr);
  for (const ParamRef* ref : {&report_params::kBeta, &report_params::kGamma, &report_params::kAlpha,
                              &report_params::kSmooth, &report_params::kSuppress}) {
    EXPECT_EQ(ref->owner, "flattenquant");
    EXPECT_NE(find_param(fq->params, ref->name), nullptr) << ref->name;
  }
}

TEST(ReportParamReads, AReadOfAnUnregisteredSpellingThrowsNamingIt) {
  const json spec = test::make_spec("m", "flattenquant", {{"beta", 2.0}}, "ppl");
  EXPECT_EQ(method_num(spec, report_params::kBeta), 2.0);
  EXPECT_FALSE(method_num(spec, report_params::kGamma)) << "unset in the spec: no value, no error";
  try {
    method_num(spec, ParamRef{"flattenquant", "flatten_beta"});
    FAIL() << "a spelling no schema has must not read as unset";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("flatten_beta"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("flattenquant"), std::string::npos) << e.what();
  }
  EXPECT_NE(param_ref_problem(ParamRef{"no_such_method", "beta"}), "");
  EXPECT_NE(param_ref_problem(ParamRef{"", "kl_threshold"}), "") << "any-method reads need some method to have it";
  EXPECT_EQ(param_ref_problem(ParamRef{"", "w_bits"}), "");
}

// Model parameters are read from the model format's schema (the regime study's outlier knobs
// are the synthetic format's).
TEST(ReportParamReads, ModelParametersAreCheckedAgainstTheModelFormatsSchema) {
  EXPECT_EQ(param_ref_problem(report_params::kOutlierScale), "");
  EXPECT_EQ(report_params::kOutlierScale.part, "model");
  EXPECT_NE(param_ref_problem(ParamRef{"synthetic", "outlier_gain", "model"}), "");
  EXPECT_NE(param_ref_problem(ParamRef{"flattenquant", "outlier_scale", "model"}), "") << "no model format is called so";
  json spec = test::make_spec("m", "", json::object(), "ppl");
  spec["model"]["params"]["outlier_scale"] = 12.0;
  EXPECT_EQ(model_num(spec, report_params::kOutlierScale), 12.0);
  EXPECT_THROW(model_num(spec, ParamRef{"synthetic", "outlier_gain", "model"}), std::logic_error);
}

}  // namespace
}  // namespace fb

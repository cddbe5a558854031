// load_model checks a model spec's parameters with the checker the config loader uses (type,
// choices, range), and reports in its own style: it throws, naming the format and the parameter.
#include "models/source.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace fb {
namespace {

std::string load_error(const SpecPart& model) {
  return test::error_of([&] { load_model(model, test::data_dir()); });
}

const SpecPart kSynthetic = {"tiny", "synthetic", {{"arch", "opt-125m"}, {"layers", 1}, {"vocab", 1000}}};

SpecPart with(SpecPart model, const std::string& key, const json& value) {
  model.params[key] = value;
  return model;
}

TEST(ModelSourceParams, OutOfRangeValueIsRefusedNamingTheParameter) {
  EXPECT_EQ(load_error(with(kSynthetic, "outlier_scale", -1.0)),
            "model format 'synthetic': parameter 'outlier_scale': -1 is out of range (expects ≥ 0)");
  EXPECT_EQ(load_error(with(kSynthetic, "layers", -3)),
            "model format 'synthetic': parameter 'layers': -3 is out of range (expects ≥ 0)");
}

TEST(ModelSourceParams, WrongTypeAndUnknownChoiceKeepTheirMessages) {
  EXPECT_EQ(load_error(with(kSynthetic, "layers", "two")), "model format 'synthetic': parameter 'layers' must be a integer");
  EXPECT_NE(load_error(with(kSynthetic, "arch", "gpt-5")).find("parameter 'arch' must be one of "), std::string::npos);
}

// A model part's parameters are the format's alone (its name and format are members of their
// own), so a misspelt one is refused instead of loading the model with the default.
TEST(ModelSourceParams, UnknownParameterIsRefusedNamingTheKnownOnes) {
  const std::string error = load_error(with(kSynthetic, "layerz", 2));
  EXPECT_NE(error.find("model format 'synthetic': unknown parameter 'layerz' (known: "), std::string::npos) << error;
  EXPECT_NE(error.find("layers"), std::string::npos) << error;
}

TEST(ModelSourceParams, ValuesInRangeLoad) {
  EXPECT_EQ(load_error(with(kSynthetic, "outlier_scale", 0.0)), "");
}

}  // namespace
}  // namespace fb

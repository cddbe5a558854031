// The pieces rtn/smoothquant and flattenquant share: one reading of the GPTQ options.
#include "core/params.h"
#include "core/registry.h"
#include "methods/common/recipe.h"
#include "methods/flattenquant/pipeline.h"
#include "methods/method.h"

#include <gtest/gtest.h>

namespace fb {
namespace {

const json kGptqGiven = {{"w_quantizer", "gptq"}, {"gptq_block", 64}, {"gptq_damp", 0.05}, {"gptq_act_order", true},
                         {"w_mse", true}};

TEST(GptqOptionsFrom, ReadsBlockDampActOrderAndMseClip) {
  const GptqOptions o = gptq_options_from(fill_defaults(quant_param_schema(), kGptqGiven));
  EXPECT_EQ(o.block, 64);
  EXPECT_DOUBLE_EQ(o.damp, 0.05);
  EXPECT_TRUE(o.act_order);
  EXPECT_TRUE(o.mse_clip);
}

TEST(GptqOptionsFrom, RecipeAndFlattenQuantReadTheSameOptions) {
  const ParamSchema& fq = Registry<MethodInfo>::instance().find("flattenquant")->params;
  const GptqOptions a = recipe_from_params(fill_defaults(quant_param_schema(), kGptqGiven), 0).gptq;
  const GptqOptions b = flattenquant_config_from(fill_defaults(fq, kGptqGiven), 0).gptq_opt;
  EXPECT_EQ(a.block, b.block);
  EXPECT_DOUBLE_EQ(a.damp, b.damp);
  EXPECT_EQ(a.act_order, b.act_order);
  EXPECT_EQ(a.mse_clip, b.mse_clip);
}

}  // namespace
}  // namespace fb

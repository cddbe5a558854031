// Jobs too large for the machine fail before they allocate, naming what was too large
// (issue 16 item 9), instead of ending in std::bad_alloc or the OOM killer.
#include "harness/evaluator.h"
#include "core/resources.h"
#include "models/source.h"
#include "test_util.h"

namespace fb {
namespace {

using test::error_of;

TEST(Resources, ASyntheticModelLargerThanMemoryIsRefusedBeforeAllocating) {
  if (physical_memory_bytes() > 512.0 * (1ull << 30)) GTEST_SKIP() << "a machine with over 512 GiB holds it";
  const std::string e = error_of([] {
    load_model({"", "synthetic", {{"arch", "opt-66b"}, {"layers", 0}}}, test::data_dir());
  });
  EXPECT_NE(e.find("synthetic opt-66b with 64 layers"), std::string::npos) << e;
  EXPECT_NE(e.find("needs about"), std::string::npos) << e;
}

TEST(Resources, AGemmShapeLargerThanMemoryFailsItsJobWithTheShape) {
  if (physical_memory_bytes() > 4096.0 * (1ull << 30)) GTEST_SKIP() << "a machine with over 4 TiB holds it";
  const EvaluatorInfo* gemm = Registry<EvaluatorInfo>::instance().find("gemm");
  ASSERT_NE(gemm, nullptr);
  const json params = fill_defaults(gemm->params, {{"shapes", {{300000, 300000, 300000}}}});
  Progress progress(true);
  const std::filesystem::path dir = test::data_dir();
  EvalContext ctx{params, dir, nullptr, nullptr, 0, progress};
  JobResult r;
  const std::string e = error_of([&] { gemm->run(ctx, r); });
  EXPECT_NE(e.find("gemm shape [300000, 300000, 300000] needs about"), std::string::npos) << e;
}

}  // namespace
}  // namespace fb

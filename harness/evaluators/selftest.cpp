// The `selftest` evaluator exercises the harness itself with no model and no kernel:
// it waits, records a few metrics one by one (so a kill in between would expose any
// half-written job), or fails on request. Resume, crash-safety and sharding tests use it.
#include "harness/evaluator.h"

#include <chrono>
#include <stdexcept>
#include <thread>

namespace fb {

namespace {

void run_selftest(EvalContext& ctx, JobResult& result) {
  const int n = param_int(ctx.params, "metrics");
  const int sleep_ms = param_int(ctx.params, "sleep_ms");
  ctx.progress.begin("selftest", n);
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms / std::max(1, n)));
    result.add("value_" + std::to_string(i), param_float(ctx.params, "value") + i + static_cast<double>(ctx.seed));
    ctx.progress.step(i + 1);
  }
  ctx.progress.end();
  if (param_bool(ctx.params, "fail")) throw std::runtime_error("selftest: failing as asked (fail: true)");
}

}  // namespace

FB_REGISTER_EVALUATOR({"selftest",
                       "harness self-check: waits, records `metrics` values, optionally fails",
                       {
                           {"sleep_ms", ParamType::Int, 0, "total time to wait while recording (ms)", {}, {}, at_least(0)},
                           {"metrics", ParamType::Int, 3, "number of metrics to record", {}, {}, at_least(0)},
                           {"value", ParamType::Float, 1.0, "base value of the recorded metrics"},
                           {"fail", ParamType::Bool, false, "throw after recording, to test failure handling"},
                       },
                       false, run_selftest});

}  // namespace fb

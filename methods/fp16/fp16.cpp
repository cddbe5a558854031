// fp16: the unquantized reference. Installs nothing; records each site (16 bits, FLOPs) so
// FLOP shares and memory terms have a baseline row.
#include "methods/common/recipe.h"
#include "methods/method.h"

namespace fb {
namespace {

void apply_fp16(Model& m, MethodContext&, JobResult& result) {
  record_unquantized_sites(m, result);
  result.add("n_sites", double(m.sites().size()));
  result.info["recipe"] = "W16 / A16 / KV16";
}

}  // namespace

FB_REGISTER_METHOD(MethodInfo{"fp16", "no quantization (the full-precision reference; weights stay fp32 in memory)", {},
                              apply_fp16});

}  // namespace fb

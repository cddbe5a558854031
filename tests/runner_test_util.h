// Runs a sweep as `flatbench run` does (app/cli.cpp): into the DB at opt.db_path, then the
// results table on `out`.
#pragma once

#include "harness/runner.h"
#include "harness/store.h"
#include "reports/summary.h"

#include <ostream>

namespace fb::test {

inline RunCounts run_and_print(const Config& cfg, const RunOptions& opt, std::ostream& out) {
  Store store(opt.db_path);
  RunCounts c = run_sweep(cfg, opt, store);
  print_summary(store, c.selection, out, opt.json);
  return c;
}

}  // namespace fb::test

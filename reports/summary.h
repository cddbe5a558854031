// The table printed at the end of `flatbench run` and by `flatbench report`: one row per
// job with its headline metrics, then one row per GEMM measurement.
#pragma once

#include "harness/config.h"
#include "reports/table.h"

#include <iosfwd>
#include <vector>

namespace fb {

class Store;

std::vector<Table> summary_tables(const Store& store, const std::vector<Job>& jobs);
// All jobs in the DB (newest done row per key), for `flatbench report` without a config.
std::vector<Table> summary_tables(const Store& store);
void print_summary(const Store& store, const std::vector<Job>& jobs, std::ostream& out, bool json);

}  // namespace fb

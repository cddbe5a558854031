// `flatbench compare A B`: two runs (uuid prefixes) or two commits (hash prefixes; every run of
// that commit), per-metric ratio B/A for the jobs both ran, U-test p-values where both sides
// have repetitions, and a geometric-mean summary (google benchmark compare.py's OVERALL_GEOMEAN).
#pragma once

#include "reports/regression.h"
#include "reports/table.h"

#include <string>
#include <vector>

namespace fb {

class Store;

struct CompareSide {
  std::string ref;                    // what the user typed
  std::string what;                   // "run 1a2b3c4d" or "commit 0123abcd (3 runs)"
  std::vector<std::string> run_uuids;
  std::vector<ReportRow> rows;        // newest done row per job key within those runs
};

// Resolves a run uuid prefix, else a commit prefix. Throws std::invalid_argument when neither matches.
CompareSide resolve_side(const Store& store, const std::string& ref);

// [per-metric table, geometric-mean summary].
std::vector<Table> compare_tables(const Store& store, const std::string& a, const std::string& b,
                                  const CheckOptions& opt = {});

}  // namespace fb

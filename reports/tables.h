// The paper tables, each built from the DB by query. One TableDef = one entry of
// table_defs(): adding a table is adding a row there (name, help, builder, the parameters it reads).
//
//   flatbench report --table t4_int4_share --format md
#pragma once

#include "reports/param_reads.h"
#include "reports/query.h"
#include "reports/table.h"

#include <functional>
#include <string>
#include <vector>

namespace fb {

class Store;

struct TableDef {
  std::string name;
  std::string help;
  std::function<std::vector<Table>(const Store&)> build;
  std::vector<ParamRef> reads = {};  // the method parameters it reads (a test checks each against the schema)
};

const std::vector<TableDef>& table_defs();
const TableDef* find_table(const std::string& name);
// The named table, or every table for "all". Throws std::invalid_argument naming the known tables.
std::vector<Table> build_tables(const Store& store, const std::string& name);
std::string table_list_help();  // "  name  help" lines for --help

// "rtn(w_bits=4,a_bits=8)": the method's name and the parameters that differ from its schema's defaults.
// Parameters named in `leave_out` are not shown (the table has a column for them).
std::string method_cell(const json& spec, const std::vector<std::string>& leave_out = {});
// A γ value as the FlattenQuant method reads it: < 0 means all INT8, ≥ 1e30 all INT4.
std::string gamma_cell(double gamma);
// INT4 share of a FlattenQuant job as a fraction: the job's metric when recorded, else counted from its sites.
struct Int4Share {
  double layers = NAN, flops = NAN;
  int sites = 0;
};
Int4Share int4_share(const Store& store, const ReportRow& row);
// A share metric as a fraction: metrics with unit "%" are divided by 100.
double fraction_metric(const ReportRow& row, const std::string& name);

// The report precision class of a GEMM dtype, from its row of kernels/gemm_dtype.h (fp32, fp16, fp8, int8,
// int4, flatten, flatten_staggered, transform); "" for a dtype without a row (shown unclassified, never guessed).
std::string precision_class(const std::string& dtype);

}  // namespace fb

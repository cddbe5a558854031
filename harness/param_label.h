// The parameter label of a job part, "w_bits=8,mode=int8": one function for the config's job
// labels and the reports' method cells, so both name the same settings in the same order.
#pragma once

#include "core/params.h"

#include <functional>
#include <string>
#include <vector>

namespace fb {

// The parameters of `params` that differ from their schema default, in schema order, then those
// the schema does not declare (a spec stored under an older schema keeps its settings), as
// "name=value" joined by commas. Left out: file parameters (they name data, not a setting) and
// the names in `leave_out` (a table with a column for them). `show` formats one value.
std::string param_label(const ParamSchema& schema, const json& params, const std::function<std::string(const json&)>& show,
                        const std::vector<std::string>& leave_out = {});

}  // namespace fb

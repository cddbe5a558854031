// A rectangular table rendered as aligned text, markdown, CSV or JSON — every report
// builds one of these, so each output format comes from the same rows (llama-bench style).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace fb {

struct Table {
  std::string title;
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> notes;  // printed under the table (sources, synthetic marks)

  void add_row(std::vector<std::string> r) { rows.push_back(std::move(r)); }
  std::string text() const;      // aligned columns for a terminal
  std::string markdown() const;
  std::string csv() const;
  nlohmann::json to_json() const;  // array of objects keyed by header
  std::string render(const std::string& format) const;  // text | md | csv | json
};

// Number formatting shared by reports: significant digits without noise.
std::string fmt_num(double v, int digits = 4);

}  // namespace fb

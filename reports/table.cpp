#include "reports/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb {

namespace {
// Display width of UTF-8 text (counts code points, good enough for our labels).
size_t width(const std::string& s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}
std::string pad(const std::string& s, size_t w) { return s + std::string(w > width(s) ? w - width(s) : 0, ' '); }
bool numeric(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return *end == '\0' || *end == '%' || *end == 'x';
}
}  // namespace

std::string fmt_num(double v, int digits) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v != 0 && (std::fabs(v) >= 1e7 || std::fabs(v) < 1e-3)) return fmt::format("{:.{}e}", v, digits - 1);
  std::string s = fmt::format("{:.{}g}", v, std::max(digits, static_cast<int>(std::log10(std::fabs(v) + 1)) + 1));
  return s;
}

std::string Table::text() const {
  std::vector<size_t> w(headers.size());
  for (size_t c = 0; c < headers.size(); ++c) w[c] = width(headers[c]);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size() && c < w.size(); ++c) w[c] = std::max(w[c], width(r[c]));
  std::string out = title.empty() ? "" : title + "\n";
  auto line = [&](const std::vector<std::string>& r) {
    for (size_t c = 0; c < w.size(); ++c) {
      std::string cell = c < r.size() ? r[c] : "";
      bool right = numeric(cell);
      out += (c ? "  " : "") + (right ? std::string(w[c] - std::min(w[c], width(cell)), ' ') + cell : pad(cell, w[c]));
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += "\n";
  };
  line(headers);
  std::vector<std::string> rule;
  for (size_t c = 0; c < w.size(); ++c) rule.push_back(std::string(w[c], '-'));
  line(rule);
  for (const auto& r : rows) line(r);
  for (const auto& n : notes) out += n + "\n";
  return out;
}

std::string Table::markdown() const {
  auto esc = [](std::string s) {
    for (size_t p = 0; (p = s.find('|', p)) != std::string::npos; p += 2) s.replace(p, 1, "\\|");
    return s;
  };
  std::string out = title.empty() ? "" : "### " + title + "\n\n";
  out += "|";
  for (const auto& h : headers) out += " " + esc(h) + " |";
  out += "\n|";
  for (size_t c = 0; c < headers.size(); ++c) out += "---|";
  out += "\n";
  for (const auto& r : rows) {
    out += "|";
    for (size_t c = 0; c < headers.size(); ++c) out += " " + esc(c < r.size() ? r[c] : "") + " |";
    out += "\n";
  }
  if (!notes.empty()) out += "\n";
  for (const auto& n : notes) out += n + "\n";
  return out;
}

std::string Table::csv() const {
  auto quote = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    for (size_t c = 0; c < headers.size(); ++c) out += (c ? "," : "") + quote(c < r.size() ? r[c] : "");
    out += "\n";
  };
  line(headers);
  for (const auto& r : rows) line(r);
  return out;
}

nlohmann::json Table::to_json() const {
  nlohmann::json rows_json = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json o = nlohmann::json::object();
    for (size_t c = 0; c < headers.size(); ++c) {
      const std::string cell = c < r.size() ? r[c] : "";
      char* end = nullptr;
      double v = std::strtod(cell.c_str(), &end);
      if (!cell.empty() && *end == '\0') o[headers[c]] = v; else o[headers[c]] = cell;
    }
    rows_json.push_back(o);
  }
  return {{"title", title}, {"rows", rows_json}, {"notes", notes}};
}

std::string Table::render(const std::string& format) const {
  if (format == "text") return text();
  if (format == "md" || format == "markdown") return markdown();
  if (format == "csv") return csv();
  if (format == "json") return to_json().dump(2) + "\n";
  throw std::invalid_argument("unknown table format '" + format + "' (text, md, csv, json)");
}

}  // namespace fb

#include "backends/backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb {

TokenScore score_row(std::span<const float> logits, int target) {
  size_t best = 0;  // the first maximum, as torch.argmax keeps it
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  const double mx = logits[best];
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v - float(mx)));
  return {double(logits[size_t(target)]) - (mx + std::log(sum)), best == size_t(target)};
}

std::string Placement::spec_backend() const { return backend == "cpu" ? backend : backend + "/" + dtype; }

namespace {

std::string known_backends() {
  std::string out;
  for (const std::string& n : Registry<ExecutionBackendInfo>::instance().names()) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Placement parse_placement(const std::string& device, const std::string& dtype) {
  Placement p;
  const size_t colon = device.find(':');
  p.backend = device.substr(0, colon);
  const ExecutionBackendInfo* info = Registry<ExecutionBackendInfo>::instance().find(p.backend);
  if (!info)
    throw std::invalid_argument(fmt::format("unknown device '{}' (known: {}; a GPU as cuda or cuda:N)", device,
                                            known_backends()));
  if (colon != std::string::npos) {
    const std::string index = device.substr(colon + 1);
    if (p.backend == "cpu" || index.empty() || index.find_first_not_of("0123456789") != std::string::npos ||
        index.size() > 4)
      throw std::invalid_argument(fmt::format("device '{}': write {} or {}:N with N a device index", device,
                                              p.backend, p.backend));
    p.device = std::stoi(index);
  }
  p.dtype = dtype.empty() ? info->dtypes.front() : dtype;
  if (std::find(info->dtypes.begin(), info->dtypes.end(), p.dtype) == info->dtypes.end())
    throw std::invalid_argument(fmt::format("dtype '{}' is not one the {} backend runs in (it runs: {})", p.dtype,
                                            p.backend, joined(info->dtypes)));
  return p;
}

Placement placement_of_spec(const std::string& spec_backend, int index) {
  const size_t slash = spec_backend.find('/');
  Placement p = parse_placement(spec_backend.substr(0, slash),
                                slash == std::string::npos ? "" : spec_backend.substr(slash + 1));
  p.device = index;
  return p;
}

const ExecutionBackendInfo& usable_backend(const Placement& p) {
  const ExecutionBackendInfo* info = Registry<ExecutionBackendInfo>::instance().find(p.backend);
  if (!info) throw std::invalid_argument(fmt::format("unknown execution backend '{}' (known: {})", p.backend, known_backends()));
  if (const std::string why = info->unavailable(); !why.empty())
    throw std::runtime_error(fmt::format("device {}: {}", p.backend, why));
  return *info;
}

}  // namespace fb

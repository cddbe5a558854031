#include "core/resources.h"

#include <fmt/format.h>
#include <unistd.h>

#include <stdexcept>

namespace fb {

double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0.0;
}

void require_memory(double bytes, const std::string& what) {
  const double have = physical_memory_bytes();
  if (have <= 0 || bytes <= have) return;
  constexpr double GiB = 1024.0 * 1024.0 * 1024.0;
  throw std::runtime_error(fmt::format("{} needs about {:.1f} GiB; this machine has {:.1f} GiB of memory", what,
                                       bytes / GiB, have / GiB));
}

}  // namespace fb

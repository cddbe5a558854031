// What the machine can hold: a job whose buffers cannot fit fails with a message naming what
// was too large, before it allocates, instead of ending in std::bad_alloc or the OOM killer.
#pragma once

#include <string>

namespace fb {

// Physical memory of this machine in bytes (0 if unknown).
double physical_memory_bytes();

// Throws std::runtime_error "<what> needs about N GiB; this machine has M GiB of memory"
// when `bytes` exceed the physical memory.
void require_memory(double bytes, const std::string& what);

}  // namespace fb

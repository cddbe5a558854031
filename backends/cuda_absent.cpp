// The cuda execution backend in a build without nvcc (FLATBENCH_CUDA=OFF): registered all the
// same, so a config naming `device: cuda` loads and its jobs fail with the reason, rather than
// the device being unknown.
#include "backends/backend.h"

#include <stdexcept>

namespace fb {
namespace {

constexpr const char* kWhy =
    "this flatbench was built without CUDA (FLATBENCH_CUDA=OFF: no nvcc at configure time); build it where "
    "/usr/local/cuda/bin/nvcc or nvcc on the PATH exists (scripts/build.sh turns CUDA on by itself)";

FB_REGISTER_EXECUTION_BACKEND(ExecutionBackendInfo{
    "cuda",
    "one NVIDIA GPU (not in this build)",
    {"fp16", "bf16", "fp32"},
    [] { return std::string(kWhy); },
    [](const Model&, const Placement&) -> std::unique_ptr<ModelRunner> { throw std::runtime_error(kWhy); }});

}  // namespace
}  // namespace fb

#include "harness/provenance.h"

#include "core/blas_threads.h"

#include "core/fingerprint.h"

#include <cblas.h>
#include <fmt/format.h>
#include <unistd.h>
#include <xxhash.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

extern "C" {
char* openblas_get_corename(void);
char* openblas_get_config(void);
}

namespace fb {

namespace {

std::string run_command(const std::string& cmd) {
  std::array<char, 256> buf{};
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return "";
  while (fgets(buf.data(), buf.size(), pipe.get())) out += buf.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string cpuinfo_field(const std::string& field) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? "" : line.substr(colon + 2);
    }
  return "";
}

}  // namespace

std::string cpu_model() { return cpuinfo_field("model name"); }

std::vector<std::string> cpu_isa_flags() {
  std::istringstream flags(cpuinfo_field("flags"));
  std::vector<std::string> out;
  std::string f;
  static const std::set<std::string> wanted = {"sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni"};
  while (flags >> f)
    if (wanted.count(f) || f.rfind("avx512", 0) == 0 || f.rfind("amx", 0) == 0) out.push_back(f);
  return out;
}

std::string openblas_core() { return openblas_get_corename(); }

nlohmann::json collect_provenance(const std::vector<std::filesystem::path>& data_files,
                                  const std::filesystem::path& data_dir) {
  using nlohmann::json;
  std::string src = FLATBENCH_SOURCE_DIR;
  std::string commit = run_command("git -C '" + src + "' rev-parse HEAD 2>/dev/null");
  std::string dirty = run_command("git -C '" + src + "' status --porcelain --untracked-files=no 2>/dev/null");
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  json data = json::object();
  for (const auto& f : data_files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(f, ec);
    data[data_relative(f, data_dir)] = {{"xxh3_128", file_digest(f)}, {"bytes", ec ? -1 : static_cast<long long>(size)}};
  }
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::string gpu = run_command("nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null");
  return {
      {"flatbench_version", FLATBENCH_VERSION},
      {"git", {{"commit", commit.empty() ? "unknown" : commit}, {"dirty", !dirty.empty()}}},
      {"build", {{"type", FLATBENCH_BUILD_TYPE}, {"flags", FLATBENCH_CXX_FLAGS}, {"compiler", FLATBENCH_COMPILER}}},
      {"host", host},
      {"cpu", {{"model", cpu_model()}, {"isa", cpu_isa_flags()}, {"threads", std::thread::hardware_concurrency()}}},
      {"blas",
       {{"openblas_core", openblas_core()},
        {"openblas_config", openblas_get_config()},
        {"openblas_threads", blas_threads()},
        {"OPENBLAS_CORETYPE", coretype ? coretype : ""}}},
      {"gpu", gpu.empty() ? "none" : gpu},
      {"data_dir", std::filesystem::absolute(data_dir).lexically_normal().string()},
      {"data_files", data},
  };
}

}  // namespace fb

// The folders form layers, bottom to top as CMakeLists.txt adds them: core, kernels, models,
// backends, datasets, methods, harness, reports, app. A folder includes only itself and folders below
// it, so the shared vocabulary (core/) never depends on the application, and a second
// execution backend can join a layer without pulling in the ones above.
#include "test_util.h"

#include <fstream>
#include <map>
#include <regex>

namespace fb {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kLayers = {"core", "kernels", "models", "backends", "datasets", "methods", "harness", "reports", "app"};

int layer_of(const std::string& folder) {
  for (size_t i = 0; i < kLayers.size(); ++i)
    if (kLayers[i] == folder) return static_cast<int>(i);
  return -1;
}

bool is_source(const fs::path& p) {
  static const std::vector<std::string> exts = {".h", ".cpp", ".cu", ".cuh", ".inc"};
  return std::find(exts.begin(), exts.end(), p.extension().string()) != exts.end();
}

TEST(Layering, NoFolderIncludesAFolderAboveIt) {
  const fs::path root = FLATBENCH_SOURCE_ROOT;
  const std::regex include_re(R"re(^\s*#\s*include\s*"([a-z_]+)/)re");
  std::vector<std::string> violations;
  int files = 0;
  for (const std::string& layer : kLayers) {
    if (!fs::exists(root / layer)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / layer)) {
      if (!e.is_regular_file() || !is_source(e.path())) continue;
      ++files;
      std::ifstream in(e.path());
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        std::smatch m;
        if (std::regex_search(line, m, include_re) && layer_of(m[1]) > layer_of(layer))
          violations.push_back(fs::relative(e.path(), root).string() + ":" + std::to_string(n) + ": " + line);
      }
    }
  }
  EXPECT_GT(files, 100) << "the walk found the sources";
  std::string all;
  for (const auto& v : violations) all += "  " + v + "\n";
  EXPECT_TRUE(violations.empty()) << "includes of a higher layer:\n" << all;
}

TEST(Layering, EveryTopLevelSourceFolderIsALayer) {
  const fs::path root = FLATBENCH_SOURCE_ROOT;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    if (name.starts_with(".") || name.starts_with("build") || name == "tests" || name == "cmake") continue;
    bool has_code = false;
    for (const auto& f : fs::recursive_directory_iterator(e.path()))
      has_code |= f.is_regular_file() && is_source(f.path());
    if (has_code) EXPECT_GE(layer_of(name), 0) << name << "/ holds code but is not in the layer order";
  }
}

}  // namespace
}  // namespace fb

// Shared helpers for the test suite.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace fb::test {

// The real data directory (../shared/data beside the checkout, or $FLATBENCH_DATA_DIR).
inline std::filesystem::path data_dir() {
  if (const char* env = std::getenv("FLATBENCH_DATA_DIR")) return env;
  return FLATBENCH_TEST_DATA_DIR;
}

// Integration tests call this first: they skip, loudly, where the real files are absent.
#define FB_REQUIRE_DATA(relpath)                                                           \
  do {                                                                                     \
    if (!std::filesystem::exists(::fb::test::data_dir() / (relpath)))                     \
      GTEST_SKIP() << "real data file not present: " << (::fb::test::data_dir() / (relpath)); \
  } while (0)

// A fresh temporary directory per test, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "flatbench-test-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;  // a daemon still writing inside must not turn cleanup into std::terminate
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

}  // namespace fb::test

// Shared helpers for the test suite.
#pragma once

#include <Eigen/Core>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
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

// A Gaussian matrix (row-major float) of the given scale, reproducible from the seed.
inline Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> gaussian_matrix(int rows, int cols, uint64_t seed,
                                                                                           float sigma = 1.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, sigma);
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> X(rows, cols);
  for (int i = 0; i < X.size(); ++i) X.data()[i] = nd(rng);
  return X;
}

// Writes `text` to `path`, creating its folders.
inline void put(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// The message of the exception `f` throws, or "" when it returns.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

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

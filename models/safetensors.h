// The safetensors format: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {...}}, then the
// raw tensor bytes. Files are memory-mapped; tensors are converted to fp32 on request.
#pragma once

#include "models/model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fb {

struct TensorInfo {
  std::string dtype;           // F32, F16, BF16 (others are listed but cannot be read)
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;   // byte offsets into the data section
};

class SafetensorsFile {
 public:
  // Maps the file and validates the header (JSON, offsets inside the file, byte sizes
  // agreeing with dtype × shape). Throws std::runtime_error naming the file.
  explicit SafetensorsFile(const std::filesystem::path& file);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  std::vector<std::string> names() const;

  // The tensor as fp32, checked against the expected shape ({rows, cols} or {n}) before
  // anything is allocated.
  Mat matrix(const std::string& name, int64_t rows, int64_t cols) const;
  Vec vector(const std::string& name, int64_t n) const;

 private:
  const TensorInfo& checked(const std::string& name, const std::vector<int64_t>& expect) const;
  void read_into(const TensorInfo& t, const std::string& name, float* out) const;
  std::filesystem::path path_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, TensorInfo> tensors_;
};

// One checkpoint: a single model.safetensors or shards listed by model.safetensors.index.json.
// With an index, every tensor of every shard must be listed in it (none is silently ignored).
class SafetensorsSet {
 public:
  explicit SafetensorsSet(const std::filesystem::path& folder);
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  const std::filesystem::path& path_of(const std::string& name) const;  // the file holding it
  std::vector<std::string> names() const;
  Mat matrix(const std::string& name, int64_t rows, int64_t cols) const;
  Vec vector(const std::string& name, int64_t n) const;
  // Every file read: the index (when there is one), then each safetensors file.
  std::vector<std::filesystem::path> files() const;

 private:
  const SafetensorsFile& file_for(const std::string& name) const;
  std::filesystem::path folder_;
  std::filesystem::path index_;  // empty for a single model.safetensors
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> owner_;  // tensor name → index into files_
};

// A tensor to write: fp32 values stored as `dtype` (F32, F16 or BF16, round-to-nearest-even).
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
  std::string dtype = "F32";
};
void write_safetensors(const std::filesystem::path& file, const std::vector<TensorToWrite>& tensors,
                       const nlohmann::json& metadata = nlohmann::json::object());

// Half-precision conversions used by the reader and writer (exposed for tests).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

}  // namespace fb

#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace fb {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

[[noreturn]] void fail(const fs::path& p, const std::string& what) { throw std::runtime_error(p.string() + ": " + what); }

TensorInfo parse_entry(const fs::path& p, const std::string& name, const json& e, size_t data_size) {
  if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
    fail(p, "header entry '" + name + "' lacks dtype, shape or data_offsets");
  TensorInfo t;
  try {
    t.dtype = e["dtype"].get<std::string>();
    t.shape = e["shape"].get<std::vector<int64_t>>();
    auto off = e["data_offsets"].get<std::vector<uint64_t>>();
    if (off.size() != 2) fail(p, "tensor '" + name + "': data_offsets must have two entries");
    t.begin = off[0];
    t.end = off[1];
  } catch (const json::exception& ex) {
    fail(p, "tensor '" + name + "': malformed header entry (" + ex.what() + ")");
  }
  const size_t esize = dtype_size(t.dtype);
  if (esize == 0) fail(p, "tensor '" + name + "' has unknown dtype '" + t.dtype + "'");
  uint64_t count = 1;
  for (int64_t d : t.shape) {
    if (d < 0) fail(p, "tensor '" + name + "' has a negative dimension");
    count *= uint64_t(d);
  }
  if (t.end < t.begin || t.end > data_size)
    fail(p, "tensor '" + name + "' data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                ") lie outside the " + std::to_string(data_size) + "-byte data section (truncated file?)");
  if (t.end - t.begin != count * esize)
    fail(p, "tensor '" + name + "' has " + std::to_string(t.end - t.begin) + " bytes, but " + t.dtype + " " +
                shape_str(t.shape) + " needs " + std::to_string(count * esize));
  return t;
}

}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (man << 13);  // inf / nan
  } else if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | (uint32_t(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
    }
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7FFFFFFF) > 0x7F800000) return uint16_t((bits >> 16) | 0x40);  // keep nan a nan
  return uint16_t((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

uint16_t f32_to_f16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000);
  const uint32_t abs = bits & 0x7FFFFFFF;
  if (abs > 0x7F800000) return sign | 0x7E00;             // nan
  if (abs >= 0x477FF000) return sign | 0x7C00;            // overflow (≥ 65520) → inf
  if (abs < 0x38800000) {                                 // subnormal half (< 2^-14)
    const float scaled = std::bit_cast<float>(abs) * 16777216.0f;  // × 2^24: units of 2^-24
    return sign | uint16_t(std::nearbyint(scaled));
  }
  const uint32_t rounded = abs + 0x0FFF + ((abs >> 13) & 1);  // round mantissa to 10 bits, ties to even
  return sign | uint16_t(((rounded >> 13) - ((127 - 15) << 10)) & 0x7FFF);
}

SafetensorsFile::SafetensorsFile(const fs::path& file) : path_(file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) fail(file, "cannot open");
  struct stat st {};
  ::fstat(fd, &st);
  map_size_ = size_t(st.st_size);
  if (map_size_ < 8) {
    ::close(fd);
    fail(file, "too short for a safetensors header (" + std::to_string(map_size_) + " bytes)");
  }
  void* m = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail(file, "cannot map");
  map_ = static_cast<const uint8_t*>(m);

  uint64_t header_len = 0;
  std::memcpy(&header_len, map_, 8);
  if (header_len > map_size_ - 8)
    fail(file, "header length " + std::to_string(header_len) + " exceeds the file size (truncated or not safetensors)");
  json header;
  try {
    header = json::parse(map_ + 8, map_ + 8 + header_len);
  } catch (const json::exception& e) {
    fail(file, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(file, "header is not a JSON object");
  data_ = map_ + 8 + header_len;
  const size_t data_size = map_size_ - 8 - header_len;
  for (const auto& [name, entry] : header.items())
    if (name != "__metadata__") tensors_.emplace(name, parse_entry(file, name, entry, data_size));
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), map_size_);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(path_, "tensor '" + name + "' is missing");
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [n, t] : tensors_) out.push_back(n);
  return out;
}

const TensorInfo& SafetensorsFile::checked(const std::string& name, const std::vector<int64_t>& expect) const {
  const TensorInfo& t = info(name);
  if (t.shape != expect)
    fail(path_, "tensor '" + name + "' has shape " + shape_str(t.shape) + ", the config implies " + shape_str(expect));
  return t;
}

void SafetensorsFile::read_into(const TensorInfo& t, const std::string& name, float* out) const {
  const uint8_t* src = data_ + t.begin;
  const size_t n = (t.end - t.begin) / dtype_size(t.dtype);
  if (t.dtype == "F32") {
    std::memcpy(out, src, n * 4);
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    const bool half = t.dtype == "F16";
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      out[i] = half ? f16_to_f32(h) : bf16_to_f32(h);
    }
  } else {
    fail(path_, "tensor '" + name + "' has dtype " + t.dtype + "; only F32, F16 and BF16 weights are supported");
  }
}

Mat SafetensorsFile::matrix(const std::string& name, int64_t rows, int64_t cols) const {
  const TensorInfo& t = checked(name, {rows, cols});
  Mat m(rows, cols);
  read_into(t, name, m.data());
  return m;
}

Vec SafetensorsFile::vector(const std::string& name, int64_t n) const {
  const TensorInfo& t = checked(name, {n});
  Vec v(n);
  read_into(t, name, v.data());
  return v;
}

SafetensorsSet::SafetensorsSet(const fs::path& folder) : folder_(folder) {
  const fs::path single = folder / "model.safetensors", index = folder / "model.safetensors.index.json";
  if (fs::exists(single)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single));
    for (const auto& n : files_[0]->names()) owner_[n] = 0;
    return;
  }
  if (!fs::exists(index))
    fail(folder, "no model.safetensors or model.safetensors.index.json (PyTorch .bin checkpoints are not supported)");
  json j;
  std::ifstream in(index);
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail(index, std::string("invalid JSON: ") + e.what());
  }
  if (!j.contains("weight_map") || !j["weight_map"].is_object()) fail(index, "lacks a weight_map object");
  std::map<std::string, size_t> shard_index;
  for (const auto& [tensor, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) fail(index, "weight_map entry for '" + tensor + "' is not a file name");
    const std::string s = shard.get<std::string>();
    if (!shard_index.count(s)) {
      shard_index[s] = files_.size();
      files_.push_back(std::make_unique<SafetensorsFile>(folder / s));
    }
    owner_[tensor] = shard_index[s];
    if (!files_[shard_index[s]]->has(tensor)) fail(folder / s, "tensor '" + tensor + "' listed in the index is missing");
  }
  index_ = index;
  for (size_t f = 0; f < files_.size(); ++f)
    for (const auto& name : files_[f]->names()) {
      auto it = owner_.find(name);
      if (it == owner_.end())
        fail(files_[f]->path(), "tensor '" + name + "' is not listed in " + index.filename().string() +
                                    " (it would be silently ignored)");
      if (it->second != f)
        fail(files_[f]->path(), "tensor '" + name + "' is also in " + files_[it->second]->path().filename().string() +
                                    ", where " + index.filename().string() + " places it");
    }
}

bool SafetensorsSet::has(const std::string& name) const { return owner_.count(name) > 0; }
const TensorInfo& SafetensorsSet::info(const std::string& name) const { return file_for(name).info(name); }
const fs::path& SafetensorsSet::path_of(const std::string& name) const { return file_for(name).path(); }

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : owner_) out.push_back(name);
  return out;
}

const SafetensorsFile& SafetensorsSet::file_for(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) fail(folder_, "checkpoint lacks tensor '" + name + "'");
  return *files_[it->second];
}

Mat SafetensorsSet::matrix(const std::string& name, int64_t rows, int64_t cols) const {
  return file_for(name).matrix(name, rows, cols);
}
Vec SafetensorsSet::vector(const std::string& name, int64_t n) const { return file_for(name).vector(name, n); }

std::vector<fs::path> SafetensorsSet::files() const {
  std::vector<fs::path> out;
  if (!index_.empty()) out.push_back(index_);
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

void write_safetensors(const fs::path& file, const std::vector<TensorToWrite>& tensors, const json& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& t : tensors) {
    const size_t esize = dtype_size(t.dtype);
    if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16") fail(file, "cannot write dtype " + t.dtype);
    size_t count = 1;
    for (int64_t d : t.shape) count *= size_t(d);
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + count * esize}}};
    offset += count * esize;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the format pads the header to 8 bytes with spaces
  std::ofstream out(file, std::ios::binary);
  if (!out) fail(file, "cannot create");
  const uint64_t len = h.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (const auto& t : tensors) {
    size_t count = 1;
    for (int64_t d : t.shape) count *= size_t(d);
    if (t.dtype == "F32") {
      out.write(reinterpret_cast<const char*>(t.data), std::streamsize(count * 4));
      continue;
    }
    std::vector<uint16_t> half(count);
    for (size_t i = 0; i < count; ++i) half[i] = t.dtype == "F16" ? f32_to_f16(t.data[i]) : f32_to_bf16(t.data[i]);
    out.write(reinterpret_cast<const char*>(half.data()), std::streamsize(count * 2));
  }
  if (!out) fail(file, "write failed");
}

}  // namespace fb

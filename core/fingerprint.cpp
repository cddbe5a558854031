#include "core/fingerprint.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace fb {

namespace fs = std::filesystem;

namespace {

// Everything about a file that changes when its bytes may have changed.
std::string identity_of(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw std::runtime_error(file.string() + ": cannot read (stat failed)");
  return fmt::format("{}\t{}\t{}\t{}\t{}.{:09}\t{}.{:09}", fs::absolute(file).lexically_normal().string(),
                     static_cast<unsigned long long>(st.st_dev), static_cast<unsigned long long>(st.st_ino),
                     static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                     st.st_mtim.tv_nsec, static_cast<long long>(st.st_ctim.tv_sec), st.st_ctim.tv_nsec);
}

std::string hash_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot open to fingerprint it");
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(), XXH3_freeState);
  XXH3_128bits_reset(st.get());
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    XXH3_128bits_update(st.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error(file.string() + ": read error while fingerprinting it");
  XXH128_hash_t h = XXH3_128bits_digest(st.get());
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

fs::path cache_file() {
  if (const char* d = std::getenv("FLATBENCH_CACHE_DIR"); d && *d) return fs::path(d) / "digests.tsv";
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return fs::path(d) / "flatbench" / "digests.tsv";
  if (const char* d = std::getenv("HOME"); d && *d) return fs::path(d) / ".cache" / "flatbench" / "digests.tsv";
  return {};
}

// identity → digest: the cache file read once, then this process's own additions.
class DigestCache {
 public:
  std::string digest(const fs::path& file) {
    const std::string id = identity_of(file);
    std::lock_guard<std::mutex> lock(mu_);
    load_once();
    if (auto it = known_.find(id); it != known_.end()) return it->second;
    std::string d = hash_bytes(file);
    ++computed_;
    if (identity_of(file) != id) return d;  // changed while hashed: do not remember it
    known_[id] = d;
    append(id, d);
    return d;
  }
  long computed() {
    std::lock_guard<std::mutex> lock(mu_);
    return computed_;
  }

 private:
  // Read the cache file on first use, and again whenever the configured file changes.
  void load_once() {
    const fs::path want = cache_file();
    if (loaded_ && want == path_) return;
    loaded_ = true;
    path_ = want;
    if (path_.empty()) return;
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      const size_t tab = line.rfind('\t');
      if (tab == std::string::npos || line.size() - tab - 1 != 32) continue;  // a torn or foreign line
      known_[line.substr(0, tab)] = line.substr(tab + 1);
    }
  }
  // One short write per entry with O_APPEND semantics: concurrent processes never interleave
  // inside a line, and a torn last line is skipped on reading.
  void append(const std::string& id, const std::string& digest) {
    if (path_.empty()) return;
    std::error_code ec;
    fs::create_directories(path_.parent_path(), ec);
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path_.c_str(), "a"), std::fclose);
    if (!f) return;  // unwritable cache: digests stay per process
    const std::string line = id + "\t" + digest + "\n";
    std::fwrite(line.data(), 1, line.size(), f.get());
  }

  std::mutex mu_;
  bool loaded_ = false;
  fs::path path_;
  std::map<std::string, std::string> known_;
  long computed_ = 0;
};

DigestCache& cache() {
  static DigestCache c;
  return c;
}

}  // namespace

std::string file_digest(const fs::path& file) { return cache().digest(file); }

long digests_computed() { return cache().computed(); }

std::vector<fs::path> files_under(const fs::path& path) {
  if (!fs::is_directory(path)) return {path};
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(path))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string data_relative(const fs::path& file, const fs::path& data_dir) {
  const fs::path abs = fs::weakly_canonical(fs::absolute(file));
  const fs::path root = fs::weakly_canonical(fs::absolute(data_dir));
  const fs::path rel = abs.lexically_relative(root);
  if (!rel.empty() && *rel.begin() != "..") return rel.generic_string();
  return abs.generic_string();
}

nlohmann::json fingerprint(const std::vector<fs::path>& files, const fs::path& data_dir) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& f : files) out[data_relative(f, data_dir)] = file_digest(f);
  return out;
}

}  // namespace fb

// A name → entry table filled by static registration, one line per entry
// (google/benchmark's BENCHMARK(), ggml's type traits). Methods, evaluators and
// model sources each have one; adding one is a new file plus one FB_REGISTER_* line.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace fb {

template <class Entry>
class Registry {
 public:
  static Registry& instance() {
    static Registry r;
    return r;
  }
  bool add(Entry e) {
    std::string name = e.name;
    if (!entries_.emplace(name, std::move(e)).second)
      throw std::logic_error("duplicate registration: " + name);
    return true;
  }
  const Entry* find(const std::string& name) const {
    auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : entries_) out.push_back(k);
    return out;
  }
  const std::map<std::string, Entry>& all() const { return entries_; }

 private:
  std::map<std::string, Entry> entries_;
};

#define FB_CONCAT_INNER(a, b) a##b
#define FB_CONCAT(a, b) FB_CONCAT_INNER(a, b)
#define FB_REGISTER_IN(RegistryType, ...) \
  static const bool FB_CONCAT(fb_registered_, __LINE__) = ::fb::Registry<RegistryType>::instance().add(__VA_ARGS__)

}  // namespace fb

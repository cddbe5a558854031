// Test helpers that pick job rows out of Store::jobs() in C++, now that the store takes no SQL
// from its callers (a test that needs hostile rows still writes them with raw sqlite3).
#pragma once

#include "harness/store.h"

#include <algorithm>
#include <string>
#include <vector>

namespace fb::test {

template <class Pred>
std::vector<JobRow> rows_where(const Store& store, Pred keep) {
  std::vector<JobRow> out;
  for (JobRow& row : store.jobs())
    if (keep(row)) out.push_back(std::move(row));
  return out;
}

inline std::vector<JobRow> rows_with_status(const Store& store, const std::string& status) {
  return rows_where(store, [&](const JobRow& r) { return r.status == status; });
}

inline std::vector<JobRow> rows_of_key(const Store& store, const std::string& key) {
  return rows_where(store, [&](const JobRow& r) { return r.key == key; });
}

inline std::vector<JobRow> rows_with_id(const Store& store, long id) {
  return rows_where(store, [&](const JobRow& r) { return r.id == id; });
}

}  // namespace fb::test

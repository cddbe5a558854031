// Content fingerprints of the files a job reads. They enter the job key (harness/config.cpp)
// and the run's provenance, so that swapping a checkpoint's weights, a tokenizer or a corpus
// makes a new job instead of passing for the finished one.
//
// Hashing a 13 GB checkpoint on every `list` would be slow, so digests are cached by the
// file's identity: path, device, inode, size, modification and status-change times. The
// status-change time (ctime) cannot be set by `touch` or `cp -p`, so a file replaced by a
// copy with the old size and mtime is still rehashed. The cache is a line-per-entry file in
// $FLATBENCH_CACHE_DIR, else $XDG_CACHE_HOME/flatbench, else ~/.cache/flatbench; processes
// append to it, and where it cannot be written digests are kept for the process only.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace fb {

// XXH3-128 of the file's bytes as 32 hex characters; throws std::runtime_error naming the
// file when it cannot be read.
std::string file_digest(const std::filesystem::path& file);

// A regular file as itself; a folder as every regular file below it (sorted).
std::vector<std::filesystem::path> files_under(const std::filesystem::path& path);

// The path as provenance and job keys name it: relative to the data directory when inside
// it (so the same data under another mount keys the same), else absolute.
std::string data_relative(const std::filesystem::path& file, const std::filesystem::path& data_dir);

// {relative path: digest} for the files (duplicates folded).
nlohmann::json fingerprint(const std::vector<std::filesystem::path>& files, const std::filesystem::path& data_dir);

// How many files were hashed (not served from the cache) by this process; for tests.
long digests_computed();

}  // namespace fb

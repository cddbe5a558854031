// Where and how a run happened: git commit and dirty flag, build, compiler, host, CPU
// model and ISA flags, BLAS core, GPU, hashes of the data files read. Stored as JSON
// with every run so a number can always be traced back.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace fb {

// data_files are keyed by their path relative to data_dir (core/fingerprint.h).
nlohmann::json collect_provenance(const std::vector<std::filesystem::path>& data_files,
                                  const std::filesystem::path& data_dir);

// CPU model name and the ISA flags that matter for the kernels (avx2, avx512*, amx*, ...).
std::string cpu_model();
std::vector<std::string> cpu_isa_flags();
// OpenBLAS's chosen core ("Haswell", "Prescott", ...) and its build config.
std::string openblas_core();

}  // namespace fb

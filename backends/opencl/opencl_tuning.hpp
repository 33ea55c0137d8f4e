// CLBlast GEMM tuning for the opencl backend: `porta tune` runs CLBlast's Xgemm tuner on a device
// (with a sampling fraction: an exhaustive search takes hours on some devices) and saves the best
// parameters; every later process loads them when it opens the device
// (clblast::OverrideParameters).
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "opencl_runtime.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::opencl {

struct TuneOptions {
  std::size_t m = 1024, n = 1024, k = 1024;  // the problem size the tuner times
  double fraction = 0.02;                    // share of the search space sampled
  std::filesystem::path file;                // empty: tuning_file(device)
};

struct TuneResult {
  std::map<std::string, std::size_t> parameters;
  std::filesystem::path file;
};

// Where the parameters of `device` are saved: $PORTA_OPENCL_TUNING_DIR, else
// $XDG_CACHE_HOME/porta/opencl, else ~/.cache/porta/opencl; one file per device name and driver.
std::filesystem::path tuning_file(const Device& device);
// Runs the tuner (blocking) and saves the parameters. Throws porta::Error on a CLBlast failure or
// an unwritable file, and InvalidArgument for a fraction outside (0, 1] or zero sizes.
TuneResult tune_gemm(Device& device, const TuneOptions& options);
// Loads saved parameters into CLBlast for this device, if a file exists. Returns whether it did;
// a corrupt file is ignored with `why` set (a bad tuning file must not make the device unusable).
bool load_saved_tuning(Device& device, std::string* why = nullptr);
// Parameters parsed from a saved file; porta::Error (InvalidArgument) naming the line if corrupt.
std::map<std::string, std::size_t> read_tuning_file(const std::filesystem::path& file);

// The opencl device behind a backend from get_backend("opencl:N").
Device& device_of(Backend& backend);

}  // namespace porta::detail::opencl

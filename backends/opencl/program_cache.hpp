// The opencl backend's program cache: each OpenCL program is built once per process per device,
// and its binary is kept on disk so that the next process loads it instead of compiling the .cl
// sources again (seconds on PoCL, per device). docs/env.md names the directory and how to turn it
// off; docs/opencl-backend.md says what a cache entry is keyed by.
#pragma once

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include <cstddef>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace porta::detail::opencl {

// porta's per-user OpenCL directory: $XDG_CACHE_HOME/porta/opencl, else ~/.cache/porta/opencl,
// else the system's temporary directory's porta-opencl.
std::filesystem::path user_opencl_dir();

// Where compiled programs are kept: $PORTA_OPENCL_PROGRAM_CACHE when set, else
// user_opencl_dir()/programs. Empty (no disk cache) when the variable is "off".
std::filesystem::path program_cache_dir();

class ProgramCache {
 public:
  // `device_key` identifies the device and its driver (platform, name, vendor, versions): a binary
  // on disk is used only by the same key, source and build options. An empty `disk_dir` keeps
  // programs in memory only.
  ProgramCache(cl_context context, cl_device_id device, std::string device_key,
               std::filesystem::path disk_dir);
  ~ProgramCache();
  ProgramCache(const ProgramCache&) = delete;
  ProgramCache& operator=(const ProgramCache&) = delete;

  // The built program. A failed build throws porta::Error (Backend) holding the build log;
  // `label` names the program in messages. A disk entry that is missing, corrupt, of another
  // device or driver, or that the driver refuses is ignored and rewritten, never an error.
  cl_program get(std::string_view source, const std::string& options, std::string_view label);

  // What get() did so far, for tests and `porta bench`: programs held, built from source, loaded
  // from disk, and disk entries found but ignored.
  struct Counts {
    std::size_t programs = 0, compiled = 0, loaded = 0, rejected = 0;
  };
  Counts counts() const;
  std::size_t builds() const { return counts().programs; }
  // The file a program of this source and these options is kept in (empty without a disk cache).
  std::filesystem::path entry_path(std::string_view source, const std::string& options) const;

 private:
  cl_program load(const std::filesystem::path& file, const std::string& key,
                  const std::string& options);
  void store(cl_program program, const std::filesystem::path& file, const std::string& key);

  cl_context context_;
  cl_device_id device_;
  std::string device_key_;
  std::filesystem::path disk_dir_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, cl_program> programs_;
  Counts counts_;
};

}  // namespace porta::detail::opencl

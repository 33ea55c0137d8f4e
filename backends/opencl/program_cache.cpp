// Programs built once per process per device, and their binaries kept on disk between processes.
//
// An entry is one file, named by a hash of its key, holding: a magic string, the key in full (the
// device key, the build options, the source's hash and length), the binary, and a checksum of both.
// Loading checks all of it and then asks the driver to build the binary; anything short of a
// working program makes get() build from source and rewrite the entry. Entries are written to a
// temporary file and renamed, so a reader never sees half an entry.
#include "program_cache.hpp"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>

#include "opencl_runtime.hpp"

namespace porta::detail::opencl {

namespace {

constexpr char kMagic[8] = {'P', 'O', 'R', 'T', 'A', 'C', 'L', '1'};

std::uint64_t fnv1a(std::string_view bytes, std::uint64_t hash = 1469598103934665603ull) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string_view as_text(const std::vector<unsigned char>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

void put_u64(std::string& out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xffu));
}

// Reads a little-endian u64 at `at`, advancing it; false when the data ends first.
bool get_u64(std::string_view data, std::size_t& at, std::uint64_t& value) {
  if (data.size() - at < 8) return false;
  value = 0;
  for (int i = 0; i < 8; ++i)
    value |= static_cast<std::uint64_t>(static_cast<unsigned char>(data[at + i])) << (8 * i);
  at += 8;
  return true;
}

std::string entry_key(const std::string& device_key, std::string_view source,
                      const std::string& options) {
  return fmt::format("{}\noptions: {}\nsource: {:016x} ({} bytes)", device_key, options,
                     fnv1a(source), source.size());
}

std::filesystem::path env_path(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::filesystem::path(value) : std::filesystem::path();
}

}  // namespace

std::filesystem::path user_opencl_dir() {
  if (auto xdg = env_path("XDG_CACHE_HOME"); !xdg.empty()) return xdg / "porta" / "opencl";
  if (auto home = env_path("HOME"); !home.empty()) return home / ".cache" / "porta" / "opencl";
  return std::filesystem::temp_directory_path() / "porta-opencl";
}

std::filesystem::path program_cache_dir() {
  const auto dir = env_path("PORTA_OPENCL_PROGRAM_CACHE");
  if (dir == "off") return {};
  return dir.empty() ? user_opencl_dir() / "programs" : dir;
}

ProgramCache::ProgramCache(cl_context context, cl_device_id device, std::string device_key,
                           std::filesystem::path disk_dir)
    : context_(context),
      device_(device),
      device_key_(std::move(device_key)),
      disk_dir_(std::move(disk_dir)) {}

ProgramCache::~ProgramCache() {
  for (auto& [key, program] : programs_) clReleaseProgram(program);
}

std::filesystem::path ProgramCache::entry_path(std::string_view source,
                                               const std::string& options) const {
  if (disk_dir_.empty()) return {};
  return disk_dir_ / fmt::format("{:016x}.bin", fnv1a(entry_key(device_key_, source, options)));
}

cl_program ProgramCache::get(std::string_view source, const std::string& options,
                             std::string_view label) {
  std::lock_guard lock(mutex_);
  auto key = std::make_pair(std::string(source), options);
  if (auto it = programs_.find(key); it != programs_.end()) return it->second;
  const auto file = entry_path(source, options);
  const std::string disk_key = entry_key(device_key_, source, options);
  if (!file.empty())
    if (cl_program program = load(file, disk_key, options)) {
      ++counts_.loaded;
      programs_.emplace(std::move(key), program);
      return program;
    }
  const char* text = source.data();
  const std::size_t length = source.size();
  cl_int status = CL_SUCCESS;
  cl_program program = clCreateProgramWithSource(context_, 1, &text, &length, &status);
  check_cl(status, fmt::format("creating the program '{}'", label));
  status = clBuildProgram(program, 1, &device_, options.c_str(), nullptr, nullptr);
  if (status != CL_SUCCESS) {
    std::size_t size = 0;
    clGetProgramBuildInfo(program, device_, CL_PROGRAM_BUILD_LOG, 0, nullptr, &size);
    std::string log(size, '\0');
    if (size > 0)
      clGetProgramBuildInfo(program, device_, CL_PROGRAM_BUILD_LOG, size, log.data(), nullptr);
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    clReleaseProgram(program);
    throw Error(ErrorCode::Backend,
                fmt::format("opencl: building the program '{}' (options '{}') failed: {}; build "
                            "log:\n{}",
                            label, options, cl_status_name(status), log));
  }
  ++counts_.compiled;
  if (!file.empty()) store(program, file, disk_key);
  programs_.emplace(std::move(key), program);
  return program;
}

ProgramCache::Counts ProgramCache::counts() const {
  std::lock_guard lock(mutex_);
  Counts c = counts_;
  c.programs = programs_.size();
  return c;
}

cl_program ProgramCache::load(const std::filesystem::path& file, const std::string& key,
                              const std::string& options) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return nullptr;  // not cached yet
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string_view view(data);
  std::size_t at = sizeof(kMagic);
  std::uint64_t key_size = 0, binary_size = 0, checksum = 0;
  bool ok = view.substr(0, sizeof(kMagic)) == std::string_view(kMagic, sizeof(kMagic)) &&
            get_u64(view, at, key_size) && key_size <= view.size() - at &&
            view.substr(at, key_size) == key;
  std::size_t binary_at = 0;
  if (ok) {
    at += key_size;
    ok = get_u64(view, at, binary_size) && binary_size > 0 && binary_size <= view.size() - at;
    binary_at = at;
  }
  if (ok) {
    at += binary_size;
    ok = get_u64(view, at, checksum) && at == view.size() &&
         checksum == fnv1a(view.substr(binary_at, binary_size), fnv1a(key));
  }
  cl_program program = nullptr;
  if (ok) {
    const auto* binary = reinterpret_cast<const unsigned char*>(data.data() + binary_at);
    const std::size_t size = binary_size;
    cl_int binary_status = CL_SUCCESS, status = CL_SUCCESS;
    program = clCreateProgramWithBinary(context_, 1, &device_, &size, &binary, &binary_status,
                                        &status);
    ok = status == CL_SUCCESS && binary_status == CL_SUCCESS && program != nullptr &&
         clBuildProgram(program, 1, &device_, options.c_str(), nullptr, nullptr) == CL_SUCCESS;
    if (!ok && program != nullptr) clReleaseProgram(program);
  }
  if (ok) return program;
  ++counts_.rejected;  // corrupt, stale or refused: rebuilt from source and rewritten
  return nullptr;
}

void ProgramCache::store(cl_program program, const std::filesystem::path& file,
                         const std::string& key) {
  std::size_t size = 0;
  if (clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof(size), &size, nullptr) !=
          CL_SUCCESS ||
      size == 0)
    return;
  std::vector<unsigned char> binary(size);
  unsigned char* pointer = binary.data();
  if (clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof(pointer), &pointer, nullptr) !=
      CL_SUCCESS)
    return;
  std::string entry(kMagic, sizeof(kMagic));
  put_u64(entry, key.size());
  entry += key;
  put_u64(entry, binary.size());
  entry += as_text(binary);
  put_u64(entry, fnv1a(as_text(binary), fnv1a(key)));
  // A cache that cannot be written (read-only home, full disk) costs the next process a build,
  // nothing more.
  std::error_code error;
  std::filesystem::create_directories(file.parent_path(), error);
  if (error) return;
  auto temporary = file;
  temporary += fmt::format(".{}.{}.tmp", ::getpid(), static_cast<const void*>(this));
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) return;
    out.write(entry.data(), static_cast<std::streamsize>(entry.size()));
    if (!out.flush()) {
      out.close();
      std::filesystem::remove(temporary, error);
      return;
    }
  }
  std::filesystem::rename(temporary, file, error);
  if (error) std::filesystem::remove(temporary, error);
}

}  // namespace porta::detail::opencl

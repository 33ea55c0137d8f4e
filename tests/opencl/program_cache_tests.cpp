// The opencl backend's on-disk program cache (backends/opencl/program_cache.cpp). Each ProgramCache
// object below stands for one process: they share nothing but the cache directory, which is all
// that a second process would share. Every program is run and its output checked, so a cached
// binary that loads but computes nothing would fail. Without an OpenCL device the tests return.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/porta.hpp>

#include "../../backends/opencl/opencl_runtime.hpp"
#include "../../backends/opencl/opencl_tuning.hpp"
#include "runtime/backend.hpp"

namespace opencl_program_cache_tests {

namespace {

namespace cl = porta::detail::opencl;

constexpr const char* kSource =
    "kernel void porta_cache_test(global float* x) { x[get_global_id(0)] = 2.5f * (float)get_global_id(0) + 1.0f; }";

cl::Device* first_device() {
  for (const auto& d : porta::list_devices())
    if (d.name.rfind("opencl", 0) == 0 && d.available)
      return &cl::device_of(*porta::detail::get_backend(d.name));
  WARN("skipped: no OpenCL device is available");
  return nullptr;
}

std::filesystem::path fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / name;
  std::filesystem::remove_all(dir);
  return dir;
}

// Runs the test kernel of `program` over 4 floats and returns them.
std::vector<float> run_kernel(cl::Device& device, cl_program program) {
  cl_int status = CL_SUCCESS;
  cl::Kernel kernel(clCreateKernel(program, "porta_cache_test", &status));
  cl::check_cl(status, "creating the test kernel");
  cl::Mem buffer(clCreateBuffer(device.context(), CL_MEM_READ_WRITE, 4 * sizeof(float), nullptr,
                                &status));
  cl::check_cl(status, "creating the test buffer");
  cl_mem memory = buffer.get();
  cl::check_cl(clSetKernelArg(kernel.get(), 0, sizeof(memory), &memory), "setting the argument");
  const std::size_t global = 4;
  cl::check_cl(clEnqueueNDRangeKernel(device.queue(), kernel.get(), 1, nullptr, &global, nullptr,
                                      0, nullptr, nullptr),
               "running the test kernel");
  std::vector<float> out(4, -1.0f);
  cl::check_cl(clEnqueueReadBuffer(device.queue(), memory, CL_TRUE, 0, 4 * sizeof(float),
                                   out.data(), 0, nullptr, nullptr),
               "reading the test buffer");
  return out;
}

const std::vector<float> kExpected{1.0f, 3.5f, 6.0f, 8.5f};

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::filesystem::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST_CASE("a second process loads the opencl program from the disk cache", "[opencl][cache]") {
  cl::Device* device = first_device();
  if (device == nullptr) return;
  const auto dir = fresh_dir("opencl-program-cache");
  const std::string key = "test device\ndriver 1";

  cl::ProgramCache first(device->context(), device->id(), key, dir);
  CHECK(run_kernel(*device, first.get(kSource, "-cl-std=CL1.2", "test")) == kExpected);
  CHECK(first.counts().compiled == 1);
  CHECK(first.counts().loaded == 0);
  const auto entry = first.entry_path(kSource, "-cl-std=CL1.2");
  REQUIRE(std::filesystem::is_regular_file(entry));
  CHECK(entry.parent_path() == dir);

  cl::ProgramCache second(device->context(), device->id(), key, dir);
  CHECK(run_kernel(*device, second.get(kSource, "-cl-std=CL1.2", "test")) == kExpected);
  CHECK(second.counts().compiled == 0);
  CHECK(second.counts().loaded == 1);
  CHECK(second.counts().rejected == 0);

  // Another driver version, other build options or another source are other entries: built.
  cl::ProgramCache new_driver(device->context(), device->id(), "test device\ndriver 2", dir);
  new_driver.get(kSource, "-cl-std=CL1.2", "test");
  CHECK(new_driver.counts().compiled == 1);
  CHECK(new_driver.entry_path(kSource, "-cl-std=CL1.2") != entry);
  cl::ProgramCache new_options(device->context(), device->id(), key, dir);
  new_options.get(kSource, "-cl-std=CL1.2 -cl-mad-enable", "test");
  std::string other_source = kSource;
  other_source += '\n';
  new_options.get(other_source, "-cl-std=CL1.2", "test");
  CHECK(new_options.counts().compiled == 2);
  CHECK(new_options.counts().loaded == 0);
}

TEST_CASE("a corrupt or stale opencl cache entry is rebuilt, never an error", "[opencl][cache]") {
  cl::Device* device = first_device();
  if (device == nullptr) return;
  const auto dir = fresh_dir("opencl-program-cache-bad");
  const std::string key = "test device\ndriver 1";
  const std::string options = "-cl-std=CL1.2";
  {
    cl::ProgramCache writer(device->context(), device->id(), key, dir);
    writer.get(kSource, options, "test");
  }
  const auto entry = cl::ProgramCache(device->context(), device->id(), key, dir)
                         .entry_path(kSource, options);
  const std::string good = read_file(entry);
  REQUIRE(good.size() > 40);

  std::string flipped = good;
  flipped[flipped.size() - 20] = static_cast<char>(flipped[flipped.size() - 20] ^ 0x5a);
  std::string other_key = good;
  other_key[20] = other_key[20] == 'x' ? 'y' : 'x';  // inside the stored key: a hash collision
  const std::vector<std::pair<const char*, std::string>> damaged{
      {"empty", ""},
      {"truncated", good.substr(0, good.size() / 2)},
      {"a flipped byte in the binary", flipped},
      {"another key under the same name", other_key},
      {"not an entry at all", "porta porta porta porta porta porta porta porta"},
      {"trailing bytes", good + "x"}};
  for (const auto& [what, bytes] : damaged) {
    CAPTURE(what);
    write_file(entry, bytes);
    cl::ProgramCache cache(device->context(), device->id(), key, dir);
    CHECK(run_kernel(*device, cache.get(kSource, options, "test")) == kExpected);
    CHECK(cache.counts().rejected == 1);
    CHECK(cache.counts().compiled == 1);
    // ... and rewritten: the next process loads it.
    cl::ProgramCache next(device->context(), device->id(), key, dir);
    CHECK(run_kernel(*device, next.get(kSource, options, "test")) == kExpected);
    CHECK(next.counts().loaded == 1);
  }

  // A cache directory that cannot be created costs a build, nothing else.
  const auto blocked = fresh_dir("opencl-program-cache-blocked");
  write_file(blocked, "a file where the directory should be");
  cl::ProgramCache unwritable(device->context(), device->id(), key, blocked / "programs");
  CHECK(run_kernel(*device, unwritable.get(kSource, options, "test")) == kExpected);
  CHECK(unwritable.counts().compiled == 1);
  std::filesystem::remove(blocked);

  // No directory: memory only, nothing written.
  cl::ProgramCache memory_only(device->context(), device->id(), key, {});
  CHECK(memory_only.entry_path(kSource, options).empty());
  CHECK(run_kernel(*device, memory_only.get(kSource, options, "test")) == kExpected);
  CHECK(memory_only.counts().compiled == 1);
}

TEST_CASE("the opencl program cache directory follows the environment", "[opencl][cache]") {
  const char* saved = std::getenv("PORTA_OPENCL_PROGRAM_CACHE");
  const std::string restore = saved ? saved : "";
  ::setenv("PORTA_OPENCL_PROGRAM_CACHE", "/some/where", 1);
  CHECK(cl::program_cache_dir() == std::filesystem::path("/some/where"));
  ::setenv("PORTA_OPENCL_PROGRAM_CACHE", "off", 1);
  CHECK(cl::program_cache_dir().empty());
  ::unsetenv("PORTA_OPENCL_PROGRAM_CACHE");
  CHECK(cl::program_cache_dir() == cl::user_opencl_dir() / "programs");
  const char* saved_xdg = std::getenv("XDG_CACHE_HOME");
  const std::string restore_xdg = saved_xdg ? saved_xdg : "";
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  CHECK(cl::program_cache_dir() == std::filesystem::path("/xdg/porta/opencl/programs"));
  if (saved_xdg != nullptr)
    ::setenv("XDG_CACHE_HOME", restore_xdg.c_str(), 1);
  else
    ::unsetenv("XDG_CACHE_HOME");
  if (saved != nullptr) ::setenv("PORTA_OPENCL_PROGRAM_CACHE", restore.c_str(), 1);
}

}  // namespace opencl_program_cache_tests

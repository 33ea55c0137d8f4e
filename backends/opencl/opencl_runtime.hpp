// The OpenCL runtime layer of the opencl backend: errors, device discovery, one context and
// in-order queue per device, the program cache, and thin RAII handles.
//
// Everything that talks to the OpenCL API directly lives behind these types, so that the backend
// and its lowerings deal in porta terms (porta::Error, DeviceInfo) and never leak a cl_* object.
#pragma once

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <porta/device.hpp>
#include <porta/error.hpp>

#include "program_cache.hpp"

namespace porta::detail::opencl {

// The embedded .cl sources (generated at build time from kernels/*.cl).
std::string_view kernel_source();
// What each device builds: the generated prelude (op codes, unary cases) + kernel_source().
std::string_view program_source();

// "CL_OUT_OF_RESOURCES (-5)".
std::string cl_status_name(cl_int status);
// Throws porta::Error naming `what` and the status unless status is CL_SUCCESS. Allocation
// failures become ErrorCode::OutOfMemory, everything else ErrorCode::Backend.
void check_cl(cl_int status, std::string_view what);

// Owning handles; release on destruction.
template <class T, cl_int (*Release)(T)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(T object) noexcept : object_(object) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : object_(std::exchange(other.object_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      object_ = std::exchange(other.object_, nullptr);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  T get() const noexcept { return object_; }
  explicit operator bool() const noexcept { return object_ != nullptr; }
  void reset() noexcept {
    if (object_ != nullptr) Release(object_);
    object_ = nullptr;
  }

 private:
  T object_ = nullptr;
};
using Kernel = Handle<cl_kernel, clReleaseKernel>;
using Mem = Handle<cl_mem, clReleaseMemObject>;
using Event = Handle<cl_event, clReleaseEvent>;

// One OpenCL 1.2+ device as discovery found it.
struct DeviceLocation {
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
};

// Every OpenCL 1.2+ device of every platform, in platform order. With none, `why_none` says why
// (no platform, no ICD, only older devices). Never throws.
std::vector<DeviceLocation> discover_devices(std::string* why_none);

// A device opened for use: its context, one in-order queue with profiling, what it can do, and
// its program cache. Created once per process per device (the registry shares the backend).
class Device {
 public:
  Device(DeviceLocation location, int index);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  cl_context context() const { return context_; }
  cl_command_queue queue() const { return queue_; }
  cl_device_id id() const { return location_.device; }
  int index() const { return index_; }

  const std::string& name() const { return name_; }
  bool has_fp16() const { return fp16_; }
  bool has_fp64() const { return fp64_; }
  // CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT: the program is then built with exact f32 division.
  bool exact_division() const { return exact_div_sqrt_; }
  std::uint64_t global_memory() const { return global_memory_; }
  std::uint64_t max_allocation() const { return max_allocation_; }
  std::size_t max_work_group() const { return max_work_group_; }
  std::uint64_t local_memory() const { return local_memory_; }
  // CL_DEVICE_TYPE_CPU (PoCL, a CPU vendor's driver): kernels with a CPU-shaped variant use it.
  bool is_cpu() const { return (type_ & CL_DEVICE_TYPE_CPU) != 0; }

  // The porta kernel program (every .cl file), built on first use and cached.
  cl_program program();
  ProgramCache& programs() { return *programs_; }
  // A fresh kernel object of the porta program (kernel objects are not thread-safe to set
  // arguments on, so each plan owns its own).
  Kernel kernel(const char* name);
  // The largest power-of-two work-group size for `kernel` up to `cap`.
  std::size_t work_group_size(cl_kernel kernel, std::size_t cap = 256) const;

  DeviceInfo info() const;

 private:
  DeviceLocation location_;
  int index_;
  cl_context context_ = nullptr;
  cl_command_queue queue_ = nullptr;
  std::string name_, vendor_, version_, driver_, platform_name_, extensions_;
  bool fp16_ = false, fp64_ = false, exact_div_sqrt_ = false;
  std::uint64_t global_memory_ = 0, max_allocation_ = 0, local_memory_ = 0;
  std::size_t max_work_group_ = 1;
  cl_uint compute_units_ = 0, clock_mhz_ = 0;
  cl_device_type type_ = 0;
  std::unique_ptr<ProgramCache> programs_;
};

// Static description of a device without opening it (for `porta devices`).
DeviceInfo describe_device(DeviceLocation location, int index);

}  // namespace porta::detail::opencl

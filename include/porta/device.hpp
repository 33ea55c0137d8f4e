// Devices: the backends porta was built with, the devices each one sees, and what they can do.
//
// Backends are named the same way everywhere (API, CLI, reports): "reference", "cpu", "opencl"
// or "opencl:N", and "npu-sim" or "npu-sim:PROFILE". A backend whose device is missing (no
// OpenCL platform, say) is still listed, marked unavailable with the reason.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <porta/dtype.hpp>

PORTA_API_BEGIN
namespace porta {

struct DeviceInfo {
  std::string name;         // the name to pass to compile(): "cpu", "opencl:0", "npu-sim:910b2"
  std::string kind;         // "reference", "cpu", "gpu", "accelerator", "simulator"
  std::string description;  // the device's own description (CPU model, OpenCL device name, ...)
  bool available = true;
  std::string unavailable_reason;
  std::uint64_t memory_bytes = 0;
  double peak_gflops = 0;  // f32 (or the device's main dtype), 0 when unknown
  double peak_gbps = 0;    // memory bandwidth, 0 when unknown
  std::vector<DType> dtypes;
  std::vector<std::pair<std::string, std::string>> properties;  // free-form details
};

// Every device of every backend compiled in, in registration order.
std::vector<DeviceInfo> list_devices();
// The info of one device by name; throws porta::Error (NotFound) for an unknown name.
DeviceInfo device_info(const std::string& name);

}  // namespace porta
PORTA_API_END

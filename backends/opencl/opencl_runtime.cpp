// Discovery, devices and errors of the opencl backend (the program cache: program_cache.cpp).
#include "opencl_runtime.hpp"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace porta::detail::opencl {

namespace {

const char* status_text(cl_int status) {
  switch (status) {
    case CL_SUCCESS: return "CL_SUCCESS";
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_PROFILING_INFO_NOT_AVAILABLE: return "CL_PROFILING_INFO_NOT_AVAILABLE";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_PLATFORM: return "CL_INVALID_PLATFORM";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_CONTEXT: return "CL_INVALID_CONTEXT";
    case CL_INVALID_COMMAND_QUEUE: return "CL_INVALID_COMMAND_QUEUE";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_BUILD_OPTIONS: return "CL_INVALID_BUILD_OPTIONS";
    case CL_INVALID_PROGRAM: return "CL_INVALID_PROGRAM";
    case CL_INVALID_PROGRAM_EXECUTABLE: return "CL_INVALID_PROGRAM_EXECUTABLE";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_KERNEL: return "CL_INVALID_KERNEL";
    case CL_INVALID_ARG_INDEX: return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_ARG_VALUE: return "CL_INVALID_ARG_VALUE";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_DIMENSION: return "CL_INVALID_WORK_DIMENSION";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_GLOBAL_OFFSET: return "CL_INVALID_GLOBAL_OFFSET";
    case CL_INVALID_EVENT: return "CL_INVALID_EVENT";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL platform: no ICD installed)";
    default: return "unknown OpenCL status";
  }
}

bool is_allocation_failure(cl_int status) {
  return status == CL_MEM_OBJECT_ALLOCATION_FAILURE || status == CL_OUT_OF_HOST_MEMORY ||
         status == CL_INVALID_BUFFER_SIZE;
}

std::string device_string(cl_device_id device, cl_device_info what) {
  std::size_t size = 0;
  if (clGetDeviceInfo(device, what, 0, nullptr, &size) != CL_SUCCESS || size == 0) return {};
  std::string text(size, '\0');
  if (clGetDeviceInfo(device, what, size, text.data(), nullptr) != CL_SUCCESS) return {};
  while (!text.empty() && (text.back() == '\0' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string platform_string(cl_platform_id platform, cl_platform_info what) {
  std::size_t size = 0;
  if (clGetPlatformInfo(platform, what, 0, nullptr, &size) != CL_SUCCESS || size == 0) return {};
  std::string text(size, '\0');
  if (clGetPlatformInfo(platform, what, size, text.data(), nullptr) != CL_SUCCESS) return {};
  while (!text.empty() && text.back() == '\0') text.pop_back();
  return text;
}

template <class T>
T device_value(cl_device_id device, cl_device_info what) {
  T value{};
  if (clGetDeviceInfo(device, what, sizeof(T), &value, nullptr) != CL_SUCCESS) return T{};
  return value;
}

// "OpenCL 1.2 pocl ..." -> 102.
int opencl_version(const std::string& version) {
  int major = 0, minor = 0;
  if (std::sscanf(version.c_str(), "OpenCL %d.%d", &major, &minor) != 2) return 0;
  return major * 100 + minor;
}

bool has_extension(const std::string& extensions, std::string_view name) {
  std::size_t at = 0;
  while ((at = extensions.find(name, at)) != std::string::npos) {
    const std::size_t end = at + name.size();
    const bool starts = at == 0 || extensions[at - 1] == ' ';
    const bool ends = end == extensions.size() || extensions[end] == ' ';
    if (starts && ends) return true;
    at = end;
  }
  return false;
}

const char* type_name(cl_device_type type) {
  if (type & CL_DEVICE_TYPE_GPU) return "gpu";
  if (type & CL_DEVICE_TYPE_CPU) return "cpu";
  if (type & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
  return "other";
}

}  // namespace

std::string cl_status_name(cl_int status) {
  return fmt::format("{} ({})", status_text(status), status);
}

void check_cl(cl_int status, std::string_view what) {
  if (status == CL_SUCCESS) return;
  throw Error(is_allocation_failure(status) ? ErrorCode::OutOfMemory : ErrorCode::Backend,
              fmt::format("opencl: {} failed: {}", what, cl_status_name(status)));
}

std::vector<DeviceLocation> discover_devices(std::string* why_none) {
  std::vector<DeviceLocation> found;
  cl_uint platform_count = 0;
  const cl_int status = clGetPlatformIDs(0, nullptr, &platform_count);
  if (status != CL_SUCCESS || platform_count == 0) {
    if (why_none != nullptr)
      *why_none = status == CL_SUCCESS
                      ? "no OpenCL platform is installed (install an ICD, e.g. pocl-opencl-icd)"
                      : fmt::format(
                            "no OpenCL platform is installed (install an ICD, e.g. "
                            "pocl-opencl-icd): clGetPlatformIDs returned {}",
                            cl_status_name(status));
    return found;
  }
  std::vector<cl_platform_id> platforms(platform_count);
  clGetPlatformIDs(platform_count, platforms.data(), nullptr);
  int too_old = 0;
  for (cl_platform_id platform : platforms) {
    cl_uint device_count = 0;
    if (clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 0, nullptr, &device_count) != CL_SUCCESS ||
        device_count == 0)
      continue;
    std::vector<cl_device_id> devices(device_count);
    clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, device_count, devices.data(), nullptr);
    for (cl_device_id device : devices) {
      if (opencl_version(device_string(device, CL_DEVICE_VERSION)) < 102) {
        ++too_old;
        continue;
      }
      found.push_back({platform, device});
    }
  }
  if (found.empty() && why_none != nullptr)
    *why_none = too_old > 0 ? fmt::format("{} OpenCL device(s) found, none of version 1.2 or newer",
                                          too_old)
                            : "the OpenCL platforms have no devices";
  return found;
}

// ---- devices ------------------------------------------------------------------------------------

Device::Device(DeviceLocation location, int index) : location_(location), index_(index) {
  const cl_device_id device = location.device;
  name_ = device_string(device, CL_DEVICE_NAME);
  vendor_ = device_string(device, CL_DEVICE_VENDOR);
  version_ = device_string(device, CL_DEVICE_VERSION);
  driver_ = device_string(device, CL_DRIVER_VERSION);
  extensions_ = device_string(device, CL_DEVICE_EXTENSIONS);
  platform_name_ = platform_string(location.platform, CL_PLATFORM_NAME);
  fp16_ = has_extension(extensions_, "cl_khr_fp16");
  fp64_ = has_extension(extensions_, "cl_khr_fp64");
  exact_div_sqrt_ = (device_value<cl_device_fp_config>(device, CL_DEVICE_SINGLE_FP_CONFIG) &
                     CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
  global_memory_ = device_value<cl_ulong>(device, CL_DEVICE_GLOBAL_MEM_SIZE);
  max_allocation_ = device_value<cl_ulong>(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
  local_memory_ = device_value<cl_ulong>(device, CL_DEVICE_LOCAL_MEM_SIZE);
  max_work_group_ =
      std::max<std::size_t>(1, device_value<std::size_t>(device, CL_DEVICE_MAX_WORK_GROUP_SIZE));
  compute_units_ = device_value<cl_uint>(device, CL_DEVICE_MAX_COMPUTE_UNITS);
  clock_mhz_ = device_value<cl_uint>(device, CL_DEVICE_MAX_CLOCK_FREQUENCY);
  type_ = device_value<cl_device_type>(device, CL_DEVICE_TYPE);

  cl_int status = CL_SUCCESS;
  const cl_context_properties properties[] = {
      CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(location.platform), 0};
  context_ = clCreateContext(properties, 1, &device, nullptr, nullptr, &status);
  check_cl(status, fmt::format("creating a context on '{}'", name_));
  queue_ = clCreateCommandQueue(context_, device, CL_QUEUE_PROFILING_ENABLE, &status);
  if (status != CL_SUCCESS) {
    clReleaseContext(context_);
    check_cl(status, fmt::format("creating a command queue on '{}'", name_));
  }
  // A binary on disk is reused only by the same platform, device and driver.
  const std::string device_key =
      fmt::format("platform: {}\ndevice: {} ({})\nopencl: {}\ndriver: {}", platform_name_, name_,
                  vendor_, version_, driver_);
  programs_ = std::make_unique<ProgramCache>(context_, device, device_key, program_cache_dir());
}

Device::~Device() {
  if (queue_ != nullptr) clFinish(queue_);
  programs_.reset();
  if (queue_ != nullptr) clReleaseCommandQueue(queue_);
  if (context_ != nullptr) clReleaseContext(context_);
}

cl_program Device::program() {
  // Exact division and square root where the device offers them, so that norms and softmax round
  // as the reference does; -cl-std=CL1.2 keeps the kernels portable to 1.2 drivers.
  std::string options = "-cl-std=CL1.2";
  if (exact_div_sqrt_) options += " -cl-fp32-correctly-rounded-divide-sqrt";
  return programs_->get(program_source(), options, "porta kernels");
}

Kernel Device::kernel(const char* name) {
  cl_int status = CL_SUCCESS;
  cl_kernel k = clCreateKernel(program(), name, &status);
  check_cl(status, fmt::format("creating the kernel '{}'", name));
  return Kernel(k);
}

std::size_t Device::work_group_size(cl_kernel kernel, std::size_t cap) const {
  std::size_t limit = max_work_group_;
  std::size_t kernel_limit = 0;
  if (clGetKernelWorkGroupInfo(kernel, location_.device, CL_KERNEL_WORK_GROUP_SIZE,
                               sizeof(kernel_limit), &kernel_limit, nullptr) == CL_SUCCESS &&
      kernel_limit > 0)
    limit = std::min(limit, kernel_limit);
  limit = std::min(limit, cap);
  std::size_t size = 1;
  while (size * 2 <= limit) size *= 2;
  return size;
}

DeviceInfo Device::info() const {
  DeviceInfo d;
  d.name = fmt::format("opencl:{}", index_);
  d.kind = (type_ & CL_DEVICE_TYPE_GPU)   ? "gpu"
           : (type_ & CL_DEVICE_TYPE_CPU) ? "cpu"
                                          : "accelerator";
  // `porta devices` prints the description: what a user picks a device by.
  d.description = fmt::format("{} ({}; {} compute units, fp16 {}, driver {})", name_,
                              platform_name_, compute_units_, fp16_ ? "yes" : "no", driver_);
  d.memory_bytes = global_memory_;
  d.dtypes = {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64};
  d.properties = {
      {"device type", type_name(type_)},
      {"vendor", vendor_},
      {"opencl", version_},
      {"driver version", driver_},
      {"compute units", std::to_string(compute_units_)},
      {"max clock", fmt::format("{} MHz", clock_mhz_)},
      {"global memory",
       fmt::format("{:.1f} GiB", static_cast<double>(global_memory_) / (1u << 30))},
      {"max allocation",
       fmt::format("{:.1f} GiB", static_cast<double>(max_allocation_) / (1u << 30))},
      {"local memory", fmt::format("{} KiB", local_memory_ / 1024)},
      {"max work-group", std::to_string(max_work_group_)},
      {"fp16 (cl_khr_fp16)", fp16_ ? "yes" : "no"},
      {"fp64 (cl_khr_fp64)", fp64_ ? "yes" : "no (rope and moe_router are declined)"},
      {"memory", fmt::format("own domain 'opencl:{}', buffers stay resident between ops", index_)},
      {"numerics",
       "f16/bf16 stored as such, widened to f32 in the kernels; GEMMs by CLBlast in f32"}};
  return d;
}

DeviceInfo describe_device(DeviceLocation location, int index) {
  DeviceInfo d;
  d.name = fmt::format("opencl:{}", index);
  const cl_device_type type = device_value<cl_device_type>(location.device, CL_DEVICE_TYPE);
  d.kind = (type & CL_DEVICE_TYPE_GPU)   ? "gpu"
           : (type & CL_DEVICE_TYPE_CPU) ? "cpu"
                                         : "accelerator";
  d.description = fmt::format("{} ({})", device_string(location.device, CL_DEVICE_NAME),
                              platform_string(location.platform, CL_PLATFORM_NAME));
  d.memory_bytes = device_value<cl_ulong>(location.device, CL_DEVICE_GLOBAL_MEM_SIZE);
  return d;
}

}  // namespace porta::detail::opencl

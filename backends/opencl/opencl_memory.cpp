// Allocation and host<->device copies for the opencl backend.
#include "opencl_memory.hpp"

#include <fmt/format.h>

namespace porta::detail::opencl {

std::unique_ptr<ClBuffer> allocate_buffer(Device& device, std::size_t bytes) {
  if (bytes == 0) return std::make_unique<ClBuffer>(device, Mem(), 0);
  if (bytes > device.max_allocation())
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("opencl: cannot allocate {} bytes on '{}': the device allows at most "
                            "{} bytes per buffer ({} bytes of memory in all)",
                            bytes, device.name(), device.max_allocation(), device.global_memory()));
  cl_int status = CL_SUCCESS;
  cl_mem mem = clCreateBuffer(device.context(), CL_MEM_READ_WRITE, bytes, nullptr, &status);
  check_cl(status, fmt::format("allocating {} bytes on '{}'", bytes, device.name()));
  Mem owned(mem);
  // Zero-filled, as the contract asks; drivers may allocate lazily, so a refusal can surface here.
  const cl_uchar zero = 0;
  status = clEnqueueFillBuffer(device.queue(), mem, &zero, 1, 0, bytes, 0, nullptr, nullptr);
  check_cl(status, fmt::format("zero-filling {} bytes on '{}'", bytes, device.name()));
  status = clFinish(device.queue());
  check_cl(status, fmt::format("allocating {} bytes on '{}'", bytes, device.name()));
  return std::make_unique<ClBuffer>(device, std::move(owned), bytes);
}

std::unique_ptr<ClBuffer> upload_buffer(Device& device, const void* data, std::size_t bytes) {
  auto buffer = allocate_buffer(device, bytes);
  if (bytes > 0) write_buffer(device, *buffer, 0, data, bytes);
  return buffer;
}

ClBuffer& as_cl_buffer(Buffer& buffer, const Device& device, std::string_view what) {
  auto* cl = dynamic_cast<ClBuffer*>(&buffer);
  if (cl == nullptr || cl->owner() != &device)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("opencl: {} was given a buffer that is not in the '{}' memory "
                            "domain",
                            what, fmt::format("opencl:{}", device.index())));
  return *cl;
}

void check_range(const Buffer& buffer, std::size_t offset, std::size_t bytes,
                 std::string_view what) {
  if (offset > buffer.size() || bytes > buffer.size() - offset)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("opencl: {} of {} bytes at offset {} is outside the buffer of {} bytes",
                            what, bytes, offset, buffer.size()));
}

void write_buffer(Device& device, Buffer& dst, std::size_t offset, const void* src,
                  std::size_t bytes) {
  ClBuffer& buffer = as_cl_buffer(dst, device, "copy_in");
  check_range(buffer, offset, bytes, "copy_in");
  if (bytes == 0) return;
  if (src == nullptr)
    throw Error(ErrorCode::InvalidArgument, "opencl: copy_in from a null host pointer");
  check_cl(clEnqueueWriteBuffer(device.queue(), buffer.mem(), CL_TRUE, offset, bytes, src, 0,
                                nullptr, nullptr),
           fmt::format("copying {} bytes to '{}'", bytes, device.name()));
}

void read_buffer(Device& device, Buffer& src, std::size_t offset, void* dst, std::size_t bytes) {
  ClBuffer& buffer = as_cl_buffer(src, device, "copy_out");
  check_range(buffer, offset, bytes, "copy_out");
  if (bytes == 0) return;
  if (dst == nullptr)
    throw Error(ErrorCode::InvalidArgument, "opencl: copy_out to a null host pointer");
  check_cl(clEnqueueReadBuffer(device.queue(), buffer.mem(), CL_TRUE, offset, bytes, dst, 0,
                               nullptr, nullptr),
           fmt::format("copying {} bytes from '{}'", bytes, device.name()));
}

}  // namespace porta::detail::opencl

#include "template_memory.hpp"

#include <cstring>
#include <new>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::detail::template_backend {

DeviceBuffer::DeviceBuffer(std::size_t bytes) : size_(bytes) {
  // The runtime asks for zero-byte arenas when a domain holds no intermediates; keep one byte so
  // that device_ptr() is a real address either way.
  storage_.reset(new (std::nothrow) std::byte[bytes == 0 ? 1 : bytes]());
  if (!storage_)
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("the template device cannot allocate {} bytes", bytes));
}

DeviceBuffer& as_device_buffer(Buffer& buffer, const char* operation) {
  auto* device = dynamic_cast<DeviceBuffer*>(&buffer);
  if (device == nullptr)
    throw Error(
        ErrorCode::Internal,
        fmt::format("{} on the template backend was given a buffer of another memory domain",
                    operation));
  return *device;
}

void check_range(const DeviceBuffer& buffer, std::size_t offset, std::size_t bytes,
                 const char* operation) {
  // Written so that no sum can overflow.
  if (offset > buffer.size() || bytes > buffer.size() - offset)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} of {} bytes at offset {} overruns a {}-byte template buffer",
                            operation, bytes, offset, buffer.size()));
}

void copy_to_device(Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) {
  auto& device = as_device_buffer(dst, "copy_in");
  check_range(device, offset, bytes, "copy_in");
  if (bytes > 0) std::memcpy(device.device_ptr() + offset, src, bytes);
}

void copy_from_device(Buffer& src, std::size_t offset, void* dst, std::size_t bytes) {
  auto& device = as_device_buffer(src, "copy_out");
  check_range(device, offset, bytes, "copy_out");
  if (bytes > 0) std::memcpy(dst, device.device_ptr() + offset, bytes);
}

}  // namespace porta::detail::template_backend

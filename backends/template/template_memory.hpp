// Device memory of the template backend. Host memory stands in for the device's: the buffer hides
// it (host_ptr() is null), so every byte crosses the host/device boundary through copy_in and
// copy_out, exactly as it would on a discrete accelerator. That keeps the runtime's transfer path
// honest: anything that tried to read a template value through a host pointer would fail loudly.
#pragma once

#include <cstddef>
#include <memory>

#include "runtime/backend.hpp"

namespace porta::detail::template_backend {

class DeviceBuffer final : public Buffer {
 public:
  // A real device allocates here (cudaMalloc, clCreateBuffer, aclrtMalloc) and throws
  // porta::Error (OutOfMemory) when the device refuses. Zero-filled, like the host arena.
  explicit DeviceBuffer(std::size_t bytes);

  std::size_t size() const override { return size_; }
  // Not host-visible. A device with unified or mappable memory returns its mapping here instead,
  // and the runtime may then skip staging copies.
  void* host_ptr() override { return nullptr; }

  // The device address, for this backend's kernels and copies only.
  std::byte* device_ptr() noexcept { return storage_.get(); }

 private:
  std::unique_ptr<std::byte[]> storage_;
  std::size_t size_ = 0;
};

// `buffer` as this backend's memory; throws porta::Error (Internal) for a buffer of another
// domain, which would mean the runtime routed a value without a transfer.
DeviceBuffer& as_device_buffer(Buffer& buffer, const char* operation);

// Throws porta::Error (InvalidArgument) unless [offset, offset + bytes) lies inside `buffer`.
void check_range(const DeviceBuffer& buffer, std::size_t offset, std::size_t bytes,
                 const char* operation);

// The host -> device and device -> host copies (a DMA on a real device), range-checked.
void copy_to_device(Buffer& dst, std::size_t offset, const void* src, std::size_t bytes);
void copy_from_device(Buffer& src, std::size_t offset, void* dst, std::size_t bytes);

}  // namespace porta::detail::template_backend

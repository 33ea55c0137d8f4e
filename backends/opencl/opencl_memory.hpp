// Device buffers of the opencl backend: cl_mem allocations in the device's own memory domain
// ("opencl:N"), never host-visible, with range-checked copies to and from the host.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "opencl_runtime.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::opencl {

class ClBuffer final : public Buffer {
 public:
  ClBuffer(const Device& owner, Mem memory, std::size_t bytes)
      : owner_(&owner), memory_(std::move(memory)), bytes_(bytes) {}
  std::size_t size() const override { return bytes_; }
  void* host_ptr() override { return nullptr; }
  cl_mem mem() const { return memory_.get(); }  // null for a zero-byte buffer
  const Device* owner() const { return owner_; }

 private:
  const Device* owner_;
  Mem memory_;
  std::size_t bytes_;
};

// A zero-filled device buffer. Sizes the device cannot hold are porta::Error (OutOfMemory).
std::unique_ptr<ClBuffer> allocate_buffer(Device& device, std::size_t bytes);
// A read-only device buffer initialised from host memory (shape tables, frequency tables).
std::unique_ptr<ClBuffer> upload_buffer(Device& device, const void* data, std::size_t bytes);

// `buffer` as one of `device`'s buffers, or porta::Error (InvalidArgument) naming `what`.
ClBuffer& as_cl_buffer(Buffer& buffer, const Device& device, std::string_view what);
// Throws porta::Error (InvalidArgument) unless [offset, offset + bytes) lies inside the buffer.
void check_range(const Buffer& buffer, std::size_t offset, std::size_t bytes,
                 std::string_view what);

// Blocking copies (the runtime reads or frees the host memory right after).
void write_buffer(Device& device, Buffer& dst, std::size_t offset, const void* src,
                  std::size_t bytes);
void read_buffer(Device& device, Buffer& src, std::size_t offset, void* dst, std::size_t bytes);

}  // namespace porta::detail::opencl

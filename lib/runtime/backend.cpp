// Host buffers and the default (host-domain) buffer methods of Backend.
#include "runtime/backend.hpp"

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace porta::detail {

HostBuffer::HostBuffer(std::size_t bytes) : size_(bytes), owned_(true) {
  constexpr std::size_t kAlignment = 64;
  const std::size_t rounded =
      std::max<std::size_t>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  data_ = std::aligned_alloc(kAlignment, rounded);
  if (data_ == nullptr)
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("cannot allocate a {}-byte host buffer", bytes));
  std::memset(data_, 0, rounded);
}

HostBuffer::HostBuffer(void* borrowed, std::size_t bytes) noexcept
    : data_(borrowed), size_(bytes) {}

void HostBuffer::rebind(void* borrowed, std::size_t bytes) noexcept {
  if (owned_) return;  // an arena keeps its memory
  data_ = borrowed;
  size_ = bytes;
}

HostBuffer::~HostBuffer() {
  if (owned_) std::free(data_);
}

std::unique_ptr<Buffer> Backend::allocate(std::size_t bytes) {
  return std::make_unique<HostBuffer>(bytes);
}

namespace {
void check_range(const Buffer& buffer, std::size_t offset, std::size_t bytes, const char* what) {
  if (offset > buffer.size() || bytes > buffer.size() - offset)
    throw Error(ErrorCode::Internal,
                fmt::format("{} of {} bytes at offset {} overruns a {}-byte buffer", what, bytes,
                            offset, buffer.size()));
}
}  // namespace

void Backend::copy_in(Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) {
  check_range(dst, offset, bytes, "copy_in");
  if (bytes > 0) std::memcpy(static_cast<char*>(dst.host_ptr()) + offset, src, bytes);
}

void Backend::copy_out(Buffer& src, std::size_t offset, void* dst, std::size_t bytes) {
  check_range(src, offset, bytes, "copy_out");
  if (bytes > 0) std::memcpy(dst, static_cast<const char*>(src.host_ptr()) + offset, bytes);
}

}  // namespace porta::detail

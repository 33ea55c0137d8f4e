#include "io/posix_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::io::detail {

void throw_os_error(const std::string& action, const std::string& path) {
  const int error = errno;
  if (error == ENOENT || error == ENOTDIR)
    throw Error(ErrorCode::NotFound, fmt::format("cannot {} '{}': no such file", action, path));
  throw Error(ErrorCode::Io, fmt::format("cannot {} '{}': {}", action, path, std::strerror(error)));
}

PathKind classify_path(const std::string& path, const std::string& what) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      throw Error(ErrorCode::NotFound, fmt::format("{} '{}' does not exist", what, path));
    throw_os_error("stat", path);
  }
  if (S_ISREG(info.st_mode)) return PathKind::RegularFile;
  if (S_ISDIR(info.st_mode)) return PathKind::Directory;
  return PathKind::Other;
}

InputFile::InputFile(std::string path) : path_(std::move(path)) {
  do {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd_ < 0 && errno == EINTR);
  if (fd_ < 0) throw_os_error("open", path_);
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    const int error = errno;
    ::close(fd_);
    errno = error;
    throw_os_error("stat", path_);
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw Error(ErrorCode::InvalidArgument, fmt::format("'{}' is not a regular file", path_));
  }
  size_ = static_cast<std::size_t>(info.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::read_at(std::size_t offset, void* buffer, std::size_t bytes) const {
  auto* out = static_cast<char*>(buffer);
  std::size_t done = 0;
  while (done < bytes) {
    const ::ssize_t got = ::pread(fd_, out + done, bytes - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_os_error("read", path_);
    }
    if (got == 0)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}' ended early: expected {} bytes at offset {}, read {}", path_,
                              bytes, offset, done));
    done += static_cast<std::size_t>(got);
  }
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  do {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  } while (fd_ < 0 && errno == EINTR);
  if (fd_ < 0) throw_os_error("create", path_);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::write(const void* data, std::size_t bytes) {
  const auto* in = static_cast<const char*>(data);
  std::size_t done = 0;
  while (done < bytes) {
    const ::ssize_t put = ::write(fd_, in + done, bytes - done);
    if (put < 0) {
      if (errno == EINTR) continue;
      throw_os_error("write", path_);
    }
    done += static_cast<std::size_t>(put);
  }
}

void OutputFile::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw_os_error("close", path_);
}

std::shared_ptr<MappedFile> MappedFile::map(const InputFile& file) {
  if (file.size() == 0) return std::shared_ptr<MappedFile>(new MappedFile(nullptr, 0));
  void* address =
      ::mmap(nullptr, file.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE, file.descriptor(), 0);
  if (address == MAP_FAILED) throw_os_error("map", file.path());
  return std::shared_ptr<MappedFile>(new MappedFile(static_cast<std::byte*>(address), file.size()));
}

std::size_t prefault_readable(const void* data, std::size_t bytes) {
  if (data == nullptr || bytes == 0) return 0;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(data) / page * page;
  const auto end = reinterpret_cast<std::uintptr_t>(data) + bytes;
#ifdef MADV_POPULATE_READ
  if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ) == 0) return bytes;
#endif
  // Kernels without MADV_POPULATE_READ (EINVAL): touch each page; the fault maps its neighbours.
  for (std::uintptr_t at = begin; at < end; at += page)
    static_cast<void>(*reinterpret_cast<const volatile std::byte*>(std::max(at, end - bytes)));
  return bytes;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

}  // namespace porta::io::detail

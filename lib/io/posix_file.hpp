// Thin RAII wrappers over POSIX file descriptors and mappings for the loaders.
//
// The loaders use open/read/mmap directly (rather than iostreams) so that every failure carries
// errno's reason: a missing file becomes ErrorCode::NotFound naming the path, any other refusal by
// the operating system ErrorCode::Io with strerror's text.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace porta::io::detail {

enum class PathKind { RegularFile, Directory, Other };
// What `path` is; a missing path is ErrorCode::NotFound naming `what` ("checkpoint", ...) and the
// path, an unreadable one ErrorCode::Io with the reason.
PathKind classify_path(const std::string& path, const std::string& what);

// Throws porta::Error for the current errno: NotFound for ENOENT/ENOTDIR, Io otherwise.
// `action` says what was attempted ("open", "read", "map", ...).
[[noreturn]] void throw_os_error(const std::string& action, const std::string& path);

class InputFile {
 public:
  // Opens a regular file for reading; a directory or device is ErrorCode::InvalidArgument.
  explicit InputFile(std::string path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::size_t size() const noexcept { return size_; }
  int descriptor() const noexcept { return fd_; }
  // Reads exactly `bytes` bytes at `offset`; a short read (the file shrank) is CorruptFile.
  void read_at(std::size_t offset, void* buffer, std::size_t bytes) const;

 private:
  std::string path_;
  int fd_ = -1;
  std::size_t size_ = 0;
};

class OutputFile {
 public:
  // Creates or truncates `path`.
  explicit OutputFile(std::string path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, std::size_t bytes);
  // Closes and reports a failed close (a deferred write error on some file systems).
  void close();

 private:
  std::string path_;
  int fd_ = -1;
};

// A whole file mapped MAP_PRIVATE with PROT_READ | PROT_WRITE: tensors handed out as views may be
// written to by careless callers, and a private mapping turns such writes into copy-on-write pages
// instead of changes to the file (or a SIGSEGV).
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> map(const InputFile& file);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  MappedFile(std::byte* data, std::size_t size) : data_(data), size_(size) {}
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Maps the pages of [data, data + bytes) of a file mapping into this process's page tables now
// (MADV_POPULATE_READ, Linux 5.14; older kernels: one read per page), reading the file where its
// pages are not cached. Returns the bytes covered. What it buys: a first pass over weights that
// are mapped but never touched takes one page fault per 16 pages, which costs a 9 GB model's
// first prefill about a fifth of its time; populating at load does the same work in one call.
std::size_t prefault_readable(const void* data, std::size_t bytes);

}  // namespace porta::io::detail

// Helpers for the loader tests: scratch folders and byte-level file builders (the error matcher,
// REQUIRE_PORTA_ERROR, is core/error_check.hpp's).
//
// Test files are built byte by byte from the format specifications wherever the test is about
// reading, so that a reader bug cannot be masked by the same bug in the writer.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <porta/error.hpp>
#include <porta/tensor.hpp>

#include "core/error_check.hpp"

namespace porta::io::test {

// A fresh, empty folder per test case: ctest may run test cases in parallel processes.
inline std::string fresh_dir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "io" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Little-endian encodings of unsigned integers, `width` bytes wide.
inline std::string le(std::uint64_t value, int width) {
  std::string bytes;
  for (int i = 0; i < width; ++i) bytes += static_cast<char>((value >> (8 * i)) & 0xffu);
  return bytes;
}

// The raw bytes of trivially copyable values, in host (little-endian) order.
template <class T>
std::string raw(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// An 8-byte length, the header text as given, then the data section.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le(header.size(), 8) + header + data;
}

inline std::string tensor_bytes(const Tensor& t) {
  return std::string(static_cast<const char*>(t.data()), t.nbytes());
}

// Element `i` of a (possibly unaligned) buffer of T, read the portable way.
template <class T>
T load_unaligned(const void* data, std::size_t i) {
  T value;
  std::memcpy(&value, static_cast<const char*>(data) + i * sizeof(T), sizeof(T));
  return value;
}

}  // namespace porta::io::test

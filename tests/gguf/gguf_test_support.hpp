// A GGUF file built byte by byte from the format's description (not by porta's writer), with
// the offset of every field recorded so that tests can corrupt exactly one of them.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/io_test_support.hpp"

namespace porta::gguf::test {

inline std::string gguf_tmp(const std::string& name) {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "gguf";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

struct Builder {
  std::string bytes;
  std::map<std::string, std::size_t> at;  // field name -> byte offset

  void mark(const std::string& field) { at[field] = bytes.size(); }
  void u8(unsigned v) { bytes += static_cast<char>(v); }
  void u32(std::uint64_t v) { bytes += io::test::le(v, 4); }
  void u64(std::uint64_t v) { bytes += io::test::le(v, 8); }
  void f32(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    u32(u);
  }
  void str(const std::string& s, const std::string& field) {
    mark(field);
    u64(s.size());
    bytes += s;
  }
  void pad(std::size_t alignment) {
    while (bytes.size() % alignment != 0) bytes += '\0';
  }
  void patch_u32(const std::string& field, std::uint32_t v) {
    bytes.replace(at.at(field), 4, io::test::le(v, 4));
  }
  void patch_u64(const std::string& field, std::uint64_t v) {
    bytes.replace(at.at(field), 8, io::test::le(v, 8));
  }
};

// Version 3, alignment 64: metadata general.architecture (string), general.alignment (u32),
// test.count (i32 -7), test.scale (f32 0.5), test.flag (bool), test.list (array of 3 u16),
// test.names (array of 2 strings); tensors "w" f32 dims {3, 2} = 1..6 and "q" q8_0 dims {32}
// (d = 1.0, codes -16..15).
inline Builder sample_file(std::uint32_t version = 3) {
  Builder b;
  b.u32(0x46554747);
  b.mark("version");
  b.u32(version);
  b.mark("tensor_count");
  b.u64(2);
  b.mark("kv_count");
  b.u64(7);
  b.str("general.architecture", "kv0.key");
  b.mark("kv0.type");
  b.u32(8);
  b.str("test", "kv0.value");
  b.str("general.alignment", "kv1.key");
  b.mark("kv1.type");
  b.u32(4);
  b.mark("kv1.value");
  b.u32(64);
  b.str("test.count", "kv2.key");
  b.u32(5);
  b.u32(static_cast<std::uint32_t>(-7));
  b.str("test.scale", "kv3.key");
  b.u32(6);
  b.f32(0.5f);
  b.str("test.flag", "kv4.key");
  b.u32(7);
  b.mark("kv4.value");
  b.u8(1);
  b.str("test.list", "kv5.key");
  b.u32(9);
  b.mark("kv5.element_type");
  b.u32(2);
  b.mark("kv5.length");
  b.u64(3);
  for (unsigned v : {10u, 20u, 65535u}) {
    b.u8(v & 0xff);
    b.u8(v >> 8);
  }
  b.str("test.names", "kv6.key");
  b.u32(9);
  b.u32(8);
  b.u64(2);
  b.str("alpha", "kv6.item0");
  b.str("beta", "kv6.item1");
  // tensor infos
  b.str("w", "t0.name");
  b.mark("t0.ndims");
  b.u32(2);
  b.mark("t0.dim0");
  b.u64(3);
  b.mark("t0.dim1");
  b.u64(2);
  b.mark("t0.type");
  b.u32(0);
  b.mark("t0.offset");
  b.u64(0);
  b.str("q", "t1.name");
  b.mark("t1.ndims");
  b.u32(1);
  b.mark("t1.dim0");
  b.u64(32);
  b.mark("t1.type");
  b.u32(8);
  b.mark("t1.offset");
  b.u64(64);
  b.pad(64);
  b.mark("data");
  for (int i = 1; i <= 6; ++i) b.f32(static_cast<float>(i));
  b.pad(64);
  b.u8(0x00);  // q8_0 d = 1.0 (f16 0x3c00)
  b.u8(0x3c);
  for (int i = 0; i < 32; ++i) b.u8(static_cast<unsigned>(static_cast<unsigned char>(i - 16)));
  return b;
}

}  // namespace porta::gguf::test

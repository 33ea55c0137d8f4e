// Every ggml block type porta dequantizes, bit-exact against the element-by-element definition
// in block_reference.hpp, on crafted edge-case blocks and on random ones; and the round-to-
// nearest quantizers' error on random data.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <porta/error.hpp>
#include <porta/ggml_quants.hpp>

#include "gguf/block_reference.hpp"

namespace gguf_block_tests {

using namespace porta::gguf;

namespace {

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Dequantizes `blocks` whole blocks with the library and compares each element's bits with the
// reference definition.
void check_bit_exact(GgmlType type, const std::vector<unsigned char>& bytes) {
  const TypeTraits t = traits_of(type);
  const std::size_t blocks = bytes.size() / t.block_bytes;
  std::vector<float> out(blocks * t.block_elements);
  dequantize(type, std::as_bytes(std::span(bytes)), out);
  for (std::size_t b = 0; b < blocks; ++b)
    for (std::uint32_t i = 0; i < t.block_elements; ++i) {
      const float expected = test::value(type, bytes.data() + b * t.block_bytes, static_cast<int>(i));
      const float got = out[b * t.block_elements + i];
      if (bits_of(expected) != bits_of(got)) {
        INFO(type_name(type) << " block " << b << " element " << i << ": expected " << expected
                             << " got " << got);
        REQUIRE(bits_of(expected) == bits_of(got));
      }
    }
}

void set_f16(std::vector<unsigned char>& bytes, std::size_t at, std::uint16_t bits) {
  bytes[at] = static_cast<unsigned char>(bits & 0xff);
  bytes[at + 1] = static_cast<unsigned char>(bits >> 8);
}

}  // namespace

TEST_CASE("block sizes follow ggml-common.h's structs", "[gguf][blocks]") {
  CHECK(traits_of(GgmlType::Q4_0).block_bytes == 2 + 16);
  CHECK(traits_of(GgmlType::Q4_1).block_bytes == 4 + 16);
  CHECK(traits_of(GgmlType::Q5_0).block_bytes == 2 + 4 + 16);
  CHECK(traits_of(GgmlType::Q5_1).block_bytes == 4 + 4 + 16);
  CHECK(traits_of(GgmlType::Q8_0).block_bytes == 2 + 32);
  CHECK(traits_of(GgmlType::Q2_K).block_bytes == 16 + 64 + 4);
  CHECK(traits_of(GgmlType::Q3_K).block_bytes == 32 + 64 + 12 + 2);
  CHECK(traits_of(GgmlType::Q4_K).block_bytes == 4 + 12 + 128);
  CHECK(traits_of(GgmlType::Q5_K).block_bytes == 4 + 12 + 32 + 128);
  CHECK(traits_of(GgmlType::Q6_K).block_bytes == 128 + 64 + 16 + 2);
  CHECK(traits_of(GgmlType::IQ4_NL).block_bytes == 2 + 16);
  CHECK(traits_of(GgmlType::IQ4_XS).block_bytes == 2 + 2 + 4 + 128);
  CHECK(traits_of(GgmlType::Q4_K).block_elements == 256);
  CHECK(row_bytes(GgmlType::Q6_K, 512) == 420);
  CHECK_THROWS_AS(row_bytes(GgmlType::Q4_K, 100), porta::Error);
  CHECK(parse_type("Q4_K") == GgmlType::Q4_K);
  CHECK(parse_type("bf16") == GgmlType::BF16);
  CHECK_THROWS_AS(parse_type("q7_0"), porta::Error);
  CHECK_FALSE(type_traits(4).has_value());  // removed from ggml
  CHECK_FALSE(type_traits(1000).has_value());
}

TEST_CASE("crafted blocks dequantize bit-exactly: extreme scales, every code", "[gguf][blocks]") {
  // f16 scales: +0, -0, smallest and largest subnormal, smallest normal, one, largest finite,
  // and their negatives.
  const std::uint16_t scales[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00,
                                  0x7bff, 0xfbff, 0x8001, 0xbc00, 0x3555};
  for (GgmlType type : kDequantizableTypes) {
    const TypeTraits t = traits_of(type);
    if (t.block_elements == 1) continue;  // plain types: see the random test
    DYNAMIC_SECTION(type_name(type)) {
      std::vector<unsigned char> bytes;
      int pattern = 0;
      for (std::uint16_t s1 : scales)
        for (std::uint16_t s2 : {std::uint16_t{0x3c00}, s1, std::uint16_t{0x7bff}}) {
          for (int fill : {0, 1, 2, 3}) {
            std::vector<unsigned char> block(t.block_bytes);
            for (std::size_t k = 0; k < block.size(); ++k) {
              // all-zero, all-one bits, and two patterns walking through every byte value
              // (hence every nibble, 2-bit, 3-bit, 6-bit and int8 code)
              block[k] = fill == 0   ? 0x00
                         : fill == 1 ? 0xff
                         : fill == 2 ? static_cast<unsigned char>(k * 37 + pattern)
                                     : static_cast<unsigned char>(255 - k * 11 - pattern);
            }
            const auto fields = test::f16_fields(type);
            for (std::size_t f = 0; f < fields.size(); ++f) set_f16(block, fields[f], f ? s2 : s1);
            bytes.insert(bytes.end(), block.begin(), block.end());
            ++pattern;
          }
        }
      check_bit_exact(type, bytes);
    }
  }
}

TEST_CASE("random blocks dequantize bit-exactly", "[gguf][blocks]") {
  std::mt19937 rng(20261203);
  for (GgmlType type : kDequantizableTypes) {
    DYNAMIC_SECTION(type_name(type)) {
      const TypeTraits t = traits_of(type);
      const std::size_t blocks = t.block_elements == 1 ? 4096 : 64;
      std::vector<unsigned char> bytes(blocks * t.block_bytes);
      for (auto& b : bytes) b = static_cast<unsigned char>(rng());
      // Finite scales (an infinite scale times a zero code is NaN, whose bits are not the
      // format's business); the plain types keep their infinities and NaNs.
      for (std::size_t b = 0; b < blocks; ++b)
        for (int f : test::f16_fields(type)) {
          unsigned char& high = bytes[b * t.block_bytes + static_cast<std::size_t>(f) + 1];
          if ((high & 0x7c) == 0x7c) high = static_cast<unsigned char>(high & ~0x40);
        }
      check_bit_exact(type, bytes);
    }
  }
}

TEST_CASE("dequantize refuses partial blocks and wrong byte counts", "[gguf][blocks]") {
  std::vector<std::byte> bytes(34);
  std::vector<float> out(31);
  CHECK_THROWS_AS(dequantize(GgmlType::Q8_0, bytes, out), porta::Error);
  out.resize(32);
  bytes.resize(33);
  CHECK_THROWS_AS(dequantize(GgmlType::Q8_0, bytes, out), porta::Error);
  std::vector<std::byte> iq2(66);
  std::vector<float> out256(256);
  CHECK_THROWS_AS(dequantize(GgmlType::IQ2_XXS, iq2, out256), porta::Error);
}

TEST_CASE("round-to-nearest quantizers reproduce random weights within each type's error",
          "[gguf][blocks]") {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(256 * 16);
  for (auto& v : x) v = normal(rng);
  x[5] = 0.2f;  // an outlier in one block
  // Relative RMS error bounds: a b-bit code over a block's range has RMS error about
  // range / (2^b * sqrt(12)); the bounds leave room for scale quantization.
  const std::pair<GgmlType, double> bounds[] = {
      {GgmlType::F32, 0.0},     {GgmlType::F16, 1e-3},    {GgmlType::BF16, 4e-3},
      {GgmlType::Q8_0, 0.006},  {GgmlType::Q6_K, 0.03},   {GgmlType::Q5_0, 0.06},
      {GgmlType::Q5_1, 0.05},   {GgmlType::Q5_K, 0.05},   {GgmlType::Q4_0, 0.12},
      {GgmlType::Q4_1, 0.1},    {GgmlType::Q4_K, 0.1},    {GgmlType::IQ4_NL, 0.12},
      {GgmlType::IQ4_XS, 0.12}, {GgmlType::Q3_K, 0.25},   {GgmlType::Q2_K, 0.5}};
  for (const auto& [type, bound] : bounds) {
    std::vector<std::byte> blocks(row_bytes(type, x.size()));
    quantize(type, x, blocks);
    std::vector<float> y(x.size());
    dequantize(type, blocks, y);
    double err = 0, ref = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      err += (x[i] - y[i]) * static_cast<double>(x[i] - y[i]);
      ref += x[i] * static_cast<double>(x[i]);
    }
    const double relative = std::sqrt(err / ref);
    INFO(type_name(type) << " relative RMS error " << relative);
    CHECK(relative <= bound);
    // Not trivially passing: a quantizer that wrote zeros would have error 1.
    if (type != GgmlType::F32) CHECK(relative > 0);
  }
  // Zeros quantize to zeros in every type.
  for (GgmlType type : kDequantizableTypes) {
    std::vector<float> zeros(256, 0.0f), y(256, 1.0f);
    std::vector<std::byte> blocks(row_bytes(type, 256));
    quantize(type, zeros, blocks);
    dequantize(type, blocks, y);
    for (float v : y) CHECK(v == 0.0f);
  }
}

}  // namespace gguf_block_tests

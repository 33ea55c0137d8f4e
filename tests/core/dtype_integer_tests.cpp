// Integer conversions (saturating, round half to even), the generic convert(), dtype names and
// parse_dtype's spellings.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/dtype.hpp>

#include "core/error_check.hpp"

namespace core_dtype_integer_tests {

using porta::DType;

namespace {

template <class Int>
Int stored(DType t, float value) {
  Int out{};
  porta::store_from_f32(&out, t, 0, value);
  return out;
}

}  // namespace

TEST_CASE("float to integer rounds half to even and saturates", "[unit][dtype]") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  SECTION("i8") {
    CHECK(stored<std::int8_t>(DType::I8, 2.5f) == 2);
    CHECK(stored<std::int8_t>(DType::I8, 3.5f) == 4);
    CHECK(stored<std::int8_t>(DType::I8, -2.5f) == -2);
    CHECK(stored<std::int8_t>(DType::I8, -3.5f) == -4);
    CHECK(stored<std::int8_t>(DType::I8, 2.4999f) == 2);
    CHECK(stored<std::int8_t>(DType::I8, 2.5001f) == 3);
    CHECK(stored<std::int8_t>(DType::I8, 127.0f) == 127);
    CHECK(stored<std::int8_t>(DType::I8, 127.5f) == 127);
    CHECK(stored<std::int8_t>(DType::I8, 200.0f) == 127);
    CHECK(stored<std::int8_t>(DType::I8, -128.0f) == -128);
    CHECK(stored<std::int8_t>(DType::I8, -200.0f) == -128);
    CHECK(stored<std::int8_t>(DType::I8, inf) == 127);
    CHECK(stored<std::int8_t>(DType::I8, -inf) == -128);
    CHECK(stored<std::int8_t>(DType::I8, nan) == 0);
  }
  SECTION("i32") {
    CHECK(stored<std::int32_t>(DType::I32, 0.5f) == 0);
    CHECK(stored<std::int32_t>(DType::I32, 1.5f) == 2);
    CHECK(stored<std::int32_t>(DType::I32, -0.5f) == 0);
    CHECK(stored<std::int32_t>(DType::I32, 16777216.0f) == 16777216);
    CHECK(stored<std::int32_t>(DType::I32, 3e9f) == std::numeric_limits<std::int32_t>::max());
    CHECK(stored<std::int32_t>(DType::I32, -3e9f) == std::numeric_limits<std::int32_t>::min());
    CHECK(stored<std::int32_t>(DType::I32, 2147483648.0f) ==
          std::numeric_limits<std::int32_t>::max());
    CHECK(stored<std::int32_t>(DType::I32, -2147483648.0f) ==
          std::numeric_limits<std::int32_t>::min());
    CHECK(stored<std::int32_t>(DType::I32, inf) == std::numeric_limits<std::int32_t>::max());
    CHECK(stored<std::int32_t>(DType::I32, nan) == 0);
  }
  SECTION("i64") {
    CHECK(stored<std::int64_t>(DType::I64, -7.5f) == -8);
    CHECK(stored<std::int64_t>(DType::I64, 1e18f) == static_cast<std::int64_t>(1e18f));
    CHECK(stored<std::int64_t>(DType::I64, 1e19f) == std::numeric_limits<std::int64_t>::max());
    CHECK(stored<std::int64_t>(DType::I64, -1e19f) == std::numeric_limits<std::int64_t>::min());
    CHECK(stored<std::int64_t>(DType::I64, -inf) == std::numeric_limits<std::int64_t>::min());
    CHECK(stored<std::int64_t>(DType::I64, nan) == 0);
  }
}

TEST_CASE("integers load as f32 exactly up to 2^24", "[unit][dtype]") {
  const std::int32_t i32[] = {-16777216, 16777215, 0, -1};
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(porta::load_as_f32(i32, DType::I32, i) == static_cast<float>(i32[i]));
  CHECK(porta::load_as_f32(i32, DType::I32, 0) == -16777216.0f);
  const std::int64_t i64[] = {-(std::int64_t{1} << 24), 123456};
  CHECK(porta::load_as_f32(i64, DType::I64, 0) == -16777216.0f);
  CHECK(porta::load_as_f32(i64, DType::I64, 1) == 123456.0f);
  const std::int8_t i8[] = {-128, 127};
  CHECK(porta::load_as_f32(i8, DType::I8, 0) == -128.0f);
  CHECK(porta::load_as_f32(i8, DType::I8, 1) == 127.0f);
}

TEST_CASE("convert between integer dtypes is exact where it fits and saturates where not",
          "[unit][dtype]") {
  const std::vector<std::int64_t> wide = {0,
                                          1,
                                          -1,
                                          127,
                                          128,
                                          -128,
                                          -129,
                                          300,
                                          -300,
                                          (std::int64_t{1} << 40),
                                          -(std::int64_t{1} << 40),
                                          std::numeric_limits<std::int64_t>::max()};
  std::vector<std::int8_t> narrow(wide.size());
  porta::convert(wide.data(), DType::I64, narrow.data(), DType::I8, wide.size());
  CHECK(narrow ==
        std::vector<std::int8_t>{0, 1, -1, 127, 127, -128, -128, 127, -128, 127, -128, 127});

  std::vector<std::int32_t> mid(wide.size());
  porta::convert(wide.data(), DType::I64, mid.data(), DType::I32, wide.size());
  const std::int32_t max32 = std::numeric_limits<std::int32_t>::max();
  const std::int32_t min32 = std::numeric_limits<std::int32_t>::min();
  CHECK(mid ==
        std::vector<std::int32_t>{0, 1, -1, 127, 128, -128, -129, 300, -300, max32, min32, max32});

  // Widening keeps values above 2^24 exactly (no detour through f32).
  const std::vector<std::int32_t> big = {16777217, -16777217, max32, min32};
  std::vector<std::int64_t> widened(big.size());
  porta::convert(big.data(), DType::I32, widened.data(), DType::I64, big.size());
  CHECK(widened == std::vector<std::int64_t>{16777217, -16777217, max32, min32});
}

TEST_CASE("convert between float and integer dtypes rounds to nearest even", "[unit][dtype]") {
  const std::vector<float> values = {0.5f, 1.5f, 2.5f, -2.5f, 1000.0f, -0.4f};
  std::vector<std::int8_t> as_i8(values.size());
  porta::convert(values.data(), DType::F32, as_i8.data(), DType::I8, values.size());
  CHECK(as_i8 == std::vector<std::int8_t>{0, 2, 2, -2, 127, 0});

  // f16 -> i32: the half values are exact in f16 and round to even on the way to integers.
  const std::vector<std::uint16_t> halves = {0x3800u /*0.5*/, 0x3e00u /*1.5*/, 0x4100u /*2.5*/,
                                             0x7c00u /*inf*/, 0x7e00u /*NaN*/};
  std::vector<std::int32_t> as_i32(halves.size());
  porta::convert(halves.data(), DType::F16, as_i32.data(), DType::I32, halves.size());
  CHECK(as_i32 == std::vector<std::int32_t>{0, 2, 2, std::numeric_limits<std::int32_t>::max(), 0});

  // i32 -> bf16 rounds to bf16's 8 significant bits: 257 is halfway between 256 and 258 -> 256.
  const std::vector<std::int32_t> ints = {257, 259, -3};
  std::vector<std::uint16_t> as_bf16(ints.size());
  porta::convert(ints.data(), DType::I32, as_bf16.data(), DType::BF16, ints.size());
  CHECK(porta::bf16_bits_to_f32(as_bf16[0]) == 256.0f);
  CHECK(porta::bf16_bits_to_f32(as_bf16[1]) == 260.0f);
  CHECK(porta::bf16_bits_to_f32(as_bf16[2]) == -3.0f);

  // Same dtype is a plain copy, NaN payloads included.
  const std::vector<std::uint16_t> payload = {0x7d23u, 0x0001u};
  std::vector<std::uint16_t> copy(payload.size());
  porta::convert(payload.data(), DType::F16, copy.data(), DType::F16, payload.size());
  CHECK(copy == payload);
}

TEST_CASE("dtype names and sizes", "[unit][dtype]") {
  CHECK(porta::dtype_name(DType::F32) == "f32");
  CHECK(porta::dtype_name(DType::F16) == "f16");
  CHECK(porta::dtype_name(DType::BF16) == "bf16");
  CHECK(porta::dtype_name(DType::I8) == "i8");
  CHECK(porta::dtype_name(DType::I32) == "i32");
  CHECK(porta::dtype_name(DType::I64) == "i64");
  CHECK(porta::dtype_name(DType::F8E4M3) == "f8_e4m3");
  CHECK(porta::dtype_size(DType::F32) == 4);
  CHECK(porta::dtype_size(DType::BF16) == 2);
  CHECK(porta::dtype_size(DType::I64) == 8);
  CHECK(porta::dtype_size(DType::F8E4M3) == 1);
  CHECK(porta::is_floating(DType::F8E4M3));
  CHECK(porta::is_integer(DType::I8));
  CHECK_FALSE(porta::is_integer(DType::BF16));
  for (DType t : porta::kAllDTypes) CHECK(porta::parse_dtype(porta::dtype_name(t)) == t);
}

TEST_CASE("parse_dtype accepts the documented spellings", "[unit][dtype]") {
  const std::vector<std::pair<std::string, DType>> spellings = {
      {"f32", DType::F32},        {"float32", DType::F32},     {"F32", DType::F32},
      {"f16", DType::F16},        {"float16", DType::F16},     {"F16", DType::F16},
      {"bf16", DType::BF16},      {"bfloat16", DType::BF16},   {"BF16", DType::BF16},
      {"i8", DType::I8},          {"int8", DType::I8},         {"I8", DType::I8},
      {"i32", DType::I32},        {"int32", DType::I32},       {"I32", DType::I32},
      {"i64", DType::I64},        {"int64", DType::I64},       {"I64", DType::I64},
      {"f8_e4m3", DType::F8E4M3}, {"fp8_e4m3", DType::F8E4M3}, {"F8_E4M3", DType::F8E4M3},
  };
  for (const auto& [text, type] : spellings) {
    INFO("spelling '" << text << "'");
    CHECK(porta::parse_dtype(text) == type);
  }
}

TEST_CASE("parse_dtype rejects unknown spellings naming them", "[unit][dtype]") {
  REQUIRE_PORTA_ERROR(porta::parse_dtype("f64"), porta::ErrorCode::InvalidArgument, "'f64'");
  REQUIRE_PORTA_ERROR(porta::parse_dtype("bogus_type"), porta::ErrorCode::InvalidArgument,
                      "bogus_type");
  REQUIRE_PORTA_ERROR(porta::parse_dtype(""), porta::ErrorCode::InvalidArgument, "''");
  REQUIRE_PORTA_ERROR(porta::parse_dtype("f32 "), porta::ErrorCode::InvalidArgument, "'f32 '");
  REQUIRE_PORTA_ERROR(porta::parse_dtype("F8_E5M2"), porta::ErrorCode::InvalidArgument, "F8_E5M2");
}

}  // namespace core_dtype_integer_tests

// The 16- and 8-bit float conversions of include/porta/dtype.hpp against the formats' definitions.
// Every expected value is computed here, in double, from the format (sign, exponent, bias,
// mantissa), never by the conversions under test.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include <catch2/catch.hpp>

#include <porta/dtype.hpp>

namespace core_dtype_float_tests {

namespace {

// A binary float format with `mantissa_bits` stored mantissa bits, exponent bias `bias` and
// smallest normal exponent 1 - bias.
struct Format {
  int mantissa_bits;
  int bias;
};
constexpr Format kF16{10, 15};
constexpr Format kBF16{7, 127};
constexpr Format kE4M3{3, 7};

// The value of a finite bit pattern from the definition: subnormals when the exponent field is 0.
double decode(Format f, std::uint32_t sign, std::uint32_t exponent, std::uint32_t mantissa) {
  const double fraction = static_cast<double>(mantissa) / std::ldexp(1.0, f.mantissa_bits);
  const double magnitude = exponent == 0
                               ? std::ldexp(fraction, 1 - f.bias)
                               : std::ldexp(1.0 + fraction, static_cast<int>(exponent) - f.bias);
  return sign ? -magnitude : magnitude;
}

// Rounds `x` (finite) to the grid of format `f` with unbounded exponent range above: the spacing
// is 2^(e - mantissa_bits) for |x| in [2^e, 2^(e+1)), floored at the subnormal spacing.
// std::nearbyint in the default rounding mode rounds halfway cases to even, which is the rule under
// test.
double round_to_format(Format f, double x) {
  if (x == 0) return x;
  int e = 0;
  std::frexp(std::abs(x), &e);  // |x| = m * 2^e, m in [0.5, 1): the leading bit is 2^(e-1)
  const int lowest_exponent = 1 - f.bias;
  const int exponent = std::max(e - 1, lowest_exponent);
  const double quantum = std::ldexp(1.0, exponent - f.mantissa_bits);
  return std::nearbyint(x / quantum) * quantum;
}

bool same_value(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

constexpr double kF16Max = 65504.0;
constexpr double kE4M3Max = 448.0;
const double kBF16Max = std::ldexp(2.0 - std::ldexp(1.0, -7), 127);

// The f16 value `x` should become, from the definition.
double expected_f16(float x) {
  if (std::isnan(x)) return std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(x)) return x;
  const double r = round_to_format(kF16, x);
  if (std::abs(r) > kF16Max) return std::copysign(std::numeric_limits<double>::infinity(), x);
  return r == 0 ? std::copysign(0.0, x) : r;
}

double expected_bf16(float x) {
  if (std::isnan(x)) return std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(x)) return x;
  const double r = round_to_format(kBF16, x);
  if (std::abs(r) > kBF16Max) return std::copysign(std::numeric_limits<double>::infinity(), x);
  return r == 0 ? std::copysign(0.0, x) : r;
}

// e4m3fn has no infinity: anything that rounds past 448 is NaN, as PyTorch's cast does.
double expected_e4m3(float x) {
  if (std::isnan(x) || std::isinf(x)) return std::numeric_limits<double>::quiet_NaN();
  const double r = round_to_format(kE4M3, x);
  if (std::abs(r) > kE4M3Max) return std::numeric_limits<double>::quiet_NaN();
  return r == 0 ? std::copysign(0.0, x) : r;
}

}  // namespace

TEST_CASE("every f16 bit pattern decodes to its defined value and re-encodes to itself",
          "[unit][dtype]") {
  int mismatches = 0;
  for (std::uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const std::uint32_t sign = bits >> 15;
    const std::uint32_t exponent = (bits >> 10) & 0x1fu;
    const std::uint32_t mantissa = bits & 0x3ffu;
    const float value = porta::f16_bits_to_f32(h);
    const std::uint16_t again = porta::f32_to_f16_bits(value);
    if (exponent == 31 && mantissa != 0) {  // NaN stays NaN, sign kept
      if (!std::isnan(value) || (again & 0x7c00u) != 0x7c00u || (again & 0x3ffu) == 0 ||
          (again >> 15) != sign) {
        ++mismatches;
        UNSCOPED_INFO("NaN pattern 0x" << std::hex << bits);
      }
      continue;
    }
    const double want = exponent == 31
                            ? (sign ? -1.0 : 1.0) * std::numeric_limits<double>::infinity()
                            : decode(kF16, sign, exponent, mantissa);
    if (!same_value(value, want) || again != h) {
      ++mismatches;
      UNSCOPED_INFO("pattern 0x" << std::hex << bits << std::dec << ": decoded " << value
                                 << ", want " << want << ", re-encoded 0x" << std::hex << again);
    }
    if (mismatches > 10) break;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("every bf16 bit pattern decodes to its defined value and re-encodes to itself",
          "[unit][dtype]") {
  int mismatches = 0;
  for (std::uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const auto b = static_cast<std::uint16_t>(bits);
    const std::uint32_t sign = bits >> 15;
    const std::uint32_t exponent = (bits >> 7) & 0xffu;
    const std::uint32_t mantissa = bits & 0x7fu;
    const float value = porta::bf16_bits_to_f32(b);
    const std::uint16_t again = porta::f32_to_bf16_bits(value);
    if (exponent == 255 && mantissa != 0) {
      if (!std::isnan(value) || !std::isnan(porta::bf16_bits_to_f32(again)) ||
          (again >> 15) != sign) {
        ++mismatches;
        UNSCOPED_INFO("NaN pattern 0x" << std::hex << bits);
      }
      continue;
    }
    const double want = exponent == 255
                            ? (sign ? -1.0 : 1.0) * std::numeric_limits<double>::infinity()
                            : decode(kBF16, sign, exponent, mantissa);
    if (!same_value(value, want) || again != b) {
      ++mismatches;
      UNSCOPED_INFO("pattern 0x" << std::hex << bits);
    }
    if (mismatches > 10) break;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("every e4m3 bit pattern decodes to its defined value and re-encodes to itself",
          "[unit][dtype]") {
  for (std::uint32_t bits = 0; bits < 0x100u; ++bits) {
    const auto b = static_cast<std::uint8_t>(bits);
    const std::uint32_t sign = bits >> 7;
    const std::uint32_t exponent = (bits >> 3) & 0xfu;
    const std::uint32_t mantissa = bits & 0x7u;
    const float value = porta::f8e4m3_bits_to_f32(b);
    INFO("pattern 0x" << std::hex << bits << std::dec << " decoded to " << value);
    if ((bits & 0x7fu) == 0x7fu) {  // S.1111.111 is the only NaN; there is no infinity
      CHECK(std::isnan(value));
      CHECK((porta::f32_to_f8e4m3_bits(value) & 0x7fu) == 0x7fu);
      continue;
    }
    CHECK(same_value(value, decode(kE4M3, sign, exponent, mantissa)));
    CHECK(porta::f32_to_f8e4m3_bits(value) == b);
  }
  // Landmarks of the format, written out.
  CHECK(porta::f8e4m3_bits_to_f32(0x7e) == 448.0f);
  CHECK(porta::f8e4m3_bits_to_f32(0x01) == std::ldexp(1.0f, -9));
  CHECK(porta::f8e4m3_bits_to_f32(0x08) == std::ldexp(1.0f, -6));
  CHECK(porta::f8e4m3_bits_to_f32(0x38) == 1.0f);
  CHECK(porta::f8e4m3_bits_to_f32(0xb8) == -1.0f);
  CHECK(std::isinf(porta::f8e4m3_bits_to_f32(0x78)) == false);
  CHECK(porta::f8e4m3_bits_to_f32(0x78) == 256.0f);
}

TEST_CASE("midpoints between adjacent f16 values round to the even one", "[unit][dtype]") {
  int failures = 0;
  // Positive and negative finite patterns; the pair (h, h + 1) are adjacent values.
  for (std::uint32_t sign : {0u, 0x8000u}) {
    for (std::uint32_t low = 0; low < 0x7bffu; ++low) {
      const std::uint32_t high = low + 1;
      const double a = decode(kF16, sign >> 15, (low >> 10) & 0x1f, low & 0x3ff);
      const double b = decode(kF16, sign >> 15, (high >> 10) & 0x1f, high & 0x3ff);
      const double mid = (a + b) / 2;  // exact in double, and in float (12 significant bits)
      const auto mid_f = static_cast<float>(mid);
      const std::uint32_t even = (low & 1u) == 0 ? low : high;
      const std::uint16_t got = porta::f32_to_f16_bits(mid_f);
      // Just above / below the midpoint rounds to the nearer neighbour.
      const float above = std::nextafter(mid_f, sign ? -1e9f : 1e9f);
      const float below = std::nextafter(mid_f, 0.0f);
      const bool ok = static_cast<double>(mid_f) == mid && got == (sign | even) &&
                      porta::f32_to_f16_bits(above) == (sign | high) &&
                      porta::f32_to_f16_bits(below) == (sign | low);
      if (!ok && ++failures <= 5)
        UNSCOPED_INFO("f16 midpoint of 0x" << std::hex << (sign | low) << " and 0x" << (sign | high)
                                           << " gave 0x" << got);
    }
  }
  CHECK(failures == 0);
}

TEST_CASE("midpoints between adjacent bf16 values round to the even one", "[unit][dtype]") {
  int failures = 0;
  for (std::uint32_t sign : {0u, 0x8000u}) {
    for (std::uint32_t low = 0; low < 0x7f7fu; ++low) {
      const std::uint32_t high = low + 1;
      const double a = decode(kBF16, sign >> 15, (low >> 7) & 0xff, low & 0x7f);
      const double b = decode(kBF16, sign >> 15, (high >> 7) & 0xff, high & 0x7f);
      const double mid = (a + b) / 2;
      const auto mid_f = static_cast<float>(mid);
      const std::uint32_t even = (low & 1u) == 0 ? low : high;
      const float away = std::numeric_limits<float>::infinity();
      const float above = std::nextafter(mid_f, sign ? -away : away);
      const float below = std::nextafter(mid_f, 0.0f);
      const bool ok = static_cast<double>(mid_f) == mid &&
                      porta::f32_to_bf16_bits(mid_f) == (sign | even) &&
                      porta::f32_to_bf16_bits(above) == (sign | high) &&
                      porta::f32_to_bf16_bits(below) == (sign | low);
      if (!ok && ++failures <= 5)
        UNSCOPED_INFO("bf16 midpoint of 0x" << std::hex << (sign | low) << " and 0x"
                                            << (sign | high));
    }
  }
  CHECK(failures == 0);
}

TEST_CASE("midpoints between adjacent e4m3 values round to the even one", "[unit][dtype]") {
  for (std::uint32_t sign : {0u, 0x80u}) {
    for (std::uint32_t low = 0; low < 0x7eu; ++low) {
      const std::uint32_t high = low + 1;
      const double a = decode(kE4M3, sign >> 7, (low >> 3) & 0xf, low & 0x7);
      const double b = decode(kE4M3, sign >> 7, (high >> 3) & 0xf, high & 0x7);
      const auto mid = static_cast<float>((a + b) / 2);
      const std::uint32_t even = (low & 1u) == 0 ? low : high;
      INFO("midpoint " << mid << " of 0x" << std::hex << (sign | low) << " and 0x"
                       << (sign | high));
      CHECK(porta::f32_to_f8e4m3_bits(mid) == (sign | even));
      CHECK(porta::f32_to_f8e4m3_bits(std::nextafter(mid, sign ? -1e9f : 1e9f)) == (sign | high));
      CHECK(porta::f32_to_f8e4m3_bits(std::nextafter(mid, 0.0f)) == (sign | low));
    }
  }
}

TEST_CASE("f16 overflow, subnormals, zeros, infinities and NaN", "[unit][dtype]") {
  // Overflow: 65520 is halfway between 65504 (odd mantissa 0x3ff) and 2^16, so ties go up to inf.
  CHECK(porta::f32_to_f16_bits(65520.0f) == 0x7c00u);
  CHECK(porta::f32_to_f16_bits(-65520.0f) == 0xfc00u);
  CHECK(porta::f32_to_f16_bits(65519.99f) == 0x7bffu);
  CHECK(porta::f16_bits_to_f32(0x7bffu) == 65504.0f);
  CHECK(porta::f32_to_f16_bits(1e10f) == 0x7c00u);
  CHECK(porta::f32_to_f16_bits(std::numeric_limits<float>::infinity()) == 0x7c00u);
  CHECK(porta::f32_to_f16_bits(-std::numeric_limits<float>::infinity()) == 0xfc00u);
  // Subnormals: 2^-24 is the smallest; 2^-25 is the tie between 0 and it and goes to 0 (even);
  // 3·2^-26 is past the tie and goes up.
  CHECK(porta::f32_to_f16_bits(std::ldexp(1.0f, -24)) == 0x0001u);
  CHECK(porta::f32_to_f16_bits(std::ldexp(1.0f, -25)) == 0x0000u);
  CHECK(porta::f32_to_f16_bits(-std::ldexp(1.0f, -25)) == 0x8000u);
  CHECK(porta::f32_to_f16_bits(3.0f * std::ldexp(1.0f, -26)) == 0x0001u);
  CHECK(porta::f32_to_f16_bits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001u);
  CHECK(porta::f32_to_f16_bits(3.0f * std::ldexp(1.0f, -25)) == 0x0002u);  // 1.5 units: tie to 2
  CHECK(porta::f32_to_f16_bits(5.0f * std::ldexp(1.0f, -25)) == 0x0002u);  // 2.5 units: tie to 2
  CHECK(porta::f32_to_f16_bits(std::ldexp(1.0f, -14)) == 0x0400u);         // smallest normal
  // The largest subnormal rounds up into the smallest normal once past the midpoint.
  CHECK(porta::f32_to_f16_bits(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)) == 0x0400u);
  CHECK(porta::f32_to_f16_bits(std::numeric_limits<float>::denorm_min()) == 0x0000u);
  // Signed zero.
  CHECK(porta::f32_to_f16_bits(0.0f) == 0x0000u);
  CHECK(porta::f32_to_f16_bits(-0.0f) == 0x8000u);
  CHECK(std::signbit(porta::f16_bits_to_f32(0x8000u)));
  // NaN of either sign stays NaN (and never becomes infinity).
  const std::uint16_t qnan = porta::f32_to_f16_bits(std::numeric_limits<float>::quiet_NaN());
  CHECK((qnan & 0x7c00u) == 0x7c00u);
  CHECK((qnan & 0x3ffu) != 0);
  const std::uint16_t snan =
      porta::f32_to_f16_bits(std::bit_cast<float>(0x7f800001u));  // low payload
  CHECK((snan & 0x7c00u) == 0x7c00u);
  CHECK((snan & 0x3ffu) != 0);
  const std::uint16_t nnan = porta::f32_to_f16_bits(-std::numeric_limits<float>::quiet_NaN());
  CHECK((nnan & 0x8000u) != 0);
  CHECK(std::isnan(porta::f16_bits_to_f32(nnan)));
}

TEST_CASE("bf16 overflow, subnormals, zeros and NaN", "[unit][dtype]") {
  CHECK(porta::f32_to_bf16_bits(1.0f) == 0x3f80u);
  CHECK(porta::f32_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7f80u);  // rounds past max
  CHECK(porta::f32_to_bf16_bits(std::numeric_limits<float>::infinity()) == 0x7f80u);
  CHECK(porta::f32_to_bf16_bits(-std::numeric_limits<float>::infinity()) == 0xff80u);
  CHECK(porta::f32_to_bf16_bits(-0.0f) == 0x8000u);
  CHECK(porta::f32_to_bf16_bits(std::numeric_limits<float>::denorm_min()) ==
        0x0000u);  // tie-free: below half
  // A NaN whose payload lives only in the low 16 bits must not collapse to infinity.
  const std::uint16_t low_payload_nan = porta::f32_to_bf16_bits(std::bit_cast<float>(0x7f800001u));
  CHECK(std::isnan(porta::bf16_bits_to_f32(low_payload_nan)));
  const std::uint16_t negative_nan = porta::f32_to_bf16_bits(std::bit_cast<float>(0xff800001u));
  CHECK(std::isnan(porta::bf16_bits_to_f32(negative_nan)));
  CHECK((negative_nan & 0x8000u) != 0);
  // Ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 and goes to 1 (even); 1 + 3·2^-8 goes up.
  CHECK(porta::f32_to_bf16_bits(1.0f + std::ldexp(1.0f, -8)) == 0x3f80u);
  CHECK(porta::f32_to_bf16_bits(1.0f + 3.0f * std::ldexp(1.0f, -8)) == 0x3f82u);
}

TEST_CASE("e4m3 saturation boundary, subnormals, zeros, infinities and NaN", "[unit][dtype]") {
  CHECK(porta::f32_to_f8e4m3_bits(448.0f) == 0x7eu);
  CHECK(porta::f32_to_f8e4m3_bits(464.0f) == 0x7eu);  // the tie with the (missing) 480 goes to 448
  CHECK(porta::f32_to_f8e4m3_bits(-464.0f) == 0xfeu);
  CHECK((porta::f32_to_f8e4m3_bits(465.0f) & 0x7fu) == 0x7fu);
  CHECK(porta::f32_to_f8e4m3_bits(-465.0f) == 0xffu);
  CHECK((porta::f32_to_f8e4m3_bits(1e6f) & 0x7fu) == 0x7fu);
  CHECK((porta::f32_to_f8e4m3_bits(std::numeric_limits<float>::infinity()) & 0x7fu) == 0x7fu);
  CHECK((porta::f32_to_f8e4m3_bits(-std::numeric_limits<float>::infinity()) & 0x7fu) == 0x7fu);
  CHECK((porta::f32_to_f8e4m3_bits(std::numeric_limits<float>::quiet_NaN()) & 0x7fu) == 0x7fu);
  // Subnormals are multiples of 2^-9; 2^-10 ties to 0, 3·2^-10 ties to 2·2^-9 (even).
  CHECK(porta::f32_to_f8e4m3_bits(std::ldexp(1.0f, -9)) == 0x01u);
  CHECK(porta::f32_to_f8e4m3_bits(std::ldexp(1.0f, -10)) == 0x00u);
  CHECK(porta::f32_to_f8e4m3_bits(-std::ldexp(1.0f, -10)) == 0x80u);
  CHECK(porta::f32_to_f8e4m3_bits(std::nextafter(std::ldexp(1.0f, -10), 1.0f)) == 0x01u);
  CHECK(porta::f32_to_f8e4m3_bits(3.0f * std::ldexp(1.0f, -10)) == 0x02u);
  CHECK(porta::f32_to_f8e4m3_bits(0.0f) == 0x00u);
  CHECK(porta::f32_to_f8e4m3_bits(-0.0f) == 0x80u);
  CHECK(std::signbit(porta::f8e4m3_bits_to_f32(0x80u)));
  CHECK(porta::f8e4m3_bits_to_f32(0x80u) == 0.0f);
}

TEST_CASE("random f32 values round like the formats' definitions", "[unit][dtype]") {
  std::mt19937 rng(20240611u);
  std::uniform_int_distribution<std::uint32_t> any_bits;
  // Bit patterns spread over the whole f32 range, plus values near each format's range.
  std::uniform_real_distribution<float> near_f16(-70000.0f, 70000.0f);
  std::uniform_real_distribution<float> near_e4m3(-500.0f, 500.0f);
  std::uniform_real_distribution<float> tiny(-0.02f, 0.02f);
  int failures = 0;
  auto check = [&](float x) {
    const double f16 = porta::f16_bits_to_f32(porta::f32_to_f16_bits(x));
    const double bf16 = porta::bf16_bits_to_f32(porta::f32_to_bf16_bits(x));
    const double e4m3 = porta::f8e4m3_bits_to_f32(porta::f32_to_f8e4m3_bits(x));
    const bool ok = same_value(f16, expected_f16(x)) && same_value(bf16, expected_bf16(x)) &&
                    same_value(e4m3, expected_e4m3(x));
    if (!ok && ++failures <= 5)
      UNSCOPED_INFO("x = " << x << " (0x" << std::hex << std::bit_cast<std::uint32_t>(x) << std::dec
                           << "): f16 " << f16 << " want " << expected_f16(x) << ", bf16 " << bf16
                           << " want " << expected_bf16(x) << ", e4m3 " << e4m3 << " want "
                           << expected_e4m3(x));
  };
  for (int i = 0; i < 100000; ++i) {
    check(std::bit_cast<float>(any_bits(rng)));
    check(near_f16(rng));
    check(near_e4m3(rng));
    check(tiny(rng));
  }
  CHECK(failures == 0);
}

TEST_CASE("the storage structs convert through the same rules", "[unit][dtype]") {
  CHECK(porta::Half::from_float(1.0f).bits == 0x3c00u);
  CHECK(porta::Half{0xc000u}.to_float() == -2.0f);
  CHECK(porta::BFloat16::from_float(-2.0f).bits == 0xc000u);
  CHECK(porta::BFloat16{0x4049u}.to_float() == 3.140625f);
  CHECK(porta::Float8E4M3::from_float(-1.5f).bits == 0xbcu);
  CHECK(porta::Float8E4M3{0x44u}.to_float() == 3.0f);
  STATIC_REQUIRE(porta::dtype_of_v<porta::Half> == porta::DType::F16);
  STATIC_REQUIRE(porta::dtype_of_v<porta::Float8E4M3> == porta::DType::F8E4M3);
  STATIC_REQUIRE(porta::f32_to_f16_bits(1.0f) == 0x3c00u);  // usable at compile time
}

}  // namespace core_dtype_float_tests

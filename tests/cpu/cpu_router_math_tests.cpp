// The cpu router's vectorised scores (backends/cpu/moe/router_math.hpp) against the reference's
// scalar formulas: the double exp within 2 ulps of std::exp, and the f32 sigmoid and softmax
// scores *equal* (bit for bit, not within an ulp) to f32(reference) over millions of arguments
// spread over every f32 exponent, the special values, and rows whose exps underflow.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "../../backends/cpu/moe/router_math.hpp"

namespace cpu_router_math_tests {

namespace cm = porta::detail::cpu::moe;

namespace {

std::uint32_t bits_of(float v) {
  std::uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}
float float_of(std::uint32_t b) {
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}
std::int64_t bits_of(double v) {
  std::int64_t b;
  std::memcpy(&b, &v, 8);
  return b;
}

// How many arguments whose f32 score differs in its bits from the reference's (NaN equals NaN).
std::int64_t sigmoid_mismatches(const std::vector<float>& x) {
  std::vector<float> got(x.size());
  cm::sigmoid_scores(x.data(), static_cast<std::int64_t>(x.size()), got.data());
  std::int64_t bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float want = static_cast<float>(cm::sigmoid_reference(x[i]));
    const bool same = std::isnan(want) ? std::isnan(got[i]) : bits_of(got[i]) == bits_of(want);
    if (!same) {
      if (bad < 5) UNSCOPED_INFO("x = " << x[i] << ": " << got[i] << " vs " << want);
      ++bad;
    }
  }
  return bad;
}

void reference_softmax(const std::vector<float>& x, std::vector<float>& s) {
  float row_max = -std::numeric_limits<float>::infinity();
  for (float v : x) row_max = std::max(row_max, v);
  double sum = 0.0;
  std::vector<double> e(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    e[i] = std::exp(static_cast<double>(x[i]) - static_cast<double>(row_max));
    sum += e[i];
  }
  for (std::size_t i = 0; i < x.size(); ++i) s[i] = static_cast<float>(e[i] / sum);
}

}  // namespace

TEST_CASE("cpu router exp is within 2 ulps of std::exp", "[cpu][moe][router_math]") {
  std::mt19937_64 rng(7);
  std::vector<double> x;
  std::uniform_real_distribution<double> wide(-708.0, 708.0), narrow(-1.0, 1.0);
  for (int i = 0; i < 1000000; ++i) x.push_back(wide(rng));
  for (int i = 0; i < 1000000; ++i) x.push_back(narrow(rng));
  // Around the reduction's boundaries (odd multiples of ln2 / 2) and its edges.
  for (int k = -2043; k <= 2043; k += 2)
    for (int d = -20; d <= 20; ++d)
      x.push_back(std::nextafter(k * 0.34657359027997264, 0.0) + d * 1e-13);
  for (double v : {0.0, -0.0, 1e-300, -1e-300, 708.0, -708.0, 707.99, -707.99}) x.push_back(v);
  std::vector<double> y(x.size());
  cm::exp_f64(x.data(), static_cast<std::int64_t>(x.size()), y.data());
  std::int64_t worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(x[i]);
    const std::int64_t ulps = std::abs(bits_of(y[i]) - bits_of(want));
    if (ulps > worst) {
      worst = ulps;
      UNSCOPED_INFO("x = " << x[i] << ": " << ulps << " ulps");
    }
  }
  CHECK(worst <= 2);

  // Beyond |x| = 708, NaN and infinities: std::exp itself.
  const std::vector<double> special{709.0,
                                    -709.0,
                                    710.0,
                                    -745.0,
                                    -746.0,
                                    1e10,
                                    -1e10,
                                    std::numeric_limits<double>::infinity(),
                                    -std::numeric_limits<double>::infinity(),
                                    std::numeric_limits<double>::quiet_NaN()};
  std::vector<double> ys(special.size());
  cm::exp_f64(special.data(), static_cast<std::int64_t>(special.size()), ys.data());
  for (std::size_t i = 0; i < special.size(); ++i) {
    INFO("x = " << special[i]);
    if (std::isnan(special[i]))
      CHECK(std::isnan(ys[i]));
    else
      CHECK(bits_of(ys[i]) == bits_of(std::exp(special[i])));
  }
}

TEST_CASE("cpu router sigmoid scores equal the reference's f32 bits", "[cpu][moe][router_math]") {
  SECTION("every 127th f32 bit pattern (all exponents, both signs, NaNs)") {
    // The sanitizer build walks every 1651st (13 x 127) pattern: the same code paths for ASan and
    // UBSan to check, at a tenth of the 34 million instrumented calls; the full sweep runs in the
    // Release pass.
    const std::uint64_t stride = PORTA_TEST_SANITIZED ? 13 * 127 : 127;
    std::vector<float> x;
    std::int64_t bad = 0;
    for (std::uint64_t b = 0; b <= 0xFFFFFFFFull; b += stride) {
      x.push_back(float_of(static_cast<std::uint32_t>(b)));
      if (x.size() == 1000000) {
        bad += sigmoid_mismatches(x);
        x.clear();
      }
    }
    bad += sigmoid_mismatches(x);
    CHECK(bad == 0);
  }
  SECTION("dense runs of consecutive f32 where scores are moderate") {
    std::vector<float> x;
    for (float start : {-17.0f, -3.0f, -0.01f, 0.5f, 2.0f, 9.0f, 15.0f})
      for (int i = 0; i < 1000000; ++i, start = std::nextafter(start, 100.0f)) x.push_back(start);
    CHECK(sigmoid_mismatches(x) == 0);
  }
  SECTION("special values and denormal scores") {
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> x{
        0.0f,    -0.0f,   inf,     -inf,    std::numeric_limits<float>::quiet_NaN(),
        1e-45f,  -1e-45f, 1e30f,   -1e30f,  -87.0f,
        -88.8f,  -95.0f,  -103.0f, -104.0f, -110.0f,
        -700.0f, -707.9f, -708.1f, -709.0f, -745.2f,
        -800.0f, 16.6f,   17.0f,   36.8f,   37.0f,
        708.5f};
    // An odd count, so that the scalar tail runs too.
    CHECK(sigmoid_mismatches(x) == 0);
    x.push_back(1.0f);
    CHECK(sigmoid_mismatches(x) == 0);
  }
}

TEST_CASE("cpu router softmax scores equal the reference's f32 bits", "[cpu][moe][router_math]") {
  std::mt19937 rng(11);
  std::int64_t rows = 0, bad_rows = 0;
  const auto check = [&](const std::vector<float>& x) {
    std::vector<float> want(x.size()), got(x.size());
    std::vector<double> work(x.size());
    reference_softmax(x, want);
    cm::softmax_scores(x.data(), static_cast<std::int64_t>(x.size()), got.data(), work.data());
    ++rows;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const bool same =
          std::isnan(want[i]) ? std::isnan(got[i]) : bits_of(got[i]) == bits_of(want[i]);
      if (!same) {
        ++bad_rows;
        UNSCOPED_INFO("row of " << x.size() << ", element " << i << ": " << got[i] << " vs "
                                << want[i]);
        return;
      }
    }
  };
  for (int n : {1, 2, 3, 7, 8, 9, 16, 64, 128, 160, 256, 257}) {
    for (float scale : {0.01f, 1.0f, 4.0f, 30.0f, 400.0f}) {
      std::uniform_real_distribution<float> dist(-scale, scale);
      for (int r = 0; r < 300; ++r) {
        std::vector<float> x(static_cast<std::size_t>(n));
        for (auto& v : x) v = dist(rng);
        check(x);
      }
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  check(std::vector<float>(64, 0.5f));                            // all equal
  check({1.0f, -inf, 2.0f, -inf, 0.0f, 3.0f, -inf, 1.0f, 5.0f});  // −inf entries
  check(std::vector<float>(12, -inf));                            // NaN scores, as the reference
  check({inf, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f});         // +inf: NaN scores
  check({1000.0f, -1000.0f, 0.0f, 999.0f, -5.0f, 1000.0f, 3.0f, 2.0f, 1.0f});  // underflows
  CHECK(bad_rows == 0);
  CHECK(rows > 18000);
}

}  // namespace cpu_router_math_tests

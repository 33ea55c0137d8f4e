// npu-sim's numerics: operands in fp16/bf16, f32 accumulation, one round-to-nearest-even at
// FixPipe; int8 x int8 -> int32 exact; the documented K-dependent tolerance.
#include <cmath>
#include <random>

#include <catch2/catch.hpp>

#include <porta/npu_sim.hpp>
#include <porta/porta.hpp>

#include "check/conformance.hpp"

namespace npu_sim_numerics_tests {

using porta::DType;

TEST_CASE("cube matmul accumulates in f32 and rounds once to nearest even", "[npu-sim]") {
  const float u12 = std::ldexp(1.0f, -12);
  // 1 + 4 * 2^-12: fp16 accumulation would drop every 2^-12 term (each is a quarter ulp of 1);
  // f32 accumulation keeps them and the sum 1 + 2^-10 is an fp16 value.
  auto c =
      porta::npu_sim::cube_matmul({1, u12, u12, u12, u12}, {1, 1, 1, 1, 1}, 1, 5, 1, DType::F16);
  CHECK(c[0] == 1.0f + std::ldexp(1.0f, -10));
  // Exact sums between fp16 neighbours: 0.75 ulp rounds up, a tie goes to the even neighbour.
  c = porta::npu_sim::cube_matmul({1, u12, u12, u12}, {1, 1, 1, 1}, 1, 4, 1, DType::F16);
  CHECK(c[0] == 1.0f + std::ldexp(1.0f, -10));
  c = porta::npu_sim::cube_matmul({1, u12, u12}, {1, 1, 1}, 1, 3, 1, DType::F16);
  CHECK(c[0] == 1.0f);  // 1 + 2^-11: a tie, 1.0 is even
  c = porta::npu_sim::cube_matmul({1, std::ldexp(1.0f, -10), std::ldexp(1.0f, -11)}, {1, 1, 1}, 1,
                                  3, 1, DType::F16);
  CHECK(c[0] == 1.0f + std::ldexp(1.0f, -9));  // 1.5 ulp: a tie, rounds to the even 2 ulp
  // bf16 (8 significant bits): the same tie at 2^-8.
  c = porta::npu_sim::cube_matmul({1, std::ldexp(1.0f, -9), std::ldexp(1.0f, -9)}, {1, 1, 1}, 1, 3,
                                  1, DType::BF16);
  CHECK(c[0] == 1.0f);
  c = porta::npu_sim::cube_matmul(
      {1, std::ldexp(1.0f, -9), std::ldexp(1.0f, -9), std::ldexp(1.0f, -9)}, {1, 1, 1, 1}, 1, 4, 1,
      DType::BF16);
  CHECK(c[0] == 1.0f + std::ldexp(1.0f, -7));
  // Inputs are rounded to the device dtype first: 1 + 2^-12 is 1 in fp16, 1 + 2^-9 is 1 in bf16.
  c = porta::npu_sim::cube_matmul({1.0f + u12}, {3}, 1, 1, 1, DType::F16);
  CHECK(c[0] == 3.0f);
  c = porta::npu_sim::cube_matmul({1.0f + std::ldexp(1.0f, -9)}, {1}, 1, 1, 1, DType::BF16);
  CHECK(c[0] == 1.0f);
  // f32 stays f32.
  c = porta::npu_sim::cube_matmul({1.0f + u12}, {1}, 1, 1, 1, DType::F32);
  CHECK(c[0] == 1.0f + u12);
  CHECK_THROWS_AS(porta::npu_sim::cube_matmul({1, 2}, {1}, 1, 2, 1, DType::F16), porta::Error);
  CHECK_THROWS_AS(porta::npu_sim::cube_matmul({1}, {1}, 1, 1, 1, DType::I32), porta::Error);
}

TEST_CASE("cube matmul matches exact products at every tile edge", "[npu-sim]") {
  // Small integers: every partial sum is exact in f32, so the result is the exact product rounded
  // once, whatever the blocking. Odd sizes cross the 6-row and 16-column edges of the host kernel.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> dist(-8, 8);
  for (auto [m, k, n] : {std::array<std::int64_t, 3>{1, 1, 1},
                         {7, 300, 17},
                         {13, 64, 33},
                         {6, 513, 16},
                         {100, 40, 5}}) {
    std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n));
    for (auto& v : a) v = static_cast<float>(dist(rng));
    for (auto& v : b) v = static_cast<float>(dist(rng)) / 4;
    const auto c = porta::npu_sim::cube_matmul(a, b, m, k, n, DType::F16);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double exact = 0;
        for (std::int64_t p = 0; p < k; ++p)
          exact += static_cast<double>(a[static_cast<std::size_t>(i * k + p)]) *
                   b[static_cast<std::size_t>(p * n + j)];
        const float want = porta::Half::from_float(static_cast<float>(exact)).to_float();
        REQUIRE(c[static_cast<std::size_t>(i * n + j)] == want);
      }
  }
}

TEST_CASE("int8 x int8 accumulates exactly into int32", "[npu-sim]") {
  // 1100 products of -128 * -128 plus one 1 * 1: 18022401, an odd number past 2^24 that f32
  // cannot hold; int32 accumulation gets it exactly.
  const std::int64_t k = 1101;
  std::vector<std::int8_t> a(static_cast<std::size_t>(2 * k), -128),
      b(static_cast<std::size_t>(k * 2), -128);
  a[static_cast<std::size_t>(k - 1)] = 1;
  b[static_cast<std::size_t>((k - 1) * 2)] = 1;
  for (std::int64_t p = 0; p < k; ++p) b[static_cast<std::size_t>(p * 2 + 1)] = 127;
  a[static_cast<std::size_t>(k)] = 127;
  const auto c = porta::npu_sim::cube_matmul_i8(a, b, 2, k, 2);
  CHECK(c[0] == 1100 * 16384 + 1);
  CHECK(static_cast<std::int64_t>(static_cast<float>(c[0])) != c[0]);  // f32 could not hold it
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 2; ++j) {
      std::int64_t exact = 0;
      for (std::int64_t p = 0; p < k; ++p)
        exact += std::int64_t{a[static_cast<std::size_t>(i * k + p)]} *
                 b[static_cast<std::size_t>(p * 2 + j)];
      CHECK(c[static_cast<std::size_t>(i * 2 + j)] == exact);
    }
  CHECK_THROWS_AS(porta::npu_sim::cube_matmul_i8(a, b, 2, k, 3), porta::Error);
}

TEST_CASE("the npu-sim backend's f16 matmul rounds once, as the cube does", "[npu-sim]") {
  // K = 2048 with values whose partial sums are all exact in f32: the result must equal the exact
  // product rounded once to fp16, element for element (per-step fp16 rounding would not).
  const std::int64_t m = 5, k = 2048, n = 40;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> dist(-4, 4);
  std::vector<float> a(static_cast<std::size_t>(m * k)), w(static_cast<std::size_t>(n * k));
  for (auto& v : a) v = static_cast<float>(dist(rng)) / 8;
  for (auto& v : w) v = static_cast<float>(dist(rng));
  porta::Graph g;
  auto x = g.input("x", {m, k}, DType::F16);
  g.output("y", g.matmul(x, g.weight("w", porta::Tensor::from_f32({n, k}, DType::F16, w)),
                         {false, true}));
  auto exe = porta::compile(g, {.backend = "npu-sim:910b2", .fallback = ""});
  const auto y = exe.run({{"x", porta::Tensor::from_f32({m, k}, DType::F16, a)}}).at("y").to_f32();
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double exact = 0;
      for (std::int64_t p = 0; p < k; ++p)
        exact += static_cast<double>(a[static_cast<std::size_t>(i * k + p)]) *
                 w[static_cast<std::size_t>(j * k + p)];
      REQUIRE(y[static_cast<std::size_t>(i * n + j)] ==
              porta::Half::from_float(static_cast<float>(exact)).to_float());
    }
  // The op's profile carries the model's figures.
  const auto& op = exe.profile().ops.at(0);
  CHECK(op.device_us > 0);
  CHECK(op.metrics.at("cycles") > 0);
  CHECK(op.metrics.at("busiest_pipe") >= 0);
  CHECK(op.metrics.at("compute_utilization") > 0);
  CHECK(op.metrics.at("compute_utilization") <= 1);
}

TEST_CASE("npu-sim's tolerance depends on K for cube ops only", "[npu-sim]") {
  using porta::OpKind;
  const auto npu = [](OpKind op, DType t, std::int64_t k) {
    return porta::check::tolerance(op, t, "npu-sim:910b2", k);
  };
  CHECK(npu(OpKind::Matmul, DType::F16, 4096) > npu(OpKind::Matmul, DType::F16, 64));
  CHECK(npu(OpKind::Matmul, DType::F32, 4096) == Approx(16 * npu(OpKind::Matmul, DType::F32, 256)));
  // One fp16 rounding is 2^-11 of max|out| at worst: the bound sits above it.
  CHECK(npu(OpKind::Matmul, DType::F16, 1) > std::ldexp(1.0, -11));
  CHECK(npu(OpKind::MoeExperts, DType::BF16, 64) > npu(OpKind::Matmul, DType::BF16, 64));
  // Vector ops and other backends keep the default.
  CHECK(npu(OpKind::Softmax, DType::F16, 0) ==
        porta::check::tolerance(OpKind::Softmax, DType::F16));
  CHECK(porta::check::tolerance(OpKind::Matmul, DType::F16, "cpu", 4096) ==
        porta::check::tolerance(OpKind::Matmul, DType::F16));
}

TEST_CASE("npu-sim declines fp8 and 64-bit integer arithmetic with a reason", "[npu-sim]") {
  porta::Graph g;
  auto x = g.input("x", {4, 8}, DType::F8E4M3);
  g.output("y", g.cast(x, DType::F16));
  try {
    porta::compile(g, {.backend = "npu-sim:910b2", .fallback = ""});
    FAIL("compiled an fp8 cast on npu-sim");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::Unsupported);
    CHECK_THAT(e.what(), Catch::Contains("fp8"));
  }
  auto exe = porta::compile(g, {.backend = "npu-sim:910b2"});  // placed on the fallback instead
  CHECK(exe.placement().at(0).backend == "reference");
  CHECK_THAT(exe.placement().at(0).reason, Catch::Contains("fp8"));
}

TEST_CASE("npu-sim's grouped_matmul is exact on exact sums at every edge", "[npu-sim]") {
  // Rows per expert 0, 1, 5, 7 and K = 37, N = 11: the host kernel's 4-row, 3-column and 8-lane
  // edges all occur. Small integers keep every partial sum exact in f32.
  const std::int64_t h = 37, n = 11, e = 4;
  const std::vector<std::int32_t> offsets{0, 0, 1, 6, 13};
  const std::int64_t rows = offsets.back();
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> dist(-6, 6);
  std::vector<float> x(static_cast<std::size_t>(rows * h)), w(static_cast<std::size_t>(e * n * h));
  for (auto& v : x) v = static_cast<float>(dist(rng));
  for (auto& v : w) v = static_cast<float>(dist(rng)) / 2;
  for (DType t : {DType::F16, DType::F32}) {
    porta::Graph g;
    auto in = g.input("rows", {rows, h}, t);
    auto off = g.input("offsets", {e + 1}, DType::I32);
    g.output("y",
             g.grouped_matmul(in, g.weight("w", porta::Tensor::from_f32({e, n, h}, t, w)), off));
    auto exe = porta::compile(g, {.backend = "npu-sim:910b2", .fallback = ""});
    const auto y =
        exe.run({{"rows", porta::Tensor::from_f32({rows, h}, t, x)},
                 {"offsets", porta::Tensor::from_vector<std::int32_t>({e + 1}, offsets)}})
            .at("y")
            .to_f32();
    for (std::int64_t ex = 0; ex < e; ++ex)
      for (std::int64_t r = offsets[static_cast<std::size_t>(ex)];
           r < offsets[static_cast<std::size_t>(ex + 1)]; ++r)
        for (std::int64_t j = 0; j < n; ++j) {
          double exact = 0;
          for (std::int64_t p = 0; p < h; ++p)
            exact += static_cast<double>(x[static_cast<std::size_t>(r * h + p)]) *
                     w[static_cast<std::size_t>((ex * n + j) * h + p)];
          REQUIRE(y[static_cast<std::size_t>(r * n + j)] == static_cast<float>(exact));
        }
  }
}

}  // namespace npu_sim_numerics_tests

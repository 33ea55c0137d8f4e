// Bad data-dependent indices on the opencl backend (embedding ids, the MoE tables perm, inv and
// offsets, attention's cache_len): each is a porta::Error (InvalidArgument) naming the node, the
// table and the bad value, raised after the run from the device-side checks, with the reference
// backend's wording; good tables in the same executable still give the reference's answer.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/porta.hpp>

namespace opencl_bad_input_tests {

namespace {

using porta::DType;
using porta::Tensor;
using Inputs = std::map<std::string, Tensor>;

std::string opencl_device() {
  for (const auto& d : porta::list_devices())
    if (d.name.rfind("opencl", 0) == 0 && d.available) return d.name;
  WARN("skipped: no OpenCL device is available");
  return {};
}

Tensor random_f32(porta::Shape shape, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(static_cast<std::size_t>(shape.numel()));
  for (auto& v : values) v = dist(rng);
  return Tensor::from_vector<float>(std::move(shape), values);
}

Tensor i32(porta::Shape shape, std::vector<std::int32_t> values) {
  return Tensor::from_vector<std::int32_t>(std::move(shape), values);
}

std::string error_of(porta::Executable& exe, const Inputs& inputs) {
  try {
    exe.run(inputs);
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::InvalidArgument);
    return e.what();
  }
  return {};
}

// The reference's message from `label` on (the runtime's prefix differs between backends).
std::string reference_message(const porta::Graph& g, const Inputs& inputs,
                              const std::string& label) {
  auto exe = porta::compile(g, {.backend = "reference"});
  const std::string what = error_of(exe, inputs);
  const auto at = what.find(label);
  REQUIRE(at != std::string::npos);
  return what.substr(at);
}

// Runs `bad` on opencl and on the reference: both must fail, opencl with the reference's words
// (and `expected` in them); then `good` on the same opencl executable matches the reference.
void check_bad_then_good(const porta::Graph& g, const std::string& device, const Inputs& bad,
                         const Inputs& good, const std::string& label,
                         const std::string& expected) {
  auto exe = porta::compile(g, {.backend = device, .fallback = ""});
  for (const auto& p : exe.placement()) REQUIRE(p.backend == device);
  const std::string got = error_of(exe, bad);
  INFO("opencl said: " << got);
  REQUIRE_FALSE(got.empty());
  CHECK_THAT(got, Catch::Contains(label) && Catch::Contains(expected));
  CHECK_THAT(got, Catch::Contains(reference_message(g, bad, label)));
  const auto ok = exe.run(good);
  const auto want = porta::compile(g, {.backend = "reference"}).run(good);
  for (const auto& [name, tensor] : want) {
    const auto a = ok.at(name).to_f32(), b = tensor.to_f32();
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
      worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
    CHECK(worst < 1e-5);
  }
}

}  // namespace

TEST_CASE("opencl: an embedding id out of range is an error naming the id", "[opencl][errors]") {
  const std::string device = opencl_device();
  if (device.empty()) return;
  std::mt19937 rng(1);
  for (const DType ids_dtype : {DType::I32, DType::I64}) {
    porta::Graph g;
    auto table = g.weight("table", random_f32({5, 4}, rng));
    g.output("y", g.name(g.embedding(table, g.input("ids", {4}, ids_dtype)), "tok"));
    const auto ids = [&](std::vector<std::int64_t> v) {
      std::vector<float> f(v.begin(), v.end());
      return Tensor::from_f32({4}, ids_dtype, f);
    };
    INFO(porta::dtype_name(ids_dtype) << " ids");
    // The first bad id in order is the one reported, as the reference reports it.
    check_bad_then_good(g, device, {{"ids", ids({0, 5, -1, 9})}}, {{"ids", ids({4, 0, 3, 3})}},
                        "embedding 'tok'", "id 5 (at flat index 1 of ids 'ids')");
    check_bad_then_good(g, device, {{"ids", ids({0, 1, 2, -1})}}, {{"ids", ids({1, 2, 3, 4})}},
                        "embedding 'tok'", "id -1 (at flat index 3");
  }
}

TEST_CASE("opencl: bad moe_permute and moe_combine tables are errors", "[opencl][errors]") {
  const std::string device = opencl_device();
  if (device.empty()) return;
  std::mt19937 rng(2);
  constexpr std::int64_t T = 3, K = 2, H = 8;
  porta::Graph g;
  porta::MoeRoute route;
  route.top_k = K;
  route.perm = g.input("perm", {T * K + 1}, DType::I32);
  route.inv = g.input("inv", {T * K}, DType::I32);
  route.weights = g.input("weights", {T, K}, DType::F32);
  auto rows = g.name(g.moe_permute(g.input("x", {T, H}, DType::F32), route), "permute");
  g.output("y", g.name(g.moe_combine(rows, route), "combine"));
  const Tensor x = random_f32({T, H}, rng), weights = random_f32({T, K}, rng);
  // perm: assignment indices, T*K (or more) for padding; inv: a row of rows, or -1 (dropped).
  const Tensor good_perm = i32({T * K + 1}, {4, 0, 6, 2, 5, 1, 3});
  const Tensor good_inv = i32({T * K}, {1, 5, 3, 6, -1, 4});
  const Inputs good{{"x", x}, {"weights", weights}, {"perm", good_perm}, {"inv", good_inv}};
  auto with = [&](const char* name, Tensor t) {
    Inputs in = good;
    in[name] = std::move(t);
    return in;
  };
  check_bad_then_good(g, device, with("perm", i32({T * K + 1}, {4, 0, -3, 2, 5, -1, 3})), good,
                      "moe_permute 'permute'", "perm[2] = -3 is negative");
  check_bad_then_good(g, device, with("inv", i32({T * K}, {1, 5, 3, 7, -1, 4})), good,
                      "moe_combine 'combine'", "inv[3] = 7 is neither -1 nor a row in [0, 7)");
  check_bad_then_good(g, device, with("inv", i32({T * K}, {1, -2, 3, 6, -1, 4})), good,
                      "moe_combine 'combine'", "inv[1] = -2");
}

TEST_CASE(
    "opencl: grouped_matmul offsets that decrease, start negative or pass the rows are errors",
    "[opencl][errors]") {
  const std::string device = opencl_device();
  if (device.empty()) return;
  std::mt19937 rng(3);
  constexpr std::int64_t P = 20, H = 16, N = 12, E = 3;
  porta::Graph g;
  auto offsets = g.input("offsets", {E + 1}, DType::I32);
  g.output("y", g.name(g.grouped_matmul(g.input("rows", {P, H}, DType::F32),
                                        g.weight("w", random_f32({E, N, H}, rng)), offsets),
                       "experts"));
  const Tensor rows = random_f32({P, H}, rng);
  const Inputs good{{"rows", rows}, {"offsets", i32({E + 1}, {2, 9, 9, 17})}};
  const auto bad = [&](std::vector<std::int32_t> v) {
    return Inputs{{"rows", rows}, {"offsets", i32({E + 1}, std::move(v))}};
  };
  const std::string label = "grouped_matmul 'experts'";
  check_bad_then_good(g, device, bad({0, 5, 3, 20}), good, label,
                      "offsets must be non-decreasing, but offsets[2] = 3 < offsets[1] = 5");
  check_bad_then_good(g, device, bad({-1, 5, 6, 7}), good, label, "offsets[0] = -1 is negative");
  check_bad_then_good(g, device, bad({0, 5, 6, 21}), good, label,
                      "offsets[3] = 21 exceeds the 20 rows");
  // Decreasing into the last entry is reported as decreasing, as the reference checks order first.
  check_bad_then_good(g, device, bad({0, 5, 30, 25}), good, label, "offsets[3] = 25 < offsets[2]");
}

TEST_CASE("opencl: moe_experts checks its offsets, perm and inv", "[opencl][errors]") {
  const std::string device = opencl_device();
  if (device.empty()) return;
  std::mt19937 rng(4);
  constexpr std::int64_t T = 4, K = 2, H = 8, I = 6, E = 3, P = T * K;
  porta::Graph g;
  porta::MoeRoute route;
  route.top_k = K;
  route.offsets = g.input("offsets", {E + 1}, DType::I32);
  route.perm = g.input("perm", {P}, DType::I32);
  route.inv = g.input("inv", {T * K}, DType::I32);
  route.weights = g.input("weights", {T, K}, DType::F32);
  porta::MoeExpertWeights w;
  w.gate = g.weight("gate", random_f32({E, I, H}, rng));
  w.up = g.weight("up", random_f32({E, I, H}, rng));
  w.down = g.weight("down", random_f32({E, H, I}, rng));
  g.output("y", g.name(g.moe_experts(g.input("x", {T, H}, DType::F32), route, w), "moe"));
  // Tokens 0..3 to experts (0, 1), (1, 2), (0, 2), (1, 2): assignments grouped by expert.
  const Inputs good{{"x", random_f32({T, H}, rng)},
                    {"weights", random_f32({T, K}, rng)},
                    {"offsets", i32({E + 1}, {0, 2, 5, 8})},
                    {"perm", i32({P}, {0, 4, 1, 2, 6, 3, 5, 7})},
                    {"inv", i32({T * K}, {0, 2, 3, 5, 1, 6, 4, 7})}};
  auto with = [&](const char* name, Tensor t) {
    Inputs in = good;
    in[name] = std::move(t);
    return in;
  };
  const std::string label = "moe_experts 'moe'";
  check_bad_then_good(g, device, with("offsets", i32({E + 1}, {0, 2, 5, 9})), good, label,
                      "offsets[3] = 9 exceeds the 8 rows");
  check_bad_then_good(g, device, with("perm", i32({P}, {0, 4, 1, 2, 6, -7, 5, 7})), good, label,
                      "perm[5] = -7 is negative");
  check_bad_then_good(g, device, with("inv", i32({T * K}, {0, 2, 3, 8, 1, 6, 4, 7})), good, label,
                      "inv[3] = 8 is neither -1 nor a row in [0, 8)");
}

TEST_CASE("opencl: an attention cache_len beyond the cache is an error", "[opencl][errors]") {
  const std::string device = opencl_device();
  if (device.empty()) return;
  std::mt19937 rng(5);
  porta::Graph g;
  auto q = g.input("q", {1, 2, 8}, DType::F32);
  auto k = g.input("k", {1, 2, 8}, DType::F32);
  auto v = g.input("v", {1, 2, 8}, DType::F32);
  auto kc = g.input("kc", {4, 2, 8}, DType::F32);
  auto vc = g.input("vc", {4, 2, 8}, DType::F32);
  g.output("y", g.name(g.attention(q, k, v, kc, vc, g.input("len", {1}, DType::I32)), "attn"));
  Inputs good{{"q", random_f32({1, 2, 8}, rng)},  {"k", random_f32({1, 2, 8}, rng)},
              {"v", random_f32({1, 2, 8}, rng)},  {"kc", random_f32({4, 2, 8}, rng)},
              {"vc", random_f32({4, 2, 8}, rng)}, {"len", i32({1}, {3})}};
  Inputs bad = good;
  bad["len"] = i32({1}, {5});
  check_bad_then_good(g, device, bad, good, "attention 'attn'", "cache_len 5");
  bad["len"] = i32({1}, {-1});
  check_bad_then_good(g, device, bad, good, "attention 'attn'", "cache_len -1");
}

}  // namespace opencl_bad_input_tests

// Bad input on the cpu backend: what it cannot run is declined by supports() and placed on the
// reference (visibly), and data-dependent failures are porta::Errors naming the node.
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "../../backends/cpu/onednn_error.hpp"
#include "cpu/cpu_test_support.hpp"
#include "runtime/backend.hpp"
#include "core/error_check.hpp"

namespace cpu_errors_tests {

using namespace cpu_test;
using porta::DType;

TEST_CASE("cpu declines f16 and integer arithmetic; the runtime places them on the reference",
          "[cpu][errors]") {
  porta::Graph g;
  auto a = g.input("a", {4, 8}, DType::F16);
  auto b = g.input("b", {8, 3}, DType::F16);
  auto y = g.name(g.matmul(a, b), "half_mm");
  auto i = g.input("i", {3}, DType::I32);
  auto j = g.name(g.add(i, i), "int_add");
  auto f = g.name(g.silu(g.cast(y, DType::F32)), "act");
  g.output("y", f);
  g.output("j", j);

  auto exe = porta::compile(g, on("cpu", "reference"));
  std::map<std::string, porta::NodePlacement> placed;
  for (const auto& p : exe.placement()) placed[p.node] = p;
  CHECK(placed.at("half_mm").backend == "reference");
  CHECK_THAT(placed.at("half_mm").reason, Catch::Contains("f16"));
  CHECK(placed.at("int_add").backend == "reference");
  CHECK_THAT(placed.at("int_add").reason, Catch::Contains("i32"));
  CHECK(placed.at("act").backend == "cpu");
  CHECK_THAT(exe.summary(), Catch::Contains("half_mm (matmul) on reference"));

  const auto out =
      exe.run({{"a", porta::Tensor::from_f32({4, 8}, DType::F16, std::vector<float>(32, 0.5f))},
               {"b", porta::Tensor::from_f32({8, 3}, DType::F16, std::vector<float>(24, 0.25f))},
               {"i", porta::Tensor::from_vector<std::int32_t>({3}, {1, -2, 3})}});
  const float product = 8 * 0.5f * 0.25f;
  CHECK(out.at("y").to_f32()[0] == Approx(product / (1 + std::exp(-product))));
  CHECK(out.at("j").to_f32() == std::vector<float>{2, -4, 6});
  for (const auto& op : exe.profile().ops)
    if (op.node == "half_mm") CHECK(op.backend == "reference");

  // Without a fallback the refusal is an Unsupported error naming the op, node and shapes.
  try {
    porta::compile(g, on("cpu"));
    FAIL("compiled an f16 matmul on cpu without a fallback");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::Unsupported);
    CHECK_THAT(e.what(), Catch::Contains("matmul 'half_mm'") && Catch::Contains("f16[4, 8]"));
  }
}

TEST_CASE("cpu kernels report bad data as errors naming the node", "[cpu][errors]") {
  SECTION("embedding id out of range") {
    porta::Graph g;
    auto table =
        g.weight("table", porta::Tensor::from_f32({5, 4}, DType::F32, std::vector<float>(20, 1)));
    auto ids = g.input("ids", {3}, DType::I32);
    g.output("y", g.name(g.embedding(table, ids), "tok"));
    auto exe = porta::compile(g, on("cpu"));
    try {
      exe.run({{"ids", porta::Tensor::from_vector<std::int32_t>({3}, {0, 5, 1})}});
      FAIL("an out-of-range id was accepted");
    } catch (const porta::Error& e) {
      CHECK(e.code() == porta::ErrorCode::InvalidArgument);
      CHECK_THAT(e.what(), Catch::Contains("embedding 'tok'") && Catch::Contains("id 5"));
    }
  }
  SECTION("attention cache_len beyond the cache") {
    porta::Graph g;
    auto q = g.input("q", {1, 2, 8}, DType::F32);
    auto k = g.input("k", {1, 2, 8}, DType::F32);
    auto v = g.input("v", {1, 2, 8}, DType::F32);
    auto kc = g.input("kc", {4, 2, 8}, DType::F32);
    auto vc = g.input("vc", {4, 2, 8}, DType::F32);
    auto len = g.input("len", {1}, DType::I32);
    g.output("y", g.name(g.attention(q, k, v, kc, vc, len), "attn"));
    auto exe = porta::compile(g, on("cpu"));
    const auto zeros = [](porta::Shape s) {
      return porta::Tensor::zeros(std::move(s), DType::F32);
    };
    try {
      exe.run({{"q", zeros({1, 2, 8})},
               {"k", zeros({1, 2, 8})},
               {"v", zeros({1, 2, 8})},
               {"kc", zeros({4, 2, 8})},
               {"vc", zeros({4, 2, 8})},
               {"len", porta::Tensor::from_vector<std::int32_t>({1}, {5})}});
      FAIL("a cache_len beyond the cache was accepted");
    } catch (const porta::Error& e) {
      CHECK_THAT(e.what(), Catch::Contains("attention 'attn'") && Catch::Contains("cache_len 5"));
    }
  }
}

TEST_CASE("the cpu device reports its ISA, threads and bf16 strategy", "[cpu]") {
  const auto info = porta::device_info("cpu");
  CHECK(info.available);
  std::map<std::string, std::string> props(info.properties.begin(), info.properties.end());
  CHECK(props["library"].rfind("oneDNN", 0) == 0);
  CHECK(!props["isa"].empty());
  CHECK(std::stoi(props.at("threads")) >= 1);
  CHECK(props.count("bf16_matmul") == 1);
}

TEST_CASE("cpu declines tensors of more dimensions than oneDNN describes", "[cpu][errors]") {
  // Rank 13: every op of the catalogue accepts it, oneDNN's memory descriptors stop at 12.
  const porta::Shape shape(std::vector<std::int64_t>(13, 1));
  porta::Graph g;
  auto x = g.input("x", shape, DType::F32);
  g.output("y", g.name(g.silu(x), "act13"));
  auto exe = porta::compile(g, on("cpu", "reference"));
  REQUIRE(exe.placement().size() == 1);
  CHECK(exe.placement()[0].backend == "reference");
  CHECK_THAT(exe.placement()[0].reason, Catch::Contains("rank 13 exceeds oneDNN's 12"));
  const auto out = exe.run({{"x", porta::Tensor::from_vector<float>(shape, {2.0f})}});
  CHECK(out.at("y").to_f32()[0] == Approx(2.0 / (1.0 + std::exp(-2.0))));
  REQUIRE_PORTA_ERROR(porta::compile(g, on("cpu")), porta::ErrorCode::Unsupported, "silu 'act13'",
                      "rank 13");
}

TEST_CASE("a oneDNN failure becomes a porta::Error naming the op, node and shapes",
          "[cpu][errors]") {
  // Both catch sites of the cpu backend (lowering and running a node) hand a dnnl::error to
  // onednn_error; this is what the user then sees.
  porta::Graph g;
  auto a = g.input("a", {4, 8}, DType::F32);
  auto b = g.input("b", {8, 3}, DType::F32);
  g.output("y", g.name(g.matmul(a, b), "proj"));
  porta::detail::GraphState state;
  state.nodes.assign(g.nodes().begin(), g.nodes().end());
  for (std::size_t v = 0; v < g.num_values(); ++v)
    state.values.push_back(g.value(static_cast<porta::ValueId>(v)));
  const dnnl::error failure(dnnl_unimplemented, "could not create a primitive descriptor");
  const porta::Error e =
      porta::detail::cpu::onednn_error(state, state.nodes.back(), "run", failure);
  CHECK(e.code() == porta::ErrorCode::Backend);
  CHECK_THAT(e.what(),
             Catch::Contains("oneDNN could not run matmul 'proj'") &&
                 Catch::Contains("f32[4, 8]") && Catch::Contains("f32[8, 3]") &&
                 Catch::Contains("could not create a primitive descriptor") &&
                 Catch::Contains(fmt::format("dnnl_status_t {}", int{dnnl_unimplemented})));
}

}  // namespace cpu_errors_tests

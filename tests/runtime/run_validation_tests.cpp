// compile() and Executable::run() on the reference backend: input checking, outputs that are not
// computed by nodes, dead nodes, unknown backends.
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/device.hpp>
#include <porta/executable.hpp>
#include <porta/graph.hpp>

#include "core/error_check.hpp"

namespace runtime_run_validation_tests {

using porta::DType;
using porta::ErrorCode;
using porta::Graph;
using porta::Shape;
using porta::Tensor;

namespace {

Tensor f32(Shape shape, std::vector<float> values) {
  return Tensor::from_vector<float>(std::move(shape), values);
}

// y = x + b, both [2, 3].
struct AddGraph {
  Graph g;
  AddGraph() {
    auto x = g.input("x", {2, 3}, DType::F32);
    auto b = g.input("b", {2, 3}, DType::F32);
    g.output("y", x + b);
  }
};

}  // namespace

TEST_CASE("run() checks its inputs by name, shape and dtype", "[runtime]") {
  AddGraph graph;
  auto exe = porta::compile(graph.g);
  const Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = f32({2, 3}, {10, 20, 30, 40, 50, 60});

  const auto out = exe.run({{"x", x}, {"b", b}});
  CHECK(out.at("y").to_f32() == std::vector<float>{11, 22, 33, 44, 55, 66});

  REQUIRE_PORTA_ERROR(exe.run({{"x", x}}), ErrorCode::InvalidArgument, "'b'");
  REQUIRE_PORTA_ERROR(exe.run({{"x", x}, {"b", b}, {"extra", x}}), ErrorCode::InvalidArgument,
                      "'extra'");
  REQUIRE_PORTA_ERROR(exe.run({{"x", f32({3, 2}, {1, 2, 3, 4, 5, 6})}, {"b", b}}),
                      ErrorCode::ShapeMismatch, "'x'", "[3, 2]", "[2, 3]");
  REQUIRE_PORTA_ERROR(exe.run({{"x", x}, {"b", x.to(DType::F16)}}), ErrorCode::DTypeMismatch, "'b'",
                      "f16", "f32");
  // A failed run leaves the executable usable.
  CHECK(exe.run({{"x", b}, {"b", x}}).at("y").to_f32() ==
        std::vector<float>{11, 22, 33, 44, 55, 66});
}

TEST_CASE("non-finite inputs are rejected only when check_finite_inputs is set", "[runtime]") {
  AddGraph graph;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor x = f32({2, 3}, {1, 2, nan, 4, 5, 6});
  const Tensor b = f32({2, 3}, {0, 0, 0, 0, 0, 0});

  auto lenient = porta::compile(graph.g);
  const auto y = lenient.run({{"x", x}, {"b", b}}).at("y").to_f32();
  CHECK(std::isnan(y[2]));
  CHECK(y[5] == 6.0f);

  porta::CompileOptions options;
  options.check_finite_inputs = true;
  auto strict = porta::compile(graph.g, options);
  REQUIRE_PORTA_ERROR(strict.run({{"x", x}, {"b", b}}), ErrorCode::InvalidArgument, "'x'",
                      "element 2");
  REQUIRE_PORTA_ERROR(strict.run({{"x", b}, {"b", f32({2, 3}, {0, 0, 0, 0, 0, -inf})}}),
                      ErrorCode::InvalidArgument, "'b'", "element 5");
  CHECK(strict.run({{"x", b}, {"b", b}}).at("y").to_f32() == std::vector<float>(6, 0.0f));

  // Also for narrow floats: an f16 infinity.
  Graph half;
  auto h = half.input("h", {2}, DType::F16);
  half.output("y", half.silu(h));
  auto strict_half = porta::compile(half, options);
  const Tensor h_inf = Tensor::from_f32({2}, DType::F16, std::vector<float>{1.0f, 70000.0f});
  REQUIRE_PORTA_ERROR(strict_half.run({{"h", h_inf}}), ErrorCode::InvalidArgument, "'h'");
}

TEST_CASE("compile() rejects a graph without outputs and unknown backends", "[runtime]") {
  Graph empty;
  empty.input("x", {1}, DType::F32);
  REQUIRE_PORTA_ERROR(porta::compile(empty), ErrorCode::InvalidArgument, "no outputs");

  AddGraph graph;
  porta::CompileOptions options;
  options.backend = "nope";
  REQUIRE_PORTA_ERROR(porta::compile(graph.g, options), ErrorCode::NotFound, "'nope'", "reference");
  options.backend = "reference";
  options.fallback = "nope";
  options.pins["add_0"] = "nope:3";
  REQUIRE_PORTA_ERROR(porta::compile(graph.g, options), ErrorCode::NotFound, "nope:3", "reference");
  REQUIRE_PORTA_ERROR(porta::device_info("nope"), ErrorCode::NotFound, "nope");
  REQUIRE_PORTA_ERROR(porta::compile(graph.g, {.backend = "reference:7"}), ErrorCode::NotFound,
                      "7");

  REQUIRE_PORTA_ERROR(porta::Executable{}.run({}), ErrorCode::InvalidArgument, "empty");
}

TEST_CASE("outputs may be graph inputs or weights", "[runtime]") {
  Graph g;
  auto x = g.input("x", {3}, DType::F32);
  auto w = g.weight("w", f32({2}, {7, 8}));
  g.output("same_x", x);
  g.output("weight", w);
  g.output("doubled", x + x);
  auto exe = porta::compile(g);
  const Tensor input = f32({3}, {1, 2, 3});
  const auto out = exe.run({{"x", input}});
  REQUIRE(out.size() == 3);
  CHECK(out.at("same_x").to_f32() == std::vector<float>{1, 2, 3});
  CHECK(out.at("same_x").data() != input.data());  // a copy, not the caller's memory
  CHECK(out.at("weight").to_f32() == std::vector<float>{7, 8});
  CHECK(out.at("doubled").to_f32() == std::vector<float>{2, 4, 6});

  // Outputs only of graph inputs and weights: nothing to execute at all.
  Graph passthrough;
  auto p = passthrough.input("p", {2}, DType::I32);
  passthrough.output("p", p);
  passthrough.output("c", passthrough.weight("c", Tensor::from_vector<std::int32_t>({1}, {5})));
  auto pass = porta::compile(passthrough);
  const auto pass_out = pass.run({{"p", Tensor::from_vector<std::int32_t>({2}, {-1, 4})}});
  CHECK(pass_out.at("p").to_f32() == std::vector<float>{-1, 4});
  CHECK(pass_out.at("c").to_f32() == std::vector<float>{5});
  CHECK(pass.profile().ops.empty());
}

TEST_CASE("dead nodes are neither placed nor executed", "[runtime]") {
  Graph g;
  auto x = g.input("x", {4}, DType::F32);
  auto unused = g.name(g.exp(x), "unused_exp");
  g.name(g.sigmoid(unused), "unused_sigmoid");
  auto used = g.name(g.silu(x), "used_silu");
  g.output("y", used);
  auto exe = porta::compile(g);
  REQUIRE(exe.placement().size() == 1);
  CHECK(exe.placement()[0].node == "used_silu");
  exe.run({{"x", f32({4}, {0, 1, 2, 3})}});
  REQUIRE(exe.profile().ops.size() == 1);
  CHECK(exe.profile().ops[0].node == "used_silu");
  CHECK(exe.profile().ops[0].op == "silu");
  // silu's output is the graph output, written into the caller's tensor: the dead nodes' values
  // would be the only intermediates, and they are not planned.
  CHECK(exe.unplanned_bytes() == 0);
}

TEST_CASE("an executable runs many times with fresh inputs", "[runtime]") {
  AddGraph graph;
  auto exe = porta::compile(graph.g);
  for (int i = 0; i < 5; ++i) {
    const auto fi = static_cast<float>(i);
    const auto out = exe.run(
        {{"x", f32({2, 3}, {fi, fi, fi, fi, fi, fi})}, {"b", f32({2, 3}, {1, 2, 3, 4, 5, 6})}});
    CHECK(out.at("y").to_f32() ==
          std::vector<float>{fi + 1, fi + 2, fi + 3, fi + 4, fi + 5, fi + 6});
  }
  // Moving an executable keeps it working.
  porta::Executable moved = std::move(exe);
  CHECK(moved.run({{"x", f32({2, 3}, {0, 0, 0, 0, 0, 0})}, {"b", f32({2, 3}, {1, 1, 1, 1, 1, 1})}})
            .at("y")
            .to_f32() == std::vector<float>(6, 1.0f));
}

}  // namespace runtime_run_validation_tests

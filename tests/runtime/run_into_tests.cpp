// Executable::run(inputs, outputs): outputs computed into the caller's tensors. Checked on the
// reference backend and, where built, the cpu backend: values, that the memory written is the
// caller's, that such outputs take no arena space, and every way of giving a bad output tensor.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/device.hpp>
#include <porta/executable.hpp>
#include <porta/graph.hpp>

#include "core/error_check.hpp"

namespace runtime_run_into_tests {

using porta::DType;
using porta::ErrorCode;
using porta::Graph;
using porta::Shape;
using porta::Tensor;

namespace {

Tensor f32(Shape shape, std::vector<float> values) {
  return Tensor::from_vector<float>(std::move(shape), values);
}

std::vector<std::string> host_backends() {
  std::vector<std::string> names{"reference"};
  for (const auto& d : porta::list_devices())
    if (d.name == "cpu" && d.available) names.push_back("cpu");
  return names;
}

// sum = x + b; twice = sum * 2 (sum is both an output and read by a later node); the constant
// and the input are outputs too.
struct Chain {
  Graph g;
  Chain() {
    auto x = g.input("x", {2, 3}, DType::F32);
    auto b = g.input("b", {2, 3}, DType::F32);
    auto sum = x + b;
    g.output("sum", sum);
    g.output("twice", sum * g.weight("two", f32({1}, {2})));
    g.output("x_again", x);
    g.output("table", g.weight("table", f32({2}, {7, 8})));
  }
};

const Tensor kX = f32({2, 3}, {1, 2, 3, 4, 5, 6});
const Tensor kB = f32({2, 3}, {10, 20, 30, 40, 50, 60});

}  // namespace

TEST_CASE("run(inputs, outputs) writes every output into the caller's tensors", "[runtime]") {
  for (const auto& backend : host_backends()) {
    INFO(backend);
    Chain chain;
    auto exe = porta::compile(chain.g, {.backend = backend});
    std::map<std::string, Tensor> out{{"sum", Tensor::zeros({2, 3}, DType::F32)},
                                      {"twice", Tensor::zeros({2, 3}, DType::F32)},
                                      {"x_again", Tensor::zeros({2, 3}, DType::F32)},
                                      {"table", Tensor::zeros({2}, DType::F32)}};
    const void* sum_memory = out.at("sum").data();
    for (int call = 0; call < 2; ++call) {  // the second call reuses the same tensors
      exe.run({{"x", kX}, {"b", kB}}, out);
      CHECK(out.at("sum").data() == sum_memory);
      CHECK(out.at("sum").to_f32() == std::vector<float>{11, 22, 33, 44, 55, 66});
      CHECK(out.at("twice").to_f32() == std::vector<float>{22, 44, 66, 88, 110, 132});
      CHECK(out.at("x_again").to_f32() == kX.to_f32());
      CHECK(out.at("table").to_f32() == std::vector<float>{7, 8});
    }
    // Both node outputs are written in place: neither needs arena space.
    CHECK(exe.arena_bytes() == 0);
    // run(inputs) gives the same values in fresh tensors.
    const auto fresh = exe.run({{"x", kX}, {"b", kB}});
    CHECK(fresh.at("twice").to_f32() == out.at("twice").to_f32());
    CHECK(fresh.at("sum").data() != sum_memory);
  }
}

TEST_CASE("run(inputs, outputs) computes the outputs it is not given and drops them", "[runtime]") {
  for (const auto& backend : host_backends()) {
    INFO(backend);
    Chain chain;
    auto exe = porta::compile(chain.g, {.backend = backend});
    std::map<std::string, Tensor> only_twice{{"twice", Tensor::zeros({2, 3}, DType::F32)}};
    exe.run({{"x", kX}, {"b", kB}}, only_twice);
    CHECK(only_twice.at("twice").to_f32() == std::vector<float>{22, 44, 66, 88, 110, 132});
    exe.run({{"x", kB}, {"b", kX}}, {});  // nothing asked for: still a valid run
    exe.run({{"x", kB}, {"b", kB}}, only_twice);
    CHECK(only_twice.at("twice").to_f32() == std::vector<float>{40, 80, 120, 160, 200, 240});
  }
}

TEST_CASE("run(inputs, outputs) fills every name of an output value", "[runtime]") {
  Graph g;
  auto x = g.input("x", {3}, DType::F32);
  auto y = x * x;
  g.output("y", y);
  g.output("y_too", y);
  auto exe = porta::compile(g);
  std::map<std::string, Tensor> out{{"y", Tensor::zeros({3}, DType::F32)},
                                    {"y_too", Tensor::zeros({3}, DType::F32)}};
  exe.run({{"x", f32({3}, {1, 2, 3})}}, out);
  CHECK(out.at("y").to_f32() == std::vector<float>{1, 4, 9});
  CHECK(out.at("y_too").to_f32() == std::vector<float>{1, 4, 9});
  // Only the second name given: it is still filled.
  std::map<std::string, Tensor> second{{"y_too", Tensor::zeros({3}, DType::F32)}};
  exe.run({{"x", f32({3}, {2, 3, 4})}}, second);
  CHECK(second.at("y_too").to_f32() == std::vector<float>{4, 9, 16});
}

TEST_CASE("run(inputs, outputs) rejects bad output tensors by name", "[runtime][errors]") {
  Chain chain;
  auto exe = porta::compile(chain.g);
  const std::map<std::string, Tensor> inputs{{"x", kX}, {"b", kB}};
  REQUIRE_PORTA_ERROR(exe.run(inputs, {{"nope", Tensor::zeros({2, 3}, DType::F32)}}),
                      ErrorCode::InvalidArgument, "'nope'", "not an output", "sum");
  REQUIRE_PORTA_ERROR(exe.run(inputs, {{"sum", Tensor::zeros({3, 2}, DType::F32)}}),
                      ErrorCode::ShapeMismatch, "'sum'", "[3, 2]", "[2, 3]");
  REQUIRE_PORTA_ERROR(exe.run(inputs, {{"sum", Tensor::zeros({2, 3}, DType::F16)}}),
                      ErrorCode::DTypeMismatch, "'sum'", "f16", "f32");
  REQUIRE_PORTA_ERROR(exe.run(inputs, {{"sum", Tensor()}}), ErrorCode::ShapeMismatch, "'sum'");
  // Sharing memory with an input, or with another output, would let a kernel read what it had
  // just overwritten.
  REQUIRE_PORTA_ERROR(exe.run(inputs, {{"sum", kX}}), ErrorCode::InvalidArgument, "'sum'",
                      "input 'x'");
  Tensor shared = Tensor::zeros({2, 3}, DType::F32);
  REQUIRE_PORTA_ERROR(exe.run(inputs, {{"sum", shared}, {"twice", shared}}),
                      ErrorCode::InvalidArgument, "share memory");
  std::vector<std::uint8_t> bytes(64);
  const Tensor misaligned = Tensor::view(bytes.data() + 1, {2}, DType::F32);
  REQUIRE_PORTA_ERROR(exe.run(inputs, {{"table", misaligned}}), ErrorCode::InvalidArgument,
                      "'table'", "aligned");
  // Still usable after every rejection.
  std::map<std::string, Tensor> out{{"sum", Tensor::zeros({2, 3}, DType::F32)}};
  exe.run(inputs, out);
  CHECK(out.at("sum").to_f32() == std::vector<float>{11, 22, 33, 44, 55, 66});
}

}  // namespace runtime_run_into_tests

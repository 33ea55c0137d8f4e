// Placement across backends: support-driven fallback with reasons, pins, and transfers between
// memory domains, using the test backends of test_backends.hpp.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/executable.hpp>
#include <porta/graph.hpp>

#include "runtime/test_backends.hpp"
#include "core/error_check.hpp"

namespace runtime_placement_tests {

using porta::DType;
using porta::ErrorCode;
using porta::Graph;
using porta::Tensor;

namespace {

double silu(double v) { return v / (1.0 + std::exp(-v)); }

Tensor f32(porta::Shape shape, std::vector<float> values) {
  return Tensor::from_vector<float>(std::move(shape), values);
}

// add_in = x + y -> act = silu(add_in) -> add_out = act + y
struct AddSiluAdd {
  Graph g;
  porta::Value add_in, act, add_out;
  AddSiluAdd() {
    auto x = g.input("x", {2, 3}, DType::F32);
    auto y = g.input("y", {2, 3}, DType::F32);
    add_in = g.name(x + y, "add_in");
    act = g.name(g.silu(add_in), "act");
    add_out = g.name(act + y, "add_out");
    g.output("z", add_out);
  }
  static std::map<std::string, Tensor> inputs() {
    return {{"x", f32({2, 3}, {-2, -1, 0, 1, 2, 3})},
            {"y", f32({2, 3}, {0.5f, 0.25f, 1, -1, 0, 2})}};
  }
  static std::vector<double> expected() {
    const double x[] = {-2, -1, 0, 1, 2, 3};
    const double y[] = {0.5, 0.25, 1, -1, 0, 2};
    std::vector<double> z;
    for (int i = 0; i < 6; ++i) z.push_back(silu(x[i] + y[i]) + y[i]);
    return z;
  }
};

std::map<std::string, std::string> backend_by_node(const porta::Executable& exe) {
  std::map<std::string, std::string> out;
  for (const auto& p : exe.placement()) out[p.node] = p.backend;
  return out;
}

void check_values(const Tensor& got, const std::vector<double>& want) {
  const auto values = got.to_f32();
  REQUIRE(values.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(values[i] == Approx(want[i]).epsilon(1e-6).margin(1e-7));
  }
}

}  // namespace

TEST_CASE("nodes a backend lacks fall back to reference, with a reason", "[runtime][placement]") {
  auto test_add = runtime_test::install(std::make_shared<runtime_test::TestAddBackend>());
  AddSiluAdd graph;
  porta::CompileOptions options;
  options.backend = "test-add";
  auto exe = porta::compile(graph.g, options);

  const auto& placement = exe.placement();
  REQUIRE(placement.size() == 3);
  CHECK(placement[0].node == "add_in");
  CHECK(placement[0].op == "add");
  CHECK(placement[0].backend == "test-add");
  CHECK(placement[0].reason.empty());
  CHECK(placement[1].node == "act");
  CHECK(placement[1].op == "silu");
  CHECK(placement[1].backend == "reference");
  CHECK(placement[1].reason.find("test-add") != std::string::npos);
  CHECK(placement[2].node == "add_out");
  CHECK(placement[2].backend == "test-add");
  CHECK(exe.summary().find("act") != std::string::npos);

  const auto out = exe.run(AddSiluAdd::inputs());
  check_values(out.at("z"), AddSiluAdd::expected());
  CHECK(test_add->executed == 2);

  const auto& ops = exe.profile().ops;
  REQUIRE(ops.size() == 3);
  CHECK(ops[0].node == "add_in");
  CHECK(ops[0].backend == "test-add");
  CHECK(ops[1].node == "act");
  CHECK(ops[1].backend == "reference");
  CHECK(ops[2].node == "add_out");
  CHECK(ops[2].backend == "test-add");
  CHECK(exe.profile().transfers.empty());  // one memory domain: nothing to copy

  options.fallback = "";
  REQUIRE_PORTA_ERROR(porta::compile(graph.g, options), ErrorCode::Unsupported, "act", "silu",
                      "test-add");
}

TEST_CASE("a backend's honest 'no' for one shape sends only that node elsewhere",
          "[runtime][placement]") {
  runtime_test::install(std::make_shared<runtime_test::TestAddBackend>());
  Graph g;
  auto x = g.input("x", {2, 3}, DType::F32);
  auto row = g.input("row", {3}, DType::F32);
  auto broadcast = g.name(x + row, "broadcast_add");
  g.output("y", g.name(broadcast + x, "plain_add"));
  auto exe = porta::compile(g, {.backend = "test-add"});
  const auto where = backend_by_node(exe);
  CHECK(where.at("broadcast_add") == "reference");
  CHECK(where.at("plain_add") == "test-add");
  CHECK(exe.placement()[0].reason.find("[3]") != std::string::npos);
  const auto y =
      exe.run({{"x", f32({2, 3}, {1, 2, 3, 4, 5, 6})}, {"row", f32({3}, {10, 20, 30})}}).at("y");
  CHECK(y.to_f32() == std::vector<float>{12, 24, 36, 18, 30, 42});
}

TEST_CASE("pins route nodes: graph pins, exact and prefix option pins", "[runtime][placement]") {
  runtime_test::install(std::make_shared<runtime_test::TestAddBackend>());

  SECTION("an exact option pin") {
    AddSiluAdd graph;
    auto exe = porta::compile(graph.g, {.pins = {{"add_out", "test-add"}}});
    const auto where = backend_by_node(exe);
    CHECK(where.at("add_in") == "reference");
    CHECK(where.at("act") == "reference");
    CHECK(where.at("add_out") == "test-add");
    check_values(exe.run(AddSiluAdd::inputs()).at("z"), AddSiluAdd::expected());
  }
  SECTION("a prefix option pin") {
    AddSiluAdd graph;
    auto exe = porta::compile(graph.g, {.pins = {{"add*", "test-add"}}});
    const auto where = backend_by_node(exe);
    CHECK(where.at("add_in") == "test-add");
    CHECK(where.at("act") == "reference");
    CHECK(where.at("add_out") == "test-add");
    check_values(exe.run(AddSiluAdd::inputs()).at("z"), AddSiluAdd::expected());
  }
  SECTION("the more specific option pin wins") {
    AddSiluAdd graph;
    auto exe = porta::compile(
        graph.g, {.backend = "test-add", .pins = {{"add*", "reference"}, {"add_o*", "test-add"}}});
    const auto where = backend_by_node(exe);
    CHECK(where.at("add_in") == "reference");
    CHECK(where.at("add_out") == "test-add");
    auto exact = porta::compile(graph.g, {.pins = {{"add*", "test-add"}, {"add_in", "reference"}}});
    CHECK(backend_by_node(exact).at("add_in") == "reference");
    CHECK(backend_by_node(exact).at("add_out") == "test-add");
  }
  SECTION("a graph pin beats the option pins") {
    AddSiluAdd graph;
    graph.g.pin(graph.add_in, "test-add");
    CHECK(graph.g.node(graph.add_in.info().producer).backend_pin == "test-add");
    auto exe = porta::compile(graph.g, {.pins = {{"add*", "reference"}}});
    const auto where = backend_by_node(exe);
    CHECK(where.at("add_in") == "test-add");
    CHECK(where.at("add_out") == "reference");
    CHECK(graph.g.to_string().find("@test-add") != std::string::npos);
  }
  SECTION("a pin to a backend that cannot run the node falls back, or fails without a fallback") {
    AddSiluAdd graph;
    graph.g.pin(graph.act, "test-add");
    auto exe = porta::compile(graph.g);
    CHECK(backend_by_node(exe).at("act") == "reference");
    CHECK_FALSE(exe.placement()[1].reason.empty());
    REQUIRE_PORTA_ERROR(porta::compile(graph.g, {.fallback = ""}), ErrorCode::Unsupported, "act",
                        "test-add");
  }
  SECTION("pins to unknown backends, and pinning what is not a node") {
    AddSiluAdd graph;
    REQUIRE_PORTA_ERROR(porta::compile(graph.g, {.pins = {{"act", "nope"}}}), ErrorCode::NotFound,
                        "nope");
    auto x = graph.g.handle(graph.g.inputs()[0].second);
    REQUIRE_PORTA_ERROR(graph.g.pin(x, "test-add"), ErrorCode::InvalidArgument, "x");
  }
}

TEST_CASE("values cross memory domains only at backend edges", "[runtime][placement][transfer]") {
  auto device = runtime_test::install(std::make_shared<runtime_test::TestDeviceBackend>());
  // x -> scale = x * w -> shift = scale + x -> act = silu(shift); silu is not on test-dev.
  Graph g;
  auto x = g.input("x", {2, 4}, DType::F32);
  const std::vector<float> w_values = {1, 2, 3, 4, -1, -2, -3, -4};
  auto w = g.weight("w", f32({2, 4}, w_values));
  auto scale = g.name(x * w, "scale");
  auto shift = g.name(scale + x, "shift");
  g.output("y", g.name(g.silu(shift), "act"));

  auto exe = porta::compile(g, {.backend = "test-dev"});
  const auto where = backend_by_node(exe);
  CHECK(where.at("scale") == "test-dev");
  CHECK(where.at("shift") == "test-dev");
  CHECK(where.at("act") == "reference");
  // The weight went up once, at compile time, into a buffer of its own next to the arena.
  const int allocations_at_compile = device->allocations;
  CHECK(allocations_at_compile >= 1);
  CHECK(device->copy_in_calls == 1);
  CHECK(device->copy_in_bytes == 32);
  CHECK(device->copy_out_calls == 0);

  const std::vector<float> x_values = {0.5f, -1, 2, 0, 1, 1, -0.5f, 3};
  auto expected = [&](float scale_by) {
    std::vector<double> y;
    for (std::size_t i = 0; i < 8; ++i) {
      const double xi = static_cast<double>(x_values[i]) * scale_by;
      y.push_back(silu(xi * w_values[i] + xi));
    }
    return y;
  };
  for (int run = 1; run <= 3; ++run) {
    INFO("run " << run);
    std::vector<float> input = x_values;
    for (auto& v : input) v *= static_cast<float>(run);
    const auto out = exe.run({{"x", f32({2, 4}, input)}});
    check_values(out.at("y"), expected(static_cast<float>(run)));

    const auto& transfers = exe.profile().transfers;
    REQUIRE(transfers.size() == 2);
    CHECK(transfers[0].value == "x");
    CHECK(transfers[0].from == "host");
    CHECK(transfers[0].to == "test-dev");
    CHECK(transfers[0].bytes == 32);
    CHECK(transfers[1].value == "shift");
    CHECK(transfers[1].from == "test-dev");
    CHECK(transfers[1].to == "host");
    CHECK(transfers[1].bytes == 32);
    // Per run: x goes up, shift comes down; the weight is not uploaded again.
    CHECK(device->copy_in_calls == 1 + run);
    CHECK(device->copy_out_calls == run);
    CHECK(device->executed == 2 * run);

    const auto& ops = exe.profile().ops;
    REQUIRE(ops.size() == 3);
    CHECK(ops[0].backend == "test-dev");
    CHECK(ops[1].backend == "test-dev");
    CHECK(ops[2].backend == "reference");
  }
  CHECK(device->out_of_range == 0);
  CHECK(device->allocations == allocations_at_compile);  // runs allocate nothing on the device
  CHECK(exe.summary().find("test-dev") != std::string::npos);
}

TEST_CASE("a value going back and forth, and outputs living on the device",
          "[runtime][placement][transfer]") {
  auto device = runtime_test::install(std::make_shared<runtime_test::TestDeviceBackend>());
  // scale (device) -> act (host) -> back (device) reads act and x; `scale` is also an output.
  Graph g;
  auto x = g.input("x", {3}, DType::F32);
  auto w = g.weight("w", f32({3}, {2, 2, 2}));
  auto scale = g.name(x * w, "scale");
  auto act = g.name(g.silu(scale), "act");
  auto back = g.name(act + x, "back");
  g.output("back", back);
  g.output("scale", scale);
  auto exe = porta::compile(g, {.backend = "test-dev"});
  const auto out = exe.run({{"x", f32({3}, {1, -1, 0.5f})}});

  const double xs[] = {1, -1, 0.5};
  std::vector<double> want_back, want_scale;
  for (double v : xs) {
    want_scale.push_back(2 * v);
    want_back.push_back(silu(2 * v) + v);
  }
  check_values(out.at("back"), want_back);
  check_values(out.at("scale"), want_scale);

  const auto& transfers = exe.profile().transfers;
  REQUIRE(transfers.size() == 3);
  CHECK(
      (transfers[0].value == "x" && transfers[0].from == "host" && transfers[0].to == "test-dev"));
  CHECK((transfers[1].value == "scale" && transfers[1].from == "test-dev" &&
         transfers[1].to == "host"));
  CHECK((transfers[2].value == "act" && transfers[2].from == "host" &&
         transfers[2].to == "test-dev"));
  CHECK(device->out_of_range == 0);
}

TEST_CASE("values move between two devices through the host", "[runtime][placement][transfer]") {
  auto first =
      runtime_test::install(std::make_shared<runtime_test::TestDeviceBackend>("test-dev-a"));
  auto second =
      runtime_test::install(std::make_shared<runtime_test::TestDeviceBackend>("test-dev-b"));
  // product = x * x on device a; total = product + x on device b.
  Graph g;
  auto x = g.input("x", {4}, DType::F32);
  auto product = g.name(x * x, "product");
  auto total = g.pin(g.name(product + x, "total"), "test-dev-b");
  g.output("total", total);
  auto exe = porta::compile(g, {.backend = "test-dev-a"});
  const auto where = backend_by_node(exe);
  CHECK(where.at("product") == "test-dev-a");
  CHECK(where.at("total") == "test-dev-b");

  const auto out = exe.run({{"x", f32({4}, {1, 2, -3, 0.5f})}});
  CHECK(out.at("total").to_f32() == std::vector<float>{2, 6, 6, 0.75f});

  std::vector<std::string> moves;
  for (const auto& t : exe.profile().transfers)
    moves.push_back(t.value + ":" + t.from + "->" + t.to);
  CHECK(moves == std::vector<std::string>{"x:host->test-dev-a", "product:test-dev-a->test-dev-b",
                                          "x:host->test-dev-b"});
  CHECK(first->executed == 1);
  CHECK(second->executed == 1);
  CHECK(first->out_of_range == 0);
  CHECK(second->out_of_range == 0);
}

}  // namespace runtime_placement_tests

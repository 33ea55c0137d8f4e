// The template backend (backends/template/): a device with its own memory domain and three f32
// kernels. Built only with -DPORTA_BACKEND_TEMPLATE=ON. These tests double as the example of how
// to test a new backend: results against plain computations, placement with reasons, transfers
// only at domain edges, and the buffer and support contracts.
#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/device.hpp>
#include <porta/error.hpp>
#include <porta/executable.hpp>
#include <porta/graph.hpp>
#include <porta/tensor.hpp>

#include "runtime/backend.hpp"

namespace template_backend_tests {

namespace {

porta::Tensor f32_tensor(porta::Shape shape, const std::vector<float>& values) {
  return porta::Tensor::from_vector<float>(std::move(shape), values);
}

void check_close(const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    CHECK(std::abs(static_cast<double>(got[i]) - want[i]) <= 1e-5 * (1.0 + std::abs(want[i])));
  }
}

// The graph of the main test, computed in double by plain loops: a row-wise softmax over the last
// axis of silu((x + y) · x), then multiplied by y.
struct Expected {
  std::vector<double> act, out;
};

Expected expected_outputs(const std::vector<float>& x, const std::vector<float>& y,
                          std::size_t rows, std::size_t cols) {
  Expected e;
  e.act.resize(rows * cols);
  e.out.resize(rows * cols);
  for (std::size_t i = 0; i < rows * cols; ++i) {
    const double p = (static_cast<double>(x[i]) + y[i]) * x[i];
    e.act[i] = p / (1.0 + std::exp(-p));
  }
  for (std::size_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (std::size_t c = 0; c < cols; ++c) sum += std::exp(e.act[r * cols + c]);
    for (std::size_t c = 0; c < cols; ++c)
      e.out[r * cols + c] = std::exp(e.act[r * cols + c]) / sum * y[r * cols + c];
  }
  return e;
}

const porta::NodePlacement& placement_of(const porta::Executable& exe, const std::string& node) {
  for (const auto& p : exe.placement())
    if (p.node == node) return p;
  FAIL("node '" << node << "' is not in the placement");
  throw;  // unreachable: FAIL throws
}

porta::CompileOptions on_template() {
  porta::CompileOptions options;
  options.backend = "template";
  options.fallback = "reference";
  return options;
}

}  // namespace

TEST_CASE("template backend runs add, mul and silu and sends softmax to the fallback",
          "[template]") {
  constexpr std::size_t kRows = 2, kCols = 3;
  porta::Graph g;
  auto x = g.input("x", {2, 3}, porta::DType::F32);
  auto y = g.input("y", {2, 3}, porta::DType::F32);
  auto sum = g.name(g.add(x, y), "sum");
  auto product = g.name(g.mul(sum, x), "product");
  auto act = g.name(g.silu(product), "act");
  auto probs = g.name(g.softmax(act), "probs");
  auto out = g.name(g.mul(probs, y), "scaled");
  g.output("act", act);
  g.output("out", out);

  auto exe = porta::compile(g, on_template());

  SECTION("each node is where it should be, softmax with the template's reason") {
    for (const char* node : {"sum", "product", "act", "scaled"}) {
      INFO(node);
      CHECK(placement_of(exe, node).backend == "template");
      CHECK(placement_of(exe, node).reason.empty());
    }
    const auto& softmax = placement_of(exe, "probs");
    CHECK(softmax.backend == "reference");
    CHECK_THAT(softmax.reason, Catch::Contains("template") && Catch::Contains("softmax"));
  }

  SECTION("results match plain computations, run after run") {
    // Two runs with different inputs: the plans compiled once must not keep stale data.
    const std::vector<std::vector<float>> xs = {{0.5f, -1.0f, 2.0f, 0.0f, 1.5f, -0.25f},
                                                {-2.0f, 3.0f, 0.125f, 1.0f, -0.5f, 4.0f}};
    const std::vector<std::vector<float>> ys = {{1.0f, 2.0f, -0.5f, 3.0f, 0.25f, 1.0f},
                                                {0.5f, -1.5f, 2.0f, -1.0f, 1.0f, 0.75f}};
    for (std::size_t run = 0; run < xs.size(); ++run) {
      INFO("run " << run);
      auto result =
          exe.run({{"x", f32_tensor({2, 3}, xs[run])}, {"y", f32_tensor({2, 3}, ys[run])}});
      const auto want = expected_outputs(xs[run], ys[run], kRows, kCols);
      CHECK(result.at("act").shape() == porta::Shape{2, 3});
      check_close(result.at("act").to_f32(), want.act);
      check_close(result.at("out").to_f32(), want.out);
    }
  }

  SECTION("values cross between domains only at the edges, once each") {
    exe.run({{"x", f32_tensor({2, 3}, {1, 2, 3, 4, 5, 6})},
             {"y", f32_tensor({2, 3}, {6, 5, 4, 3, 2, 1})}});
    // In: both graph inputs to the device; out: silu's result to the host for softmax; back in:
    // softmax's result for the last mul. sum and product never leave the device.
    std::map<std::string, std::pair<std::string, std::string>> moved;
    for (const auto& t : exe.profile().transfers) {
      INFO("transfer of " << t.value);
      CHECK(moved.count(t.value) == 0);  // each value crosses once
      moved[t.value] = {t.from, t.to};
      CHECK(t.bytes == kRows * kCols * sizeof(float));
    }
    const std::map<std::string, std::pair<std::string, std::string>> want = {
        {"x", {"host", "template"}},
        {"y", {"host", "template"}},
        {"act", {"template", "host"}},
        {"probs", {"host", "template"}}};
    CHECK(moved == want);
  }

  SECTION("every op is timed on the backend that ran it") {
    exe.run({{"x", f32_tensor({2, 3}, {1, 2, 3, 4, 5, 6})},
             {"y", f32_tensor({2, 3}, {6, 5, 4, 3, 2, 1})}});
    std::map<std::string, std::string> timed;
    for (const auto& op : exe.profile().ops) {
      CHECK(op.time_us >= 0);
      timed[op.node] = op.backend;
    }
    const std::map<std::string, std::string> want = {{"sum", "template"},
                                                     {"product", "template"},
                                                     {"act", "template"},
                                                     {"probs", "reference"},
                                                     {"scaled", "template"}};
    CHECK(timed == want);
  }
}

TEST_CASE("template backend declines what it cannot run, with a reason", "[template]") {
  porta::CompileOptions no_fallback = on_template();
  no_fallback.fallback = "";

  SECTION("broadcasting") {
    porta::Graph g;
    auto a = g.input("a", {2, 3}, porta::DType::F32);
    auto row = g.input("row", {3}, porta::DType::F32);
    g.output("y", g.add(a, row));
    try {
      porta::compile(g, no_fallback);
      FAIL("a broadcasting add compiled on the template backend");
    } catch (const porta::Error& e) {
      CHECK(e.code() == porta::ErrorCode::Unsupported);
      CHECK_THAT(e.what(), Catch::Contains("broadcast") && Catch::Contains("[3]"));
    }
  }

  SECTION("a dtype other than f32 goes to the fallback") {
    porta::Graph g;
    auto a = g.input("a", {4}, porta::DType::F16);
    auto b = g.input("b", {4}, porta::DType::F16);
    g.output("y", g.name(g.mul(a, b), "half_mul"));
    auto exe = porta::compile(g, on_template());
    const auto& placed = placement_of(exe, "half_mul");
    CHECK(placed.backend == "reference");
    CHECK_THAT(placed.reason, Catch::Contains("f16") && Catch::Contains("f32 only"));
  }

  SECTION("an op without a kernel, and no fallback, is an error naming it") {
    porta::Graph g;
    auto a = g.input("a", {4}, porta::DType::F32);
    g.output("y", g.name(g.sigmoid(a), "gate"));
    try {
      porta::compile(g, no_fallback);
      FAIL("sigmoid compiled on the template backend");
    } catch (const porta::Error& e) {
      CHECK(e.code() == porta::ErrorCode::Unsupported);
      CHECK_THAT(e.what(), Catch::Contains("sigmoid") && Catch::Contains("gate"));
    }
  }
}

TEST_CASE("template backend's device memory is its own and range-checked", "[template]") {
  auto backend = porta::detail::get_backend("template");
  CHECK(backend->name() == "template");
  CHECK(backend->memory_domain() == "template");

  auto buffer = backend->allocate(16);
  REQUIRE(buffer->size() == 16);
  CHECK(buffer->host_ptr() == nullptr);  // reachable only through copies, like a device's memory

  const float in[2] = {1.5f, -2.25f};
  backend->copy_in(*buffer, 8, in, sizeof in);
  float out[2] = {0, 0};
  backend->copy_out(*buffer, 8, out, sizeof out);
  CHECK(out[0] == 1.5f);
  CHECK(out[1] == -2.25f);
  float zeros[2] = {7, 7};
  backend->copy_out(*buffer, 0, zeros, sizeof zeros);  // fresh memory reads as zero
  CHECK(zeros[0] == 0.0f);
  CHECK(zeros[1] == 0.0f);

  CHECK_THROWS_AS(backend->copy_in(*buffer, 12, in, sizeof in), porta::Error);
  CHECK_THROWS_AS(backend->copy_out(*buffer, 17, out, 0), porta::Error);
  CHECK_THROWS_AS(backend->copy_out(*buffer, 8, out, static_cast<std::size_t>(-4)), porta::Error);
  porta::detail::HostBuffer foreign(16);
  CHECK_THROWS_AS(backend->copy_in(foreign, 0, in, sizeof in), porta::Error);

  auto empty = backend->allocate(0);  // domains without intermediates get empty arenas
  CHECK(empty->size() == 0);
  backend->copy_in(*empty, 0, in, 0);
}

TEST_CASE("template device is listed honestly", "[template]") {
  bool found = false;
  for (const auto& d : porta::list_devices()) {
    if (d.name != "template") continue;
    found = true;
    CHECK(d.kind == "accelerator");
    CHECK(d.available);
    CHECK(d.memory_bytes == 0);
    CHECK(d.dtypes == std::vector<porta::DType>{porta::DType::F32});
  }
  CHECK(found);
  try {
    porta::device_info("template:1");
    FAIL("template:1 exists");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::NotFound);
    CHECK_THAT(e.what(), Catch::Contains("'1'"));
  }
}

}  // namespace template_backend_tests

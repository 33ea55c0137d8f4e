// Post-op fusion: matmul epilogues folded into the primitive give the reference's values, show in
// the profile as fused, and are not fused where an intermediate is needed elsewhere.
#include <map>

#include "cpu/cpu_test_support.hpp"

namespace cpu_fusion_tests {

using namespace cpu_test;
using porta::DType;
using porta::Value;

namespace {

// node name -> its profile entry, after one run on cpu.
std::map<std::string, porta::OpProfile> profile_of(const Build& build, double& error) {
  error = cpu_error(build, DType::F32);
  CaseBuilder b = make_case(build, DType::F32, DType::F32, 7);
  auto exe = porta::compile(b.graph, on("cpu"));
  exe.run(b.inputs);
  std::map<std::string, porta::OpProfile> ops;
  for (const auto& op : exe.profile().ops) ops[op.node] = op;
  return ops;
}

}  // namespace

TEST_CASE("matmul + bias + silu + residual runs as one fused primitive", "[cpu][fusion]") {
  const Build build = [](CaseBuilder& b) -> std::vector<Value> {
    auto x = b.input("x", {9, 48});
    auto residual = b.input("r", {9, 32});
    auto y = b.graph.name(b.graph.matmul(x, b.weight("w", {32, 48}), {false, true}), "proj");
    y = b.graph.name(b.graph.add(y, b.weight("bias", {32})), "bias");
    y = b.graph.name(b.graph.silu(y), "act");
    y = b.graph.name(b.graph.add(residual, y), "residual");  // product as the second operand
    y = b.graph.name(b.graph.mul(y, b.graph.scalar(0.5f, b.dtype)), "scale");
    return {b.graph.name(b.graph.gelu(y, {porta::GeluApproximation::Tanh}), "gelu")};
  };
  double error = 0;
  const auto ops = profile_of(build, error);
  CHECK(error <= 2e-5);
  REQUIRE(ops.size() == 6);
  CHECK(ops.at("proj").metrics.at("fused_ops") == 5);
  for (const char* name : {"bias", "act", "residual", "scale", "gelu"}) {
    INFO(name);
    CHECK(ops.at(name).time_us == 0);
    CHECK(ops.at(name).backend == "cpu");
    CHECK(ops.at(name).metrics.count("fused_into") == 1);
  }
  CHECK(error <= 2e-5);
  // bf16 activations and weights: fused where the ISA has bf16 matmul, widened otherwise.
  CHECK(cpu_error(build, DType::BF16) <= tolerance(DType::BF16));
}

TEST_CASE("fusion stops where the intermediate has another consumer or is an output",
          "[cpu][fusion]") {
  SECTION("second consumer") {
    const Build build = [](CaseBuilder& b) -> std::vector<Value> {
      auto y = b.graph.name(b.graph.matmul(b.input("x", {4, 8}), b.weight("w", {8, 6})), "mm");
      auto act = b.graph.name(b.graph.silu(y), "act");
      return {b.graph.name(b.graph.add(act, y), "sum")};  // y is read twice
    };
    double error = 0;
    const auto ops = profile_of(build, error);
    CHECK(error <= 2e-5);
    CHECK(ops.at("mm").metrics.count("fused_ops") == 0);
    CHECK(ops.at("act").metrics.count("fused_into") == 0);
  }
  SECTION("graph output") {
    const Build build = [](CaseBuilder& b) -> std::vector<Value> {
      auto y = b.graph.name(b.graph.matmul(b.input("x", {4, 8}), b.weight("w", {8, 6})), "mm");
      return {y, b.graph.name(b.graph.silu(y), "act")};
    };
    double error = 0;
    const auto ops = profile_of(build, error);
    CHECK(error <= 2e-5);
    CHECK(ops.at("act").metrics.count("fused_into") == 0);
  }
  SECTION("an operand that would widen the product is not fused") {
    const Build build = [](CaseBuilder& b) -> std::vector<Value> {
      auto y = b.graph.name(b.graph.matmul(b.input("x", {4, 8}), b.weight("w", {8, 6})), "mm");
      return {b.graph.name(b.graph.add(y, b.input("z", {3, 4, 6})), "wide")};
    };
    double error = 0;
    const auto ops = profile_of(build, error);
    CHECK(error <= 2e-5);
    CHECK(ops.at("wide").metrics.count("fused_into") == 0);
  }
}

TEST_CASE("a fused chain stays right when its output reuses the matmul input's memory",
          "[cpu][fusion]") {
  // A stack of norm -> matmul -> +bias (-> silu) blocks: the planner reuses the bytes of each
  // block's input (dead after its matmul) for later values. With norm at step s, matmul at s+1
  // and the bias add at s+2, the add's output gets exactly the norm output's bytes (same size,
  // lifetimes [s, s+1] and [s+2, ...]), so the fused kernel must not write where it reads.
  const Build build = [](CaseBuilder& b) -> std::vector<Value> {
    Value h = b.input("x", {6, 32});
    for (int layer = 0; layer < 4; ++layer) {
      auto n = b.graph.rms_norm(h, b.weight(fmt::format("n{}", layer), {32}, 0.5, 1.5));
      auto y = b.graph.matmul(n, b.weight(fmt::format("w{}", layer), {32, 32}, -0.3f, 0.3f));
      h = b.graph.add(y, b.weight(fmt::format("b{}", layer), {32}));
      if (layer % 2 == 1) h = b.graph.silu(h);
    }
    return {h};
  };
  CHECK(cpu_error(build, DType::F32) <= 2e-5);
  CHECK(cpu_error(build, DType::BF16) <= tolerance(DType::BF16));
}

TEST_CASE("a SwiGLU MLP fuses silu and the product into its two matmuls", "[cpu][fusion]") {
  for (bool gate_first : {true, false}) {
    INFO("gate matmul first: " << gate_first);
    const Build build = [gate_first](CaseBuilder& b) -> std::vector<Value> {
      // 16 rows: at most 8 (decode) go to the weight-streaming kernel, which takes no post-ops.
      auto x = b.input("x", {16, 24});
      auto w_gate = b.weight("wg", {40, 24}, -0.5f, 0.5f);
      auto w_up = b.weight("wu", {40, 24}, -0.5f, 0.5f);
      Value gate, up;
      if (gate_first) {
        gate = b.graph.name(b.graph.matmul(x, w_gate, {false, true}), "gate");
        up = b.graph.name(b.graph.matmul(x, w_up, {false, true}), "up");
      } else {
        up = b.graph.name(b.graph.matmul(x, w_up, {false, true}), "up");
        gate = b.graph.name(b.graph.matmul(x, w_gate, {false, true}), "gate");
      }
      auto h = b.graph.name(b.graph.swiglu(gate, up), "act");
      return {b.graph.matmul(h, b.weight("wd", {24, 40}, -0.5f, 0.5f), {false, true})};
    };
    double error = 0;
    const auto ops = profile_of(build, error);
    CHECK(error <= 2e-5);
    CHECK(ops.at("act").time_us == 0);
    CHECK(ops.at("act").metrics.count("fused_into") == 1);
    CHECK(cpu_error(build, DType::BF16) <= tolerance(DType::BF16));
  }
}

}  // namespace cpu_fusion_tests

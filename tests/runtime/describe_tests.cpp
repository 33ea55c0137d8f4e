// Executable::describe() and PORTA_VERBOSE: each node's line names the implementation its backend
// chose (oneDNN's implementation, the CLBlast routine, the npu-sim tiling, a reference kernel), and
// nodes fused into another say into which.
#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>

#include <porta/device.hpp>
#include <porta/executable.hpp>
#include <porta/graph.hpp>
#include <porta/quant.hpp>

#include "model/model_test_support.hpp"
#include "tools/cli_support.hpp"

namespace runtime_describe_tests {

namespace {

bool available(const std::string& backend) {
  for (const auto& d : porta::list_devices())
    if (d.name == backend) return d.available;
  return false;
}

// x[4, 64] · w[64, 32], then silu: the matmul and the activation the cpu backend fuses.
porta::Executable compile_matmul_silu(const std::string& backend) {
  porta::Graph g;
  auto x = g.input("x", {4, 64}, porta::DType::F32);
  auto w = g.weight("w", porta::Tensor::zeros({64, 32}, porta::DType::F32));
  g.output("y", g.name(g.silu(g.name(g.matmul(x, w), "proj")), "act"));
  return porta::compile(g, {.backend = backend, .fallback = ""});
}

std::string line_of(const std::string& text, const std::string& node) {
  std::size_t at = text.find(" " + node + " ");
  REQUIRE(at != std::string::npos);
  const std::size_t begin = text.rfind('\n', at) + 1;
  return text.substr(begin, text.find('\n', at) - begin);
}

}  // namespace

TEST_CASE("describe() names each node's chosen implementation", "[runtime][describe]") {
  SECTION("reference") {
    const auto text = compile_matmul_silu("reference").describe();
    CHECK_THAT(line_of(text, "proj"), Catch::Contains("reference::run_matmul"));
    CHECK_THAT(line_of(text, "act"), Catch::Contains("f32[4, 32]"));
  }
  if (available("cpu")) {
    SECTION("cpu: the oneDNN implementation, and the fused activation") {
      const auto exe = compile_matmul_silu("cpu");
      const auto text = exe.describe();
      CHECK_THAT(line_of(text, "proj"), Catch::Contains("oneDNN matmul"));
      CHECK_THAT(line_of(text, "act"), Catch::Contains("fused into proj"));
      for (const auto& p : exe.placement()) CHECK_FALSE(p.implementation.empty());
    }
  }
  if (available("opencl:0")) {
    SECTION("opencl: the CLBlast routine and porta's kernel") {
      const auto text = compile_matmul_silu("opencl:0").describe();
      CHECK_THAT(line_of(text, "proj"), Catch::Contains("CLBlast Gemm"));
      CHECK_THAT(line_of(text, "act"), Catch::Contains("porta kernel unary"));
    }
  }
  if (available("npu-sim:910b2")) {
    SECTION("npu-sim: the tile program") {
      const auto text = compile_matmul_silu("npu-sim:910b2").describe();
      CHECK_THAT(line_of(text, "proj"), Catch::Contains("cube"));
    }
  }
}

#ifdef PORTA_CLI_PATH
TEST_CASE("PORTA_VERBOSE=1 porta run prints the plan with the chosen implementations",
          "[runtime][describe][cli]") {
  const std::string dir = porta::test::model_tmpdir("describe_verbose");
  const auto gen =
      porta::test::run_porta("gen-checkpoint --kind deepseek_v3 --seed 5 --out " + dir);
  INFO(gen.output);
  REQUIRE(gen.exit_code == 0);
  const std::string backend = available("cpu") ? "cpu" : "reference";
  ::setenv("PORTA_VERBOSE", "1", 1);
  const auto run = porta::test::run_porta("run --model " + dir + " --backend " + backend +
                                          " --prompt-ids 1,2,3 --max-new-tokens 1");
  ::unsetenv("PORTA_VERBOSE");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, Catch::Contains("porta: plan of"));
  // cpu: bf16 weights are streamed by porta's weight-rows kernel, f32 ones go to oneDNN.
  if (backend == "cpu")
    CHECK_THAT(run.output,
               Catch::Contains("oneDNN matmul") || Catch::Contains("weight-rows matmul"));
  else
    CHECK_THAT(run.output, Catch::Contains("reference::run_"));
  const auto quiet = porta::test::run_porta("run --model " + dir + " --backend " + backend +
                                            " --prompt-ids 1,2,3 --max-new-tokens 1");
  CHECK_THAT(quiet.output, !Catch::Contains("porta: plan of"));
}
#endif

TEST_CASE("cpu runs tiny nodes on one thread, never a node that streams weights",
          "[runtime][describe]") {
  if (!available("cpu")) return;
  // Decode-shaped: one token. The add's output is 16 KB (one thread: a barrier costs more); the
  // W8A8 projection's output is as small but it reads 8 MB of int8 weights, which two threads
  // stream at twice one's rate.
  porta::Graph g;
  auto x = g.input("x", {1, 2048}, porta::DType::F32);
  const auto w = porta::quantize(porta::Tensor::zeros({4096, 2048}, porta::DType::F32),
                                 porta::QuantScheme{});
  auto y = g.name(g.matmul(x, g.weight("w", w), porta::ActivationQuant::DynamicInt8), "proj");
  g.output("y", g.name(g.add(y, y), "residual"));
  const auto text = porta::compile(g, {.backend = "cpu", .fallback = ""}).describe();
  CHECK_THAT(line_of(text, "residual"), Catch::Contains("on one thread"));
  CHECK_THAT(line_of(text, "proj"), !Catch::Contains("on one thread"));
}

}  // namespace runtime_describe_tests

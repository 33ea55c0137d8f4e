// `porta sim` end to end: the reports, the side-by-side of two profiles, the pipe trace, and a
// clear message with a non-zero exit for every kind of bad input.
#ifdef PORTA_CLI_PATH

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <porta/model/checkpoint_gen.hpp>
#include "tools/cli_support.hpp"

namespace npu_sim_cli_tests {

namespace {

using porta::test::run_porta;

std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "npu_sim_cli";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST_CASE("porta sim times a MoE layer on two profiles and writes the pipe trace", "[npu-sim]") {
  const auto trace = scratch("moe_trace.json");
  std::filesystem::remove(trace);
  const auto r = run_porta("sim --moe-layer --tokens 64 --compare h20 --trace " + trace);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("moe_experts") && Catch::Contains("busiest pipe") &&
                           Catch::Contains("attainable") && Catch::Contains("side by side") &&
                           Catch::Contains("h20 / 910b2"));
  std::ifstream in(trace);
  std::stringstream text;
  text << in.rdbuf();
  const auto json = nlohmann::json::parse(text.str());
  int tracks = 0;
  for (const auto& e : json["traceEvents"]) tracks += e["name"] == "thread_name";
  CHECK(tracks > 24 * 4);  // every cube core's four pipes at least
}

TEST_CASE("porta sim times one matmul and one op, side by side", "[npu-sim]") {
  auto r = run_porta("sim --matmul 4096x4096x4096 --compare h20");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("910b2: matmul 4096x4096x4096") &&
                           Catch::Contains("h20: matmul") && Catch::Contains("TFLOP/s"));
  r = run_porta("sim --op softmax --shape 512x2048 --dtype bf16 -p 910b4");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("softmax") && Catch::Contains("910b4"));
  r = run_porta("sim -p 910a --print-profile");
  CHECK(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.output)["cores"]["cube"] == 32);
}

TEST_CASE("porta sim times the MoE block of a model's config", "[npu-sim]") {
  const auto config = scratch("config.json");
  std::ofstream(config) << porta::model::tiny_config_json("deepseek_v2");
  const auto r = run_porta("sim --model " + config + " --tokens 32 --dtype bf16");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("moe_router") && Catch::Contains("moe_experts"));
}

TEST_CASE("porta sim rejects bad input with a message", "[npu-sim]") {
  auto r = run_porta("sim --matmul 64x64x64 -p 910z");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("910z") && Catch::Contains("910b2"));
  const auto bad = scratch("bad_profile.json");
  std::ofstream(bad) << R"({"name": "x", "hbm": {"gb": 1, "tbps": -2}, "launch_overhead_us": 1})";
  r = run_porta("sim --matmul 64x64x64 -p file=" + bad);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("hbm.tbps"));
  r = run_porta("sim --matmul 64x64");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("three sizes"));
  r = run_porta("sim --matmul 64xfoox64");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("foo"));
  r = run_porta("sim");
  CHECK(r.exit_code == 2);
  r = run_porta("sim --op matmul --shape 4x4");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("--matmul"));
  r = run_porta("sim --op softmax");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("--shape"));
  r = run_porta("sim --model /no/such/config.json");
  CHECK(r.exit_code == 1);
}

#endif

}  // namespace npu_sim_cli_tests

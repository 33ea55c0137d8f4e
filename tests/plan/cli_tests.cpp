// `porta plan` end to end: a plan in text and JSON, a side-by-side, and bad input.
#ifdef PORTA_CLI_PATH

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tools/cli_support.hpp"

namespace plan_cli_tests {

using porta::test::run_porta;

TEST_CASE("porta plan prints an R1 decode plan and compares two clusters", "[plan][cli]") {
  const auto text = run_porta("plan --model deepseek-r1 --cluster atlas800-a2 --chips 64 "
                              "--dtype w8a8 --tpot-ms 100 --compare cloudmatrix384");
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.output, Catch::Contains("atlas800-a2"));
  CHECK_THAT(text.output, Catch::Contains("cloudmatrix384"));
  CHECK_THAT(text.output, Catch::Contains("TPOT"));
  CHECK_THAT(text.output, Catch::Contains("KV cache"));

  const auto json = run_porta("plan --model deepseek-r1 --cluster h800-node --chips 32 "
                              "--phase prefill --ttft-ms 2000 --format json");
  REQUIRE(json.exit_code == 0);
  const auto j = nlohmann::json::parse(json.output);
  CHECK(j["feasible"] == true);
  CHECK(j["ttft_ms"].get<double>() <= 2000);
  CHECK(j["parallelism"]["chips"] == 32);
  CHECK(j["memory_gb"]["total"].get<double>() <= 80);
}

TEST_CASE("porta plan rejects bad input with a message", "[plan][cli]") {
  auto r = run_porta("plan --model deepseek-r1 --cluster nowhere --chips 8");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("no cluster profile 'nowhere'"));
  r = run_porta("plan --model deepseek-r1 --cluster atlas800-a2 --chips 64 --dtype fp8");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("no fp8"));
  r = run_porta("plan --model deepseek-r1 --cluster h800-node");
  CHECK(r.exit_code == 2);
  r = run_porta("plan --model deepseek-r1 --cluster h800-node --chips 8 --phase train");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("--phase"));
  r = run_porta("plan --list");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("deepseek-2xr1"));
}

#endif  // PORTA_CLI_PATH

}  // namespace plan_cli_tests

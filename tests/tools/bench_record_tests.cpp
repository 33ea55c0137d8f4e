// The pieces of `porta bench` records that numbers depend on, tested directly: order statistics,
// the normalised error, and the JSON round trip that --compare relies on. The source is compiled
// into the test (it is part of the porta program, not of libporta).
#include <cmath>

#include <catch2/catch.hpp>

#include "../../tools/porta/bench_record.cpp"

namespace tools_bench_record_tests {

using namespace porta;
using namespace porta::cli::bench;

TEST_CASE("bench statistics: median, quartiles, min, max and mean", "[bench]") {
  const Stats odd = summarise({5, 1, 4, 2, 3});
  CHECK(odd.count == 5);
  CHECK(odd.median == 3);
  CHECK(odd.min == 1);
  CHECK(odd.max == 5);
  CHECK(odd.p25 == 2);
  CHECK(odd.p75 == 4);
  CHECK(odd.mean == 3);
  // Even counts interpolate between the middle ranks.
  const Stats even = summarise({10, 40, 20, 30});
  CHECK(even.median == 25);
  CHECK(even.p25 == Approx(17.5));
  CHECK(even.p75 == Approx(32.5));
  const Stats one = summarise({7});
  CHECK((one.median == 7 && one.min == 7 && one.max == 7 && one.p25 == 7 && one.p75 == 7));
  CHECK(summarise({}).count == 0);
}

TEST_CASE("bench error: max |test - ref| / max |ref|", "[bench]") {
  const auto want = Tensor::from_vector<float>({4}, {1, -4, 2, 0});
  CHECK(normalised_error(want, want) == 0);
  // The worst difference is 0.5, the largest reference magnitude 4.
  CHECK(normalised_error(Tensor::from_vector<float>({4}, {1.5f, -4, 2, 0.1f}), want) ==
        Approx(0.125));
  CHECK(std::isinf(normalised_error(Tensor::from_vector<float>({4}, {1, NAN, 2, 0}), want)));
  CHECK(std::isinf(normalised_error(Tensor::from_vector<float>({2, 2}, {1, -4, 2, 0}), want)));
  // An all-zero reference is compared unnormalised.
  const auto zeros = Tensor::from_vector<float>({2}, {0, 0});
  CHECK(normalised_error(Tensor::from_vector<float>({2}, {0, 0.25f}), zeros) == Approx(0.25));
}

TEST_CASE("bench records round-trip through JSON", "[bench]") {
  Record r;
  r.case_id = "moe_layer:tiny";
  r.case_kind = "layer";
  r.dtype = "bf16";
  r.tokens = 512;
  r.backend = "npu-sim:910b2";
  r.device_kind = "simulator";
  r.wall = summarise({2, 3, 4});
  r.gflops = 12.5;
  r.device_ms = 0.25;
  r.device_gflops = 1000;
  r.max_error = INFINITY;
  r.metrics = {{"compute_utilization", 0.5}};
  r.build = build_info();
  r.host = host_info();
  const auto j = to_json(r);
  CHECK(j.at("key") == "moe_layer:tiny/bf16/T=512");
  CHECK(j.at("max_error") == "inf");  // JSON has no infinity
  const Record back = record_from_json(nlohmann::json::parse(j.dump()), "test");
  CHECK(back.key() == r.key());
  CHECK(back.backend == r.backend);
  CHECK(back.device_kind == "simulator");
  CHECK(back.status == Status::Ok);
  CHECK(back.wall.median == 3);
  CHECK(back.wall.min == 2);
  CHECK(back.wall.max == 4);
  CHECK(back.device_ms == 0.25);
  CHECK(std::isinf(*back.max_error));
  CHECK(back.build.git_commit == r.build.git_commit);
  CHECK(back.host.cpu == r.host.cpu);
  CHECK_THROWS_WITH(record_from_json(nlohmann::json::parse(R"({"case": "x"})"), "a.json"),
                    Catch::Contains("a.json") && Catch::Contains("no field 'dtype'"));
  CHECK_THROWS_AS(record_from_json(nlohmann::json::array(), "a.json"), porta::Error);
}

}  // namespace tools_bench_record_tests

// Cluster profiles and model configs: the built-ins load with the figures docs/deployment-sim.md
// cites, and every kind of bad input is a porta::Error naming what was wrong.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <porta/error.hpp>
#include <porta/plan.hpp>

namespace plan_profiles_tests {

using namespace porta::plan;

namespace {

// The h800-node profile as JSON, for mutating into bad ones.
nlohmann::json good_profile() {
  return nlohmann::json::parse(R"({
    "name": "test", "chips_per_node": 8,
    "chip": {"name": "x", "bf16_tflops": 100, "hbm_gb": 64, "hbm_tbps": 2,
             "gemm_efficiency": 0.8, "attention_efficiency": 0.6, "hbm_efficiency": 0.9},
    "scale_up": {"name": "nv", "topology": "switch", "gbps": 200},
    "scale_out": {"name": "ib", "gbps": 50}
  })");
}

std::string error_of(const nlohmann::json& j) {
  try {
    parse_cluster(j.dump(), "'t.json'");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::CorruptFile);
    return e.what();
  }
  FAIL("no error for " << j.dump());
  return "";
}

}  // namespace

TEST_CASE("built-in cluster profiles carry the cited figures", "[plan][profile]") {
  const auto names = builtin_clusters();
  CHECK(names.size() == 4);
  const ClusterProfile a2 = load_cluster("atlas800-a2");
  // 910B2 from npu-sim's profile: 24 cube cores × 8192 flops/cycle × 1.8 GHz, int8 twice that.
  CHECK(a2.chip.bf16_tflops == Approx(24 * 8192 * 1.8e9 / 1e12));
  CHECK(a2.chip.int8_tops == Approx(2 * a2.chip.bf16_tflops));
  CHECK(a2.chip.fp8_tflops == 0);
  CHECK(a2.chip.hbm_gb == 64);
  CHECK(a2.scale_up_topology == Topology::FullMesh);
  CHECK(a2.scale_up_chip_gbps(7) == Approx(7 * 28));
  const ClusterProfile h20 = load_cluster("H20-NODE");  // names are case-insensitive
  CHECK(h20.chip.bf16_tflops == 148);
  CHECK(h20.chip.fp8_tflops == 296);
  CHECK(h20.chip.hbm_gb == 96);
  const ClusterProfile h800 = load_cluster("h800-node");
  CHECK(h800.scale_up.gbps == 200);  // 400 GB/s NVLink, bidirectional
  CHECK(h800.scale_out.gbps == 50);  // one 400 Gb/s NIC per GPU
  CHECK(load_cluster("cloudmatrix384").scale_up_domain == 384);
}

TEST_CASE("a user's profile file works and bad fields are named", "[plan][profile]") {
  CHECK(parse_cluster(good_profile().dump(), "t").chip.bf16_tflops == 100);

  auto j = good_profile();
  j["chip"].erase("gemm_efficiency");
  CHECK_THAT(error_of(j), Catch::Contains("field 'chip.gemm_efficiency' is missing"));
  j = good_profile();
  j["chip"]["hbm_tbps"] = -1;
  CHECK_THAT(error_of(j), Catch::Contains("'chip.hbm_tbps' must be positive"));
  j = good_profile();
  j["chip"]["gemm_efficiency"] = 1.5;
  CHECK_THAT(error_of(j), Catch::Contains("'chip.gemm_efficiency' must be a fraction"));
  j = good_profile();
  j["scale_up"]["topology"] = "torus";
  CHECK_THAT(error_of(j), Catch::Contains("'scale_up.topology' must be"));
  j = good_profile();
  j["scale_up"]["domain"] = 12;
  CHECK_THAT(error_of(j), Catch::Contains("'scale_up.domain' (12) must be a multiple"));
  j = good_profile();
  j["chips_per_node"] = "eight";
  CHECK_THAT(error_of(j), Catch::Contains("'chips_per_node' must be an integer"));
  j = good_profile();
  j.erase("scale_out");
  CHECK_THAT(error_of(j), Catch::Contains("'scale_out' is missing"));
  j = good_profile();
  j["chip"] = {{"npu_sim_profile", "910z"}, {"gemm_efficiency", 0.9}, {"attention_efficiency", 0.5},
               {"hbm_efficiency", 0.7}};
  CHECK_THAT(error_of(j), Catch::Contains("names no npu-sim profile '910z'"));

  try {
    parse_cluster("{ not json", "'broken.json'");
    FAIL("no error");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::CorruptFile);
    CHECK_THAT(e.what(), Catch::Contains("broken.json"));
  }
  try {
    load_cluster("dgx-b200");
    FAIL("no error");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::NotFound);
    CHECK_THAT(e.what(), Catch::Contains("h800-node"));  // lists the built-ins
  }
  CHECK_THROWS_AS(load_cluster("/nonexistent/cluster.json"), porta::Error);

  // From a file, as `porta plan --cluster my.json` reads it.
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "plan";
  std::filesystem::create_directories(dir);
  const auto path = (dir / "two_chip.json").string();
  auto two = good_profile();
  two["chips_per_node"] = 2;
  std::ofstream(path) << two.dump();
  const ClusterProfile loaded = load_cluster(path);
  CHECK(loaded.chips_per_node == 2);
  CHECK(loaded.scale_up_domain == 2);  // the domain defaults to the node
  CHECK(loaded.chip.hbm_tbps == 2);
}

TEST_CASE("bad models, formats and plans are errors", "[plan][profile]") {
  CHECK_THROWS_AS(load_model("gpt-5"), porta::Error);
  CHECK_THROWS_AS(load_model("/nonexistent/config.json"), porta::Error);
  {
    // A user's config.json with a key missing: the error names the key.
    const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "plan";
    std::filesystem::create_directories(dir);
    const auto path = (dir / "config.json").string();
    std::ofstream(path) << R"({"model_type": "mixtral", "vocab_size": 32000, "num_hidden_layers": 2,
                               "num_attention_heads": 8, "intermediate_size": 64,
                               "num_local_experts": 4, "num_experts_per_tok": 2})";
    CHECK_THROWS_WITH(load_model(path), Catch::Contains("hidden_size"));
  }
  CHECK_THROWS_AS(parse_weight_format("int3"), porta::Error);
  const auto r1 = load_model("deepseek-r1");
  const ClusterProfile a2 = load_cluster("atlas800-a2");
  Workload w;
  w.format = WeightFormat::FP8;  // the 910B has no fp8
  try {
    step_time(r1, a2, {64, 1, 0, 1}, w);
    FAIL("no error");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::Unsupported);
    CHECK_THAT(e.what(), Catch::Contains("no fp8"));
  }
  w.format = WeightFormat::W8A8;
  CHECK_THROWS_WITH(step_time(r1, a2, {64, 3, 0, 1}, w), Catch::Contains("attention TP 3"));
  CHECK_THROWS_WITH(step_time(r1, a2, {64, 1, 0, 3}, w), Catch::Contains("micro_batches"));
  CHECK_THROWS_WITH(step_time(r1, a2, {0, 1, 0, 1}, w), Catch::Contains("chips"));
  w.batch = 0;
  CHECK_THROWS_WITH(step_time(r1, a2, {64, 1, 0, 1}, w), Catch::Contains("batch"));
}

}  // namespace plan_profiles_tests

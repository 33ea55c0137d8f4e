// Expert placements and EPLB: validation, the imbalance measure, the placement and load files,
// and DeepSeek's algorithm on skewed loads whose optimum is known.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include <porta/expert_parallel.hpp>

#include "core/error_check.hpp"

namespace eplb_tests {

namespace ep = porta::ep;
using porta::ErrorCode;

TEST_CASE("placements: contiguous runs, validation naming the problem", "[eplb]") {
  const auto p = ep::contiguous_placement(10, 3);
  CHECK(p.rank_experts == std::vector<std::vector<std::int64_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8, 9}});
  CHECK(p.replicas(4) == std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 1}});
  REQUIRE_PORTA_ERROR(ep::contiguous_placement(2, 3), ErrorCode::InvalidArgument,
                      "cannot place 2 experts on 3 ranks");
  ep::ExpertPlacement bad{4, {{0, 1}, {1, 7}}};
  REQUIRE_PORTA_ERROR(ep::validate(bad), ErrorCode::InvalidArgument, "rank 1 holds expert 7");
  bad.rank_experts = {{0, 1}, {1, 2}};
  REQUIRE_PORTA_ERROR(ep::validate(bad), ErrorCode::InvalidArgument, "no rank holds expert 3");
}

TEST_CASE("imbalance: max over mean rank load, replicas sharing an expert's load", "[eplb]") {
  // Rank 0: 60/2 + 20 = 50; rank 1: 60/2 + 20 + 20 = 70; mean 60.
  const ep::ExpertPlacement p{4, {{0, 1}, {0, 2, 3}}};
  CHECK(ep::imbalance(p, {60, 20, 20, 20}) == Approx(70.0 / 60.0));
  CHECK(ep::imbalance(ep::contiguous_placement(4, 2), {60, 20, 20, 20}) == Approx(80.0 / 60.0));
}

TEST_CASE("eplb reaches the known optimum of a small skewed load", "[eplb]") {
  // Loads 60/20/20/20 on 2 ranks with 2 extra slots (3 per rank, an expert at most once per
  // rank): expert 0 on both ranks (30 + 30), expert 1 on both (10 + 10), and 30 + 20 + 10 = 60 on
  // each rank: max/mean 1, the optimum. Contiguous, without replicas: 80/60.
  const std::vector<std::int64_t> load{60, 20, 20, 20};
  const auto p = ep::eplb(load, {.ranks = 2, .replicas = 2});
  CHECK(p.replicas(0).size() == 2);
  CHECK(p.replicas(1).size() == 2);
  CHECK(p.rank_experts[0].size() == 3);
  CHECK(p.rank_experts[1].size() == 3);
  const std::vector<double> weights(load.begin(), load.end());
  CHECK(ep::imbalance(p, weights) == Approx(1.0));
  CHECK(ep::imbalance(ep::contiguous_placement(4, 2), weights) == Approx(80.0 / 60.0));
}

TEST_CASE("eplb hierarchical: a hot expert group stays inside one node", "[eplb]") {
  // Groups {0, 1} (load 100) and {2, 3} (20) go to different nodes of two ranks each; node 0
  // puts expert 0 on both its ranks (45 + 45) and expert 1 too (5 + 5).
  const std::vector<std::int64_t> load{90, 10, 10, 10};
  const auto p = ep::eplb(load, {.ranks = 4, .replicas = 4, .nodes = 2, .groups = 2});
  CHECK(p.rank_experts[0] == std::vector<std::int64_t>{0, 1});
  CHECK(p.rank_experts[1] == std::vector<std::int64_t>{0, 1});
  CHECK(p.rank_experts[2] == std::vector<std::int64_t>{2, 3});
  CHECK(p.rank_experts[3] == std::vector<std::int64_t>{2, 3});
  const std::vector<double> weights(load.begin(), load.end());
  CHECK(ep::imbalance(p, weights) == Approx(50.0 / 30.0));
  CHECK(ep::imbalance(ep::contiguous_placement(4, 4), weights) == Approx(3.0));
}

TEST_CASE("eplb refuses sizes that do not divide, saying which", "[eplb]") {
  REQUIRE_PORTA_ERROR(ep::eplb({1, 2, 3, 4}, {.ranks = 3}), ErrorCode::InvalidArgument,
                      "4 slots do not split evenly over 3 ranks");
  REQUIRE_PORTA_ERROR(ep::eplb({1, 2, 3, 4}, {.ranks = 2, .nodes = 2, .groups = 3}),
                      ErrorCode::InvalidArgument, "3 expert groups");
  REQUIRE_PORTA_ERROR(ep::eplb({1, -2}, {.ranks = 1}), ErrorCode::InvalidArgument,
                      "a negative load -2");
}

TEST_CASE("placement and load files round-trip; bad ones name the file and the field", "[eplb]") {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "eplb";
  std::filesystem::create_directories(dir);
  ep::ModelPlacement mp;
  mp.layers[1] = ep::eplb({60, 20, 20, 20}, {.ranks = 2, .replicas = 2});
  mp.layers[3] = ep::contiguous_placement(4, 2);
  const auto placement = (dir / "placement.json").string();
  ep::write_placement(placement, mp);
  CHECK(ep::read_placement(placement) == mp);
  ep::ExpertLoad load{4, {{1, {5, 0, 2, 9}}}};
  const auto load_path = (dir / "load.json").string();
  ep::write_expert_load(load_path, load);
  const auto back = ep::read_expert_load(load_path);
  CHECK(back.num_experts == 4);
  CHECK(back.layers == load.layers);

  const auto write = [&](const std::string& text) {
    std::ofstream((dir / "bad.json").string()) << text;
    return (dir / "bad.json").string();
  };
  REQUIRE_PORTA_ERROR(ep::read_placement((dir / "missing.json").string()), ErrorCode::NotFound,
                      "missing.json");
  REQUIRE_PORTA_ERROR(ep::read_placement(write("{\"ranks\": 2")), ErrorCode::CorruptFile,
                      "bad.json", "not valid JSON");
  REQUIRE_PORTA_ERROR(
      ep::read_placement(write(R"({"ranks": 2, "num_experts": 3, "layers": {"1": [[0, 1]]}})")),
      ErrorCode::CorruptFile, "layer 1 places experts on 1 ranks, the file says 2");
  REQUIRE_PORTA_ERROR(
      ep::read_placement(write(R"({"ranks": 1, "num_experts": 3, "layers": {"1": [[0, 1]]}})")),
      ErrorCode::CorruptFile, "no rank holds expert 2");
  REQUIRE_PORTA_ERROR(ep::read_expert_load(write(R"({"num_experts": 3, "layers": {"x": [1, 2, 3]}})")),
                      ErrorCode::CorruptFile, "layer key 'x'");
  REQUIRE_PORTA_ERROR(ep::read_expert_load(write(R"({"num_experts": 3, "layers": {"2": [1, 2]}})")),
                      ErrorCode::CorruptFile, "layer 2 has 2 counts for 3 experts");
}

}  // namespace eplb_tests

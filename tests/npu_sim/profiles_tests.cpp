// npu-sim device profiles: the built-in ones hold the spec's figures, users' files load by path,
// and every kind of bad file is a porta::Error naming the file and the field.
#include <filesystem>
#include <fstream>
#include <functional>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <porta/npu_sim.hpp>
#include <porta/porta.hpp>

namespace npu_sim_profiles_tests {

namespace {

std::string write_profile(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "npu_sim";
  std::filesystem::create_directories(dir);
  const auto path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The 910b2 profile as JSON with one change applied.
std::string edited(const std::function<void(nlohmann::json&)>& edit) {
  auto j =
      nlohmann::json::parse(porta::npu_sim::profile_to_json(porta::npu_sim::load_profile("910b2")));
  edit(j);
  return j.dump();
}

void require_field_error(const std::string& text, const std::string& field) {
  try {
    porta::npu_sim::parse_profile(text, "'test.json'");
    FAIL("no error for a profile with a bad " << field);
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::CorruptFile);
    CHECK_THAT(e.what(), Catch::Contains("'" + field + "'"));
    CHECK_THAT(e.what(), Catch::Contains("test.json"));
  }
}

}  // namespace

TEST_CASE("built-in npu-sim profiles carry the spec's figures", "[npu-sim]") {
  const auto names = porta::npu_sim::builtin_profiles();
  for (const char* expected : {"910a", "910b1", "910b2", "910b3", "910b4", "h20"})
    CHECK(std::find(names.begin(), names.end(), expected) != names.end());
  const auto p = porta::npu_sim::load_profile("910B2");  // names are case-insensitive
  CHECK(p.name == "910b2");
  CHECK(p.cube_cores == 24);
  CHECK(p.vector_cores == 48);
  CHECK(p.clock_mhz == 1800);
  CHECK(p.l0a_bytes == 64 * 1024);
  CHECK(p.l0b_bytes == 64 * 1024);
  CHECK(p.l0c_bytes == 128 * 1024);
  CHECK(p.l1_bytes == 512 * 1024);
  CHECK(p.ub_bytes == 192 * 1024);
  CHECK(p.l2_bytes == 192ull * 1024 * 1024);
  CHECK(p.hbm_gbps == Approx(1600));
  // cores x 8192 FLOP x clock = 353.9 TFLOPS fp16 (the spec's derived peak); int8 twice that.
  CHECK(p.peak_flops(porta::DType::F16) * 1e-12 == Approx(353.9).epsilon(1e-3));
  CHECK(p.peak_flops(porta::DType::I8) == Approx(2 * p.peak_flops(porta::DType::F16)));
  const auto b4 = porta::npu_sim::load_profile("910b4");
  CHECK(b4.cube_cores == 20);
  CHECK(b4.clock_mhz == 1500);
  CHECK(b4.hbm_gbps == Approx(800));
  CHECK(b4.l2_bytes == 96ull * 1024 * 1024);
  const auto a = porta::npu_sim::load_profile("910a");
  CHECK(a.cube_cores == 32);
  CHECK(a.l1_bytes == 1024 * 1024);
  CHECK(a.l0c_bytes == 256 * 1024);
  const auto h20 = porta::npu_sim::load_profile("h20");
  CHECK(h20.model == porta::npu_sim::ModelKind::Roofline);
  CHECK(h20.peak_flops(porta::DType::F16) == Approx(148e12));
  CHECK(h20.hbm_gbps == Approx(4000));
}

TEST_CASE("a profile survives a round trip through JSON and loads from a file", "[npu-sim]") {
  for (const auto& name : porta::npu_sim::builtin_profiles()) {
    INFO(name);
    const auto p = porta::npu_sim::load_profile(name);
    const auto q = porta::npu_sim::parse_profile(porta::npu_sim::profile_to_json(p), name);
    CHECK(q.name == p.name);
    CHECK(q.cube_cores == p.cube_cores);
    CHECK(q.l0a_bytes == p.l0a_bytes);
    CHECK(q.ub_bytes == p.ub_bytes);
    CHECK(q.hbm_gbps == Approx(p.hbm_gbps));
    CHECK(q.peak_flops(porta::DType::F16) == Approx(p.peak_flops(porta::DType::F16)));
  }
  const auto path = write_profile("slow.json", edited([](nlohmann::json& j) {
                                    j["name"] = "slow";
                                    j["clock_mhz"] = 900;
                                  }));
  for (const std::string& spec : {path, "file=" + path}) {
    const auto p = porta::npu_sim::load_profile(spec);
    CHECK(p.name == "slow");
    CHECK(p.clock_mhz == 900);
  }
  // Half the clock: a compute-bound GEMM takes nearly twice as long; the device is named by the
  // file.
  porta::Graph g;
  auto x = g.input("x", {1024, 1024}, porta::DType::F16);
  g.output("y", g.matmul(x, g.input("w", {1024, 1024}, porta::DType::F16)));
  const auto slow = porta::npu_sim::simulate(g, porta::npu_sim::load_profile(path));
  const auto fast = porta::npu_sim::simulate(g, porta::npu_sim::load_profile("910b2"));
  CHECK(slow.report.ops[0].kernel_us > 1.5 * fast.report.ops[0].kernel_us);
  CHECK(porta::device_info("npu-sim:file=" + path).name == "npu-sim:file=" + path);
}

TEST_CASE("bad profiles are errors naming the field", "[npu-sim]") {
  using nlohmann::json;
  require_field_error(edited([](json& j) { j["cores"].erase("cube"); }), "cores.cube");
  require_field_error(edited([](json& j) { j["cores"]["vector"] = "many"; }), "cores.vector");
  require_field_error(edited([](json& j) { j["cores"]["cube"] = 2.5; }), "cores.cube");
  require_field_error(edited([](json& j) { j["clock_mhz"] = -1; }), "clock_mhz");
  require_field_error(edited([](json& j) { j["clock_mhz"] = 0; }), "clock_mhz");
  require_field_error(edited([](json& j) { j["buffers_kb"]["l0a"] = 0.25; }), "buffers_kb.l0a");
  require_field_error(edited([](json& j) { j.erase("buffers_kb"); }), "buffers_kb.l0a");
  require_field_error(edited([](json& j) { j["hbm"]["tbps"] = nullptr; }), "hbm.tbps");
  require_field_error(edited([](json& j) { j["model"] = "gpu"; }), "model");
  require_field_error(edited([](json& j) { j["name"] = ""; }), "name");
  require_field_error(edited([](json& j) { j["measured_gbps"]["mte2_one_burst"] = 500; }),
                      "measured_gbps.mte2_one_burst");
  require_field_error(edited([](json& j) { j["cores"] = 24; }), "cores.cube");
  CHECK_THROWS_AS(porta::npu_sim::parse_profile("{\"name\": ", "x"), porta::Error);
  CHECK_THROWS_AS(porta::npu_sim::parse_profile("[1, 2]", "x"), porta::Error);
  try {
    porta::npu_sim::load_profile("910c");
    FAIL("no error for an unknown profile");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::NotFound);
    CHECK_THAT(e.what(), Catch::Contains("910b2") && Catch::Contains("910c"));
  }
  CHECK_THROWS_AS(porta::npu_sim::load_profile("file=/no/such/profile.json"), porta::Error);
  // A bad profile file given as a backend name fails compile() with the same message.
  const auto bad = write_profile("bad.json", edited([](json& j) { j["cores"].erase("cube"); }));
  porta::Graph g;
  g.output("y", g.silu(g.input("x", {4}, porta::DType::F32)));
  try {
    porta::compile(g, {.backend = "npu-sim:file=" + bad});
    FAIL("compiled on a bad profile");
  } catch (const porta::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("cores.cube"));
  }
  CHECK_THROWS_AS(porta::compile(g, {.backend = "npu-sim:910z"}), porta::Error);
}

}  // namespace npu_sim_profiles_tests

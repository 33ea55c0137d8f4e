// The opencl backend (backends/opencl/) on whatever OpenCL platform is installed (PoCL in CI).
// With no OpenCL device every test says so and returns: Catch2 v2 has no SKIP.
//
// Results are compared with the reference backend (the oracle) or closed-form values; the
// conformance matrix itself runs in tests/check on every available backend.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/porta.hpp>

#include "../../backends/opencl/opencl_runtime.hpp"
#include "../../backends/opencl/opencl_tuning.hpp"
#include "runtime/backend.hpp"

namespace opencl_backend_tests {

namespace {

// The first available OpenCL device's name, or empty (with a warning saying why) when there is
// none; tests return early then.
std::string opencl_device() {
  for (const auto& d : porta::list_devices())
    if (d.name.rfind("opencl", 0) == 0 && d.available) return d.name;
  std::string why = "the opencl backend is not built in";
  for (const auto& d : porta::list_devices())
    if (d.name.rfind("opencl", 0) == 0) why = d.unavailable_reason;
  WARN("skipped: no OpenCL device is available (" << why << ")");
  return {};
}

porta::Tensor random_f32(porta::Shape shape, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(static_cast<std::size_t>(shape.numel()));
  for (auto& v : values) v = dist(rng);
  return porta::Tensor::from_vector<float>(std::move(shape), values);
}

double worst_error(const porta::Tensor& got, const porta::Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  const auto a = got.to_f32(), b = want.to_f32();
  double scale = 0, worst = 0;
  for (float v : b) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
  return worst / std::max(scale, 1e-30);
}

porta::detail::opencl::Device& device_of(const std::string& name) {
  return porta::detail::opencl::device_of(*porta::detail::get_backend(name));
}

}  // namespace

TEST_CASE("opencl devices are listed with memory, compute units, fp16 and driver version",
          "[opencl]") {
  const std::string name = opencl_device();
  if (name.empty()) return;
  const auto info = porta::device_info(name);
  CHECK(info.name == name);
  CHECK(info.memory_bytes > 0);
  std::map<std::string, std::string> properties(info.properties.begin(), info.properties.end());
  CHECK(properties.count("compute units") == 1);
  CHECK(std::stoi(properties["compute units"]) > 0);
  CHECK((properties["fp16 (cl_khr_fp16)"] == "yes" || properties["fp16 (cl_khr_fp16)"] == "no"));
  CHECK_FALSE(properties["driver version"].empty());
  // "opencl" and "opencl:0" are one device: one backend, one memory domain.
  CHECK(porta::detail::get_backend("opencl").get() == porta::detail::get_backend("opencl:0").get());
  CHECK_THROWS_AS(porta::detail::get_backend("opencl:99"), porta::Error);
  CHECK_THROWS_AS(porta::detail::get_backend("opencl:x"), porta::Error);
}

TEST_CASE("a graph segment on opencl keeps its values on the device between ops", "[opencl]") {
  const std::string name = opencl_device();
  if (name.empty()) return;
  std::mt19937 rng(7);
  porta::Graph g;
  auto x = g.input("x", {6, 64}, porta::DType::F32);
  auto normed = g.rms_norm(x, g.weight("norm", random_f32({64}, rng, 0.5f, 1.5f)));
  auto h = g.matmul(normed, g.weight("w", random_f32({48, 64}, rng)), {false, true});
  auto act = g.silu(h);
  auto gated = g.mul(act, g.weight("scale", random_f32({48}, rng)));
  auto probs = g.softmax(gated);
  g.output("probs", probs);
  const std::map<std::string, porta::Tensor> inputs{{"x", random_f32({6, 64}, rng)}};

  auto exe = porta::compile(g, {.backend = name, .fallback = ""});
  const auto got = exe.run(inputs);
  const auto want = porta::compile(g, {.backend = "reference"}).run(inputs);
  CHECK(worst_error(got.at("probs"), want.at("probs")) < 2e-5);

  // Only the graph input crosses into the device; no op's value goes back to the host.
  const auto& profile = exe.profile();
  REQUIRE(profile.transfers.size() == 1);
  CHECK(profile.transfers[0].value == "x");
  CHECK(profile.transfers[0].to == name);
  REQUIRE(profile.ops.size() == 5);
  for (const auto& op : profile.ops) {
    CHECK(op.backend == name);
    CHECK(op.device_us >= 0);  // from the OpenCL events
  }
  // Runs again with the same answer (nothing depends on the first run's state).
  CHECK(worst_error(exe.run(inputs).at("probs"), want.at("probs")) < 2e-5);
}

TEST_CASE("opencl declines what it cannot run, with the reason, and copies only at the edges",
          "[opencl]") {
  const std::string name = opencl_device();
  if (name.empty()) return;
  porta::Graph g;
  auto a = g.input("a", {4}, porta::DType::I32);
  auto b = g.input("b", {4}, porta::DType::I32);
  auto sum = g.name(g.add(a, b), "int_sum");
  auto f = g.cast(sum, porta::DType::F32);
  auto y = g.name(g.exp(g.cast(f, porta::DType::F32)), "exp");
  g.output("y", y);
  auto exe = porta::compile(g, {.backend = name});
  bool found = false;
  for (const auto& p : exe.placement())
    if (p.node == "int_sum") {
      found = true;
      CHECK(p.backend == "reference");
      CHECK_THAT(p.reason, Catch::Contains("integer arithmetic"));
    }
  CHECK(found);
  const auto out = exe.run({{"a", porta::Tensor::from_vector<std::int32_t>({4}, {1, 2, 3, -4})},
                            {"b", porta::Tensor::from_vector<std::int32_t>({4}, {0, 1, -1, 4})}});
  const auto values = out.at("y").to_f32();
  const std::vector<double> sums{1, 3, 2, 0};
  for (std::size_t i = 0; i < 4; ++i) CHECK(values[i] == Approx(std::exp(sums[i])).epsilon(1e-6));
}

TEST_CASE("the MoE routing path runs on opencl without host round trips", "[opencl]") {
  const std::string name = opencl_device();
  if (name.empty()) return;
  std::mt19937 rng(11);
  constexpr std::int64_t T = 24, H = 32, N = 40, E = 8, K = 2;
  porta::Graph g;
  auto x = g.input("x", {T, H}, porta::DType::F32);
  auto logits = g.matmul(x, g.weight("router", random_f32({E, H}, rng)), {false, true});
  auto route = g.moe_router(logits, porta::moe::mixtral(E, K));
  auto rows = g.moe_permute(x, route);
  auto expert_out =
      g.grouped_matmul(rows, g.weight("experts", random_f32({E, N, H}, rng)), route.offsets);
  auto y = g.moe_combine(expert_out, route);
  g.output("y", y);
  g.output("ids", route.ids);
  g.output("offsets", route.offsets);
  const std::map<std::string, porta::Tensor> inputs{{"x", random_f32({T, H}, rng)}};

  auto exe = porta::compile(g, {.backend = name, .fallback = ""});
  const auto got = exe.run(inputs);
  const auto want = porta::compile(g, {.backend = "reference"}).run(inputs);
  CHECK(got.at("ids").to_f32() == want.at("ids").to_f32());
  CHECK(got.at("offsets").to_f32() == want.at("offsets").to_f32());
  CHECK(worst_error(got.at("y"), want.at("y")) < 2e-5);
  REQUIRE(exe.profile().transfers.size() == 1);  // x in; the routing tables never leave
}

TEST_CASE("a failed opencl program build reports the build log", "[opencl]") {
  const std::string name = opencl_device();
  if (name.empty()) return;
  auto& device = device_of(name);
  const std::string broken =
      "kernel void broken(global float* x) { x[0] = undeclared_porta_identifier; }";
  try {
    device.programs().get(broken, "", "broken test program");
    FAIL("a broken kernel source was built");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::Backend);
    CHECK_THAT(e.what(), Catch::Contains("build log"));
    CHECK_THAT(e.what(), Catch::Contains("undeclared_porta_identifier"));
  }
  // The porta program is built once per device for the process, however many graphs compile.
  device.program();
  const auto builds = device.programs().builds();
  porta::Graph g;
  g.output("y", g.silu(g.input("x", {3}, porta::DType::F32)));
  porta::compile(g, {.backend = name, .fallback = ""});
  porta::compile(g, {.backend = name, .fallback = ""});
  CHECK(device.programs().builds() == builds);
}

TEST_CASE("opencl buffers: out-of-memory and out-of-range copies are porta errors", "[opencl]") {
  const std::string name = opencl_device();
  if (name.empty()) return;
  auto backend = porta::detail::get_backend(name);
  try {
    backend->allocate(std::uint64_t{1} << 60);
    FAIL("an allocation of 2^60 bytes succeeded");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::OutOfMemory);
  }
  auto buffer = backend->allocate(16);
  CHECK(buffer->host_ptr() == nullptr);  // device memory, not host-visible
  std::vector<float> host{1, 2, 3, 4}, back(4, 0);
  backend->copy_in(*buffer, 0, host.data(), 16);
  backend->copy_out(*buffer, 0, back.data(), 16);
  CHECK(back == host);
  CHECK_THROWS_AS(backend->copy_in(*buffer, 8, host.data(), 16), porta::Error);
  CHECK_THROWS_AS(backend->copy_out(*buffer, SIZE_MAX, back.data(), 2), porta::Error);
  porta::detail::HostBuffer foreign(16);
  CHECK_THROWS_AS(backend->copy_in(foreign, 0, host.data(), 16), porta::Error);
  CHECK(backend->allocate(0)->size() == 0);
}

TEST_CASE("porta tune validates its arguments and reads back what it saves", "[opencl]") {
  const std::string name = opencl_device();
  if (name.empty()) return;
  auto& device = device_of(name);
  porta::detail::opencl::TuneOptions bad;
  bad.fraction = 0;
  CHECK_THROWS_AS(porta::detail::opencl::tune_gemm(device, bad), porta::Error);
  bad.fraction = 0.5;
  bad.m = 0;
  CHECK_THROWS_AS(porta::detail::opencl::tune_gemm(device, bad), porta::Error);

  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "opencl-tuning";
  std::filesystem::create_directories(dir);
  const auto corrupt = dir / "corrupt.txt";
  std::ofstream(corrupt) << "KWG=32\nnot a parameter\n";
  CHECK_THROWS_AS(porta::detail::opencl::read_tuning_file(corrupt), porta::Error);
  const auto good = dir / "good.txt";
  std::ofstream(good) << "# comment\nKWG=32\nMWG=64\n";
  const auto parameters = porta::detail::opencl::read_tuning_file(good);
  CHECK(parameters.at("KWG") == 32);
  CHECK(parameters.at("MWG") == 64);
}

// PORTA_OPENCL_GROUPED_TILES set for the scope (the tile configuration is chosen when a plan
// is compiled), so that PoCL runs the gpu tiles too.
class GroupedTilesOverride {
 public:
  explicit GroupedTilesOverride(const char* tiles) {
    setenv("PORTA_OPENCL_GROUPED_TILES", tiles, 1);
  }
  ~GroupedTilesOverride() { unsetenv("PORTA_OPENCL_GROUPED_TILES"); }
  GroupedTilesOverride(const GroupedTilesOverride&) = delete;
  GroupedTilesOverride& operator=(const GroupedTilesOverride&) = delete;
};

TEST_CASE("the ragged grouped GEMM matches the reference with both tile configurations and heights",
          "[opencl]") {
  const std::string name = opencl_device();
  if (name.empty()) return;
  std::mt19937 rng(3);
  // 40 rows per expert on average takes the tall tiles (gpu 64, cpu 48 rows), 4 per expert the
  // short ones (16, 12); both with an empty expert, an expert of more than one tile, N and H not
  // multiples of the tiles (nor of the cpu kernel's 8-wide loads), and f32, f16, bf16 weights.
  const std::vector<std::vector<std::int32_t>> cases = {{0, 70, 70, 150, 160},
                                                        {0, 5, 5, 12, 20, 20, 24}};
  for (const char* tiles : {"cpu", "gpu"}) {
    const GroupedTilesOverride use(tiles);
    for (const auto w_dtype : {porta::DType::F32, porta::DType::F16, porta::DType::BF16})
      for (const auto& offsets : cases) {
        const auto E = static_cast<std::int64_t>(offsets.size()) - 1;
        const std::int64_t P = offsets.back() + 3, H = 37, N = 70;  // 3 rows past the last expert
        porta::Graph g;
        auto rows = g.input("rows", {P, H}, porta::DType::F32);
        auto offs = g.input("offsets", {E + 1}, porta::DType::I32);
        const auto w = random_f32({E, N, H}, rng);
        g.output("y",
                 g.grouped_matmul(
                     rows, g.weight("w", porta::Tensor::from_f32({E, N, H}, w_dtype, w.to_f32())),
                     offs));
        const std::map<std::string, porta::Tensor> inputs{
            {"rows", random_f32({P, H}, rng)},
            {"offsets", porta::Tensor::from_vector<std::int32_t>({E + 1}, offsets)}};
        const auto got = porta::compile(g, {.backend = name, .fallback = ""}).run(inputs);
        const auto want = porta::compile(g, {.backend = "reference"}).run(inputs);
        INFO(tiles << " tiles, experts " << E << ", weights " << porta::dtype_name(w_dtype));
        CHECK(worst_error(got.at("y"), want.at("y")) < 2e-6);
        const auto values = got.at("y").to_f32();
        for (std::int64_t i = offsets.back() * N; i < P * N; ++i)
          CHECK(values[static_cast<std::size_t>(i)] == 0.0f);  // rows of no expert are zero
      }
  }
  {
    const GroupedTilesOverride bad("fastest");
    porta::Graph g;
    g.output("y", g.grouped_matmul(g.input("rows", {4, 8}, porta::DType::F32),
                                   g.weight("w", random_f32({2, 3, 8}, rng)),
                                   g.input("offsets", {3}, porta::DType::I32)));
    CHECK_THROWS_WITH(porta::compile(g, {.backend = name, .fallback = ""}),
                      Catch::Contains("PORTA_OPENCL_GROUPED_TILES"));
  }
}

}  // namespace opencl_backend_tests

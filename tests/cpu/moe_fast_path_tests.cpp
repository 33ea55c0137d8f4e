// The cpu backend's MoE kernels against the reference backend on the same graphs: the router's
// integer outputs and weights exactly (it uses the reference's arithmetic for every ranked
// value), combine bit for bit, the experts within f32 tolerance for f32 and bf16 weights at
// T = 0, 1, 8, 100, honest placement of what the cpu does not run, and run-to-run determinism.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include <catch2/catch.hpp>

#include "moe/moe_test_support.hpp"

namespace cpu_moe_fast_path_tests {

using porta::DType;
using porta::Graph;
using porta::Tensor;
using namespace porta_moe_test;
namespace moe = porta::moe;

namespace {

bool have_cpu() {
  for (const auto& d : porta::list_devices())
    if (d.name == "cpu" && d.available) return true;
  return false;
}

#define REQUIRE_CPU_BACKEND()                                             \
  if (!have_cpu()) {                                                      \
    WARN("the cpu backend is not built: its MoE kernels are not tested"); \
    return;                                                               \
  }

using Outputs = std::map<std::string, Tensor>;

Outputs run_on(const Graph& g, const std::string& backend, const Outputs& inputs,
               std::vector<porta::NodePlacement>* placement = nullptr) {
  porta::CompileOptions options;
  options.backend = backend;
  auto exe = porta::compile(g, options);
  if (placement) *placement = exe.placement();
  return exe.run(inputs);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.data(), b.data(), a.nbytes()) == 0);
}

std::string backend_of(const std::vector<porta::NodePlacement>& placement, const std::string& op) {
  for (const auto& p : placement)
    if (p.op == op) return p.backend;
  return "";
}

bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Logits on a coarse grid, so that ties (equal scores) are frequent.
std::vector<float> tied_logits(std::mt19937& rng, std::size_t n) {
  std::uniform_int_distribution<int> dist(-8, 8);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(dist(rng)) * 0.25f;
  return v;
}

std::vector<float> random_floats(std::mt19937& rng, std::size_t n, float scale) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

void check_router_matches(const std::vector<float>& logits, std::int64_t T,
                          const moe::RouterAttrs& attrs, RouterExtras extras) {
  extras.backend = "reference";
  const auto want = run_router(logits, T, attrs, extras);
  extras.backend = "cpu";
  const auto got = run_router(logits, T, attrs, extras);
  CHECK(got.ids == want.ids);
  CHECK(got.counts == want.counts);
  CHECK(got.offsets == want.offsets);
  CHECK(got.perm == want.perm);
  CHECK(got.inv == want.inv);
  CHECK(got.dropped == want.dropped);
  CHECK(got.nonfinite == want.nonfinite);
  // The weights and means come from the same double arithmetic, rounded once: the same bits
  // (NaN included, which == would not compare).
  CHECK(same_floats(got.weights, want.weights));
  CHECK(same_floats(got.mean_score, want.mean_score));
}

}  // namespace

TEST_CASE("moe cpu router equals the reference on every preset and variant", "[moe][cpu]") {
  REQUIRE_CPU_BACKEND();
  std::mt19937 rng(2024);
  for (std::int64_t T : {0, 1, 8, 100}) {
    INFO("T = " << T);
    SECTION("deepseek_v3 with bias, T = " + std::to_string(T)) {
      RouterExtras x;
      x.bias = random_floats(rng, 64, 0.1f);
      check_router_matches(tied_logits(rng, static_cast<std::size_t>(T * 64)), T,
                           moe::deepseek_v3(64, 6), x);
    }
    SECTION("deepseek_v2 groups by max, scale 16, T = " + std::to_string(T)) {
      check_router_matches(tied_logits(rng, static_cast<std::size_t>(T * 32)), T,
                           moe::deepseek_v2(32, 6), {});
    }
    SECTION("mixtral and qwen2 with block padding, bf16 logits, T = " + std::to_string(T)) {
      RouterExtras x;
      x.dtype = DType::BF16;
      auto q = moe::qwen2_moe(12, 3);
      q.block_size = 4;
      check_router_matches(random_floats(rng, static_cast<std::size_t>(T * 12), 3), T, q, x);
      check_router_matches(random_floats(rng, static_cast<std::size_t>(T * 8), 3), T,
                           moe::mixtral(8, 2), x);
    }
    SECTION("switch capacity with a valid mask, T = " + std::to_string(T)) {
      auto s = moe::switch_capacity(1.25f, 8);
      s.use_valid = true;
      RouterExtras x;
      for (std::int64_t t = 0; t < T; ++t) x.valid.push_back(t % 5 == 3 ? 0 : 1);
      check_router_matches(tied_logits(rng, static_cast<std::size_t>(T * 8)), T, s, x);
    }
    SECTION("sqrt_softplus, identity and select_on logit, T = " + std::to_string(T)) {
      auto a = router(16, 4, moe::Score::SqrtSoftplus);
      a.renormalize = true;
      check_router_matches(random_floats(rng, static_cast<std::size_t>(T * 16), 4), T, a, {});
      a.score = moe::Score::Identity;
      a.renormalize = false;
      check_router_matches(tied_logits(rng, static_cast<std::size_t>(T * 16)), T, a, {});
      a.score = moe::Score::Softmax;
      a.select_on = moe::SelectOn::Logit;
      a.use_bias = true;
      RouterExtras x;
      x.bias = random_floats(rng, 16, 1.0f);
      check_router_matches(tied_logits(rng, static_cast<std::size_t>(T * 16)), T, a, x);
    }
    SECTION("hash mode, T = " + std::to_string(T)) {
      auto a = moe::deepseek_v2_lite(8, 2);
      a.mode = moe::Mode::Hash;
      RouterExtras x;
      for (int v = 0; v < 10; ++v) x.hash_table.insert(x.hash_table.end(), {v % 8, (v + 3) % 8});
      for (std::int64_t t = 0; t < T; ++t) x.token_ids.push_back(static_cast<int>(rng() % 10));
      check_router_matches(random_floats(rng, static_cast<std::size_t>(T * 8), 2), T, a, x);
    }
  }
  SECTION("DeepSeek-V3 size (E = 256, K = 8), moderate and wide logits") {
    // Scale 3: every score is large enough for the exact any-order mean sums; scale 40: tiny
    // sigmoid scores (and softmax ones) force the row-order sums and the rounding fallbacks.
    for (float scale : {3.0f, 40.0f}) {
      INFO("scale " << scale);
      RouterExtras x;
      x.bias = random_floats(rng, 256, 0.05f);
      const auto logits = random_floats(rng, 300 * 256, scale);
      check_router_matches(logits, 300, moe::deepseek_v3(256, 8), x);
      check_router_matches(logits, 300, moe::deepseek_v2(256, 8), {});
      check_router_matches(logits, 300, moe::mixtral(256, 8), {});
    }
    // −inf logits: whole groups and rows at −inf, where the K best reach dropped groups.
    auto logits = random_floats(rng, 40 * 256, 3.0f);
    for (int t = 0; t < 40; t += 3)
      for (int e = 0; e < 256; e += (t % 2 == 0 ? 1 : 5)) logits[t * 256 + e] = -INFINITY;
    RouterExtras x;
    x.bias = std::vector<float>(256, 0.0f);
    check_router_matches(logits, 40, moe::deepseek_v3(256, 8), x);
    check_router_matches(logits, 40, moe::mixtral(256, 8), {});
  }
  SECTION("mean_score where the summation order decides the f32 result") {
    // Identity scores for expert 0: 1, 2^-24, then fourteen 2^-53. In row order every 2^-53
    // is lost (a tie, rounded to even), the sum stays 1 + 2^-24 and its mean, 1/16 + 2^-28, is
    // an f32 midpoint that rounds to even: 1/16. Summed in another order the 2^-53 add up and
    // the mean rounds up. The cpu router must take the row-order path here.
    auto a = router(8, 2, moe::Score::Identity);
    std::vector<float> logits(16 * 8, 0.0f);
    logits[0] = 1.0f;
    logits[8] = 0x1p-24f;
    for (int t = 2; t < 16; ++t) logits[static_cast<std::size_t>(t) * 8] = 0x1p-53f;
    RouterExtras cpu;
    cpu.backend = "cpu";
    CHECK(run_router(logits, 16, a, cpu).mean_score[0] == 0.0625f);
    check_router_matches(logits, 16, a, {});
  }
  SECTION("NaN rows") {
    auto logits = tied_logits(rng, 6 * 16);
    logits[3] = NAN;
    logits[16 * 2 + 7] = NAN;
    for (int i = 0; i < 16; ++i) logits[16 * 4 + i] = NAN;
    check_router_matches(logits, 6, moe::deepseek_v3(16, 4), {std::vector<float>(16, 0.0f)});
    check_router_matches(logits, 6, moe::mixtral(16, 4), {});
  }
}

TEST_CASE("moe cpu router runs on cpu and declines expert choice honestly", "[moe][cpu]") {
  REQUIRE_CPU_BACKEND();
  for (auto mode : {moe::Mode::TokenChoice, moe::Mode::ExpertChoice}) {
    auto a = moe::mixtral(8, 2);
    a.mode = mode;
    Graph g;
    const auto r = g.moe_router(g.input("logits", {5, 8}, DType::F32), a);
    g.output("ids", r.ids);
    std::vector<porta::NodePlacement> placement;
    (void)run_on(g, "cpu", {{"logits", Tensor::zeros({5, 8}, DType::F32)}}, &placement);
    REQUIRE(placement.size() == 1);
    if (mode == moe::Mode::TokenChoice) {
      CHECK(placement[0].backend == "cpu");
    } else {
      CHECK(placement[0].backend == "reference");
      CHECK_THAT(placement[0].reason, Catch::Contains("expert_choice"));
    }
  }
}

namespace {

struct Layer {
  std::int64_t T, H, I, E, K, Is;
  DType weights;
};

// router -> moe_experts (with a sigmoid-gated shared expert), and the routed part computed
// unfused: moe_permute -> grouped_matmul (gate, up) -> swiglu -> grouped_matmul (down) ->
// moe_combine.
Graph layer_graph(const Layer& l, unsigned seed, Outputs& inputs) {
  std::mt19937 rng(seed);
  Graph g;
  auto x = g.input("x", {l.T, l.H}, DType::F32);
  auto logits = g.input("logits", {l.T, l.E}, DType::F32);
  inputs["x"] = Tensor::from_vector<float>(
      {l.T, l.H}, random_floats(rng, static_cast<std::size_t>(l.T * l.H), 1));
  inputs["logits"] = Tensor::from_vector<float>(
      {l.T, l.E}, random_floats(rng, static_cast<std::size_t>(l.T * l.E), 2));
  const auto weight = [&](const char* name, porta::Shape shape) {
    const auto values = random_floats(rng, static_cast<std::size_t>(shape.numel()), 0.2f);
    return g.weight(name, Tensor::from_f32(shape, l.weights, values));
  };
  auto attrs = moe::qwen2_moe(l.E, l.K);
  attrs.block_size = 2;
  const auto route = g.moe_router(logits, attrs);
  porta::MoeExpertWeights w;
  w.gate = weight("gate", {l.E, l.I, l.H});
  w.up = weight("up", {l.E, l.I, l.H});
  w.down = weight("down", {l.E, l.H, l.I});
  w.shared_gate = weight("s_gate", {l.Is, l.H});
  w.shared_up = weight("s_up", {l.Is, l.H});
  w.shared_down = weight("s_down", {l.H, l.Is});
  w.shared_gate_weight = weight("s_gate_w", {1, l.H});
  g.output("fused", g.moe_experts(x, route, w));
  const auto xp = g.moe_permute(x, route);
  const auto act = g.swiglu(g.grouped_matmul(xp, w.gate, route.offsets),
                            g.grouped_matmul(xp, w.up, route.offsets));
  g.output("unfused", g.moe_combine(g.grouped_matmul(act, w.down, route.offsets), route));
  g.output("ids", route.ids);
  return g;
}

void check_close(const char* what, const Tensor& got, const Tensor& want, double tolerance) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  const auto a = floats(got), b = floats(want);
  double scale = 1e-3;
  for (float v : b) scale = std::max(scale, double{std::abs(v)});
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double{a[i]} - b[i]));
  INFO("largest difference " << worst << " against values up to " << scale);
  CHECK(worst <= tolerance * scale);
}

}  // namespace

TEST_CASE("moe cpu experts match the reference for f32, bf16 and f16 weights", "[moe][cpu]") {
  REQUIRE_CPU_BACKEND();
  for (DType wdt : {DType::F32, DType::BF16, DType::F16})
    for (std::int64_t T : {0, 1, 8, 100}) {
      INFO("weights " << porta::dtype_name(wdt) << ", T = " << T);
      // H and I not multiples of 16: the vector loops' tails run too. T = 100 gives blocks of
      // more than 8 rows (oneDNN); T = 1 and 8 only small blocks (the decode loop).
      const Layer l{T, 68, 44, 8, 2, 36, wdt};
      Outputs inputs;
      const Graph g = layer_graph(l, static_cast<unsigned>(T) + 17, inputs);
      std::vector<porta::NodePlacement> placement;
      const auto got = run_on(g, "cpu", inputs, &placement);
      const auto want = run_on(g, "reference", inputs);
      for (const char* op :
           {"moe_router", "moe_experts", "grouped_matmul", "moe_permute", "moe_combine"})
        CHECK(backend_of(placement, op) == "cpu");
      CHECK(same_bits(got.at("ids"), want.at("ids")));
      check_close("fused", got.at("fused"), want.at("fused"), 2e-5);
      check_close("unfused", got.at("unfused"), want.at("unfused"), 2e-5);
    }
}

TEST_CASE("moe cpu expert GEMMs split columns and widen bf16 in panels correctly", "[moe][cpu]") {
  REQUIRE_CPU_BACKEND();
  // H = 1100: a bf16 panel of the sgemm path holds 232 weight rows, so I = 300 takes panels of
  // 232 and 68; the shared expert's single block is split into column ranges (gate, up: 300 / 8
  // rounded to 48 or 8; down: 1100 / 8), the last ones shorter. T = 100: every bf16 block runs
  // the panel kernel (within two chunks of rows); T = 300 (H = 256, to stay fast against the
  // reference): the shared expert's 300 rows run oneDNN's sgemm on widened panels, the routed
  // blocks (~75 rows: two chunks of the AVX-512 kernel) the panel kernel.
  for (const std::int64_t T : {100, 300})
    for (DType wdt : {DType::F32, DType::BF16, DType::F16}) {
      INFO("T = " << T << ", weights " << porta::dtype_name(wdt));
      const Layer l{T, T == 100 ? 1100 : 256, 300, 8, 2, 260, wdt};
      Outputs inputs;
      const Graph g = layer_graph(l, 99, inputs);
      const auto got = run_on(g, "cpu", inputs);
      const auto want = run_on(g, "reference", inputs);
      check_close("fused", got.at("fused"), want.at("fused"), 2e-5);
      check_close("unfused", got.at("unfused"), want.at("unfused"), 2e-5);
      // Run to run, the same bits.
      CHECK(same_bits(run_on(g, "cpu", inputs).at("fused"), got.at("fused")));
    }
}

TEST_CASE("moe cpu combine is bit-identical to the reference", "[moe][cpu]") {
  REQUIRE_CPU_BACKEND();
  std::mt19937 rng(5);
  constexpr std::int64_t T = 37, K = 3, H = 53, P = T * K;
  Graph g;
  auto rows = g.input("rows", {P, H}, DType::F32);
  auto w = g.input("w", {T, K}, DType::F32);
  auto inv = g.input("inv", {T * K}, DType::I32);
  g.output("y", g.add_op(porta::OpKind::MoeCombine, {rows, w, inv})[0]);
  std::vector<std::int32_t> slots(static_cast<std::size_t>(P));
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  for (std::size_t a = 0; a < slots.size(); a += 7) slots[a] = -1;  // dropped assignments
  const Outputs inputs{{"rows", Tensor::from_vector<float>({P, H}, random_floats(rng, P * H, 3))},
                       {"w", Tensor::from_vector<float>({T, K}, random_floats(rng, T * K, 1))},
                       {"inv", Tensor::from_vector<std::int32_t>({T * K}, slots)}};
  CHECK(same_bits(run_on(g, "cpu", inputs).at("y"), run_on(g, "reference", inputs).at("y")));
}

TEST_CASE("moe cpu and reference runs are bit-identical run to run", "[moe][cpu]") {
  const Layer l{50, 64, 40, 8, 3, 32, DType::BF16};
  Outputs inputs;
  const Graph g = layer_graph(l, 99, inputs);
  std::vector<std::string> backends{"reference"};
  if (have_cpu()) backends.push_back("cpu");
  for (const auto& backend : backends) {
    INFO("backend " << backend);
    porta::CompileOptions options;
    options.backend = backend;
    auto exe = porta::compile(g, options);
    const auto first = exe.run(inputs);
    const auto second = exe.run(inputs);
    const auto third = porta::compile(g, options).run(inputs);
    for (const char* name : {"fused", "unfused", "ids"}) {
      CHECK(same_bits(first.at(name), second.at(name)));
      CHECK(same_bits(first.at(name), third.at(name)));
    }
  }
}

TEST_CASE("moe cpu kernels refuse bad routing tables with an error", "[moe][cpu]") {
  REQUIRE_CPU_BACKEND();
  Graph g;
  auto x = g.input("x", {2, 4}, DType::F32);
  auto perm = g.input("perm", {2}, DType::I32);
  g.output("y", g.name(g.add_op(porta::OpKind::MoePermute, {x, perm}, porta::MoePermuteAttrs{1})[0],
                       "gather"));
  try {
    (void)run_on(g, "cpu",
                 {{"x", Tensor::zeros({2, 4}, DType::F32)},
                  {"perm", Tensor::from_vector<std::int32_t>({2}, {1, -5})}});
    FAIL("a negative perm entry was accepted");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::InvalidArgument);
    CHECK_THAT(e.what(), Catch::Contains("gather") && Catch::Contains("-5"));
  }
}

}  // namespace cpu_moe_fast_path_tests

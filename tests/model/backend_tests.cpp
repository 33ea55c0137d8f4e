// The same model on every available backend: logits within tolerance of the reference backend,
// the same greedy tokens, and decode with the cache equal to recomputation there too.
#include <cstdio>

#include <catch2/catch.hpp>

#include <porta/device.hpp>

#include "model/model_test_support.hpp"

namespace porta::test::model_backend_tests {
namespace {

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (const auto& d : list_devices())
    if (d.available && d.name != "reference") names.push_back(d.name);
  return names;
}

TEST_CASE("Every available backend gives the reference backend's logits and greedy tokens",
          "[model]") {
  for (const std::string kind : {"deepseek_v3", "deepseek_v2", "qwen2_moe"}) {
    const model::Model m = load(tiny_model(kind, 3));
    const auto ids = prompt_ids();
    const std::vector<std::int32_t> prompt(ids.begin(), ids.end());
    const Tensor expected = porta_logits(m, ids);
    const auto e = expected.to_f32();
    double scale = 0;
    for (float v : e) scale = std::max(scale, double(std::fabs(v)));
    model::Session ref_session(m, {.capacity = 32});
    const auto ref_tokens = model::generate(ref_session, prompt, {.max_new_tokens = 8}).tokens;
    for (const auto& backend : available_backends()) {
      const Tensor got = porta_logits(m, ids, backend);
      const auto g = got.to_f32();
      REQUIRE(g.size() == e.size());
      double diff = 0;
      for (std::size_t i = 0; i < g.size(); ++i)
        diff = std::max(diff, double(std::fabs(g[i] - e[i])));
      model::Session session(m, {.backend = backend, .capacity = 32});
      const auto result = model::generate(session, prompt, {.max_new_tokens = 8});
      std::printf(
          "[model] %s on %s: prompt logits max |diff| %.3g vs reference (max |logit| "
          "%.3g); greedy tokens %s\n",
          kind.c_str(), backend.c_str(), diff, scale,
          result.tokens == ref_tokens ? "identical" : "DIFFER");
      INFO(kind << " on " << backend << ": max |diff| " << diff);
      // Backends may sum in another order (and use FMA); f32 rounding alone stays far below this.
      CHECK(diff < 1e-3 * std::max(1.0, scale));
      CHECK(result.tokens == ref_tokens);
    }
  }
}

TEST_CASE("Decode with the cache equals recomputation on every available backend", "[model]") {
  const model::Model m = load(tiny_model("deepseek_v3", 4));
  const auto ids = prompt_ids();
  const std::vector<std::int32_t> all(ids.begin(), ids.end());
  for (const auto& backend : available_backends()) {
    model::Session session(m, {.backend = backend, .capacity = 16});
    session.forward(std::span(all).first(4));
    double worst = 0;
    for (std::size_t i = 4; i < all.size(); ++i) {
      const auto step = session.forward(std::span(all).subspan(i, 1)).to_f32();
      const auto full =
          porta_logits(m, std::vector<int>(ids.begin(), ids.begin() + i + 1), backend).to_f32();
      const std::size_t vocab = step.size();
      for (std::size_t v = 0; v < vocab; ++v)
        worst = std::max(worst, double(std::fabs(step[v] - full[i * vocab + v])));
    }
    std::printf("[model] deepseek_v3 on %s: decode-with-cache vs recomputation max |diff| %.3g\n",
                backend.c_str(), worst);
    CHECK(worst < 1e-2);
  }
}

}  // namespace
}  // namespace porta::test::model_backend_tests

// Decoding with the KV cache gives the logits of full recomputation; sessions, sampling and
// generate() behave as documented.
#include <cstdio>

#include <catch2/catch.hpp>

#include "model/model_test_support.hpp"

namespace porta::test::model_decode_tests {
namespace {

// Prefill `split` tokens, then feed the rest one by one (or in one chunk); each step's logits
// must equal the last rows of a fresh prefill of the whole sequence so far.
double decode_vs_recompute(const std::string& kind, std::size_t split, bool chunked,
                           const std::string& backend = "reference") {
  const model::Model m = load(tiny_model(kind, 5));
  const auto ids = prompt_ids();
  const std::vector<std::int32_t> all(ids.begin(), ids.end());
  const auto vocab = m.config().vocab_size;
  model::Session session(m, {.backend = backend, .capacity = 16});
  session.forward(std::span(all).first(split));
  double worst = 0;
  auto compare = [&](const Tensor& step, std::size_t end) {
    const Tensor full = porta_logits(m, std::vector<int>(ids.begin(), ids.begin() + end), backend);
    const auto rows = step.shape()[0];
    const auto f = full.to_f32();
    const auto s = step.to_f32();
    REQUIRE(s.size() == static_cast<std::size_t>(rows * vocab));
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t v = 0; v < vocab; ++v) {
        const auto fi =
            static_cast<std::size_t>((static_cast<std::int64_t>(end) - rows + r) * vocab + v);
        worst =
            std::max(worst, double(std::fabs(s[static_cast<std::size_t>(r * vocab + v)] - f[fi])));
      }
  };
  if (chunked) {
    compare(session.forward(std::span(all).subspan(split)), all.size());
  } else {
    for (std::size_t i = split; i < all.size(); ++i)
      compare(session.forward(std::span(all).subspan(i, 1)), i + 1);
  }
  CHECK(session.position() == static_cast<std::int64_t>(all.size()));
  return worst;
}

TEST_CASE("Decode with the KV cache equals full recomputation, for every family", "[model]") {
  for (const auto& kind : model::tiny_kinds()) {
    const double step = decode_vs_recompute(kind, 3, false);
    const double chunk = decode_vs_recompute(kind, 5, true);
    std::printf(
        "[model] %s: decode-with-cache vs recomputation max |diff| %.3g (one token per "
        "step), %.3g (a 3-token chunk)\n",
        kind.c_str(), step, chunk);
    INFO(kind << ": one-token steps max |diff| " << step << ", chunked " << chunk);
    CHECK(step < 1e-5);
    CHECK(chunk < 1e-5);
  }
}

TEST_CASE("The MLA cache holds the normalised latent and the rotated k_pe per position",
          "[model]") {
  const model::Model m = load(tiny_model("deepseek_v3", 5));
  const auto& c = m.config();
  const auto slots = m.cache_slots();
  REQUIRE(slots.size() == 1);
  CHECK(slots[0].name == "latent");
  CHECK(slots[0].heads == 1);
  CHECK(slots[0].dim == c.kv_lora_rank + c.qk_rope_head_dim);
  model::Session session(m, {.capacity = 8});
  const std::vector<std::int32_t> ids{1, 2, 3};
  session.forward(ids);
  const Tensor& cache = session.cache(0, "latent");
  CHECK(cache.shape() == Shape{8, 1, 24});
  const auto v = cache.to_f32();
  // Written rows are non-zero, rows past the position are untouched.
  double written = 0, beyond = 0;
  for (std::size_t i = 0; i < 3 * 24; ++i) written += std::fabs(v[i]);
  for (std::size_t i = 3 * 24; i < v.size(); ++i) beyond += std::fabs(v[i]);
  CHECK(written > 0);
  CHECK(beyond == 0);
}

TEST_CASE("Greedy generate() equals argmax over recomputed logits", "[model]") {
  const model::Model m = load(tiny_model("deepseek_v2", 9));
  const std::vector<std::int32_t> prompt{7, 8, 9};
  model::Session session(m, {.capacity = 16, .all_logits = true});
  const auto result = model::generate(session, prompt, {.max_new_tokens = 6});
  REQUIRE(result.tokens.size() == 6);
  CHECK(result.decode_steps == 5);
  CHECK(result.prompt_logits.shape() == Shape{3, 256});
  std::vector<int> seq(prompt.begin(), prompt.end());
  for (std::size_t i = 0; i < 6; ++i) {
    const Tensor logits = porta_logits(m, seq);
    const auto vocab = static_cast<std::size_t>(logits.shape()[1]);
    const float* last = logits.data_as<float>() + (seq.size() - 1) * vocab;
    const int expected = model::argmax({last, vocab});
    CHECK(result.tokens[i] == expected);
    seq.push_back(expected);
  }
  // An end token stops generation after it is emitted.
  model::Session again(m, {.capacity = 16});
  const auto stopped =
      model::generate(again, prompt, {.max_new_tokens = 6, .eos_token = result.tokens[1]});
  CHECK(stopped.tokens ==
        std::vector<std::int32_t>(result.tokens.begin(), result.tokens.begin() + 2));
}

TEST_CASE("Sessions reject bad token ids, overflowing capacity and reuse without reset",
          "[model]") {
  const model::Model m = load(tiny_model("mixtral", 1));
  model::Session session(m, {.capacity = 4});
  const std::vector<std::int32_t> bad{1, 256};
  CHECK_THROWS_WITH(session.forward(bad),
                    Catch::Contains("token id 256") && Catch::Contains("outside the vocabulary"));
  const std::vector<std::int32_t> five{1, 2, 3, 4, 5};
  CHECK_THROWS_WITH(session.forward(five), Catch::Contains("capacity of 4"));
  const std::vector<std::int32_t> two{1, 2};
  session.forward(two);
  CHECK_THROWS_WITH(model::generate(session, two, {}), Catch::Contains("fresh session"));
  session.reset();
  CHECK(session.position() == 0);
  CHECK_THROWS_WITH(model::generate(session, two, {.max_new_tokens = 4}),
                    Catch::Contains("exceeds the session's capacity"));
}

TEST_CASE("Sampling: greedy ties, seeded temperature sampling, top-p, NaN", "[model]") {
  const std::vector<float> tie{1.0f, 3.0f, 3.0f, -1.0f};
  CHECK(model::argmax(tie) == 1);
  model::Sampler greedy;
  CHECK(greedy.sample(tie) == 1);

  const std::vector<float> logits{0.0f, 1.0f, 2.0f, 0.5f};
  auto draw = [&](std::uint64_t seed, float top_p, int n) {
    model::Sampler s({.temperature = 1.0f, .top_p = top_p, .seed = seed});
    std::vector<int> counts(4);
    for (int i = 0; i < n; ++i) ++counts[static_cast<std::size_t>(s.sample(logits))];
    return counts;
  };
  CHECK(draw(42, 1.0f, 200) == draw(42, 1.0f, 200));  // a seed reproduces its tokens
  CHECK(draw(42, 1.0f, 200) != draw(43, 1.0f, 200));
  // Frequencies follow softmax(logits) (20000 draws: 4 sigma of a binomial is below 0.015).
  const auto counts = draw(1, 1.0f, 20000);
  double z = 0;
  for (float l : logits) z += std::exp(l);
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(counts[i] / 20000.0 == Approx(std::exp(logits[i]) / z).margin(0.015));
  // top_p 0.5: only the most likely token (p = 0.58) is in the nucleus.
  CHECK(draw(3, 0.5f, 100)[2] == 100);
  // top_p 0.75: tokens 2 and 1 (0.58 + 0.21) and nothing else.
  const auto nucleus = draw(3, 0.75f, 2000);
  CHECK(nucleus[0] == 0);
  CHECK(nucleus[3] == 0);
  CHECK(nucleus[1] > 0);
  const std::vector<float> nan{0.0f, std::nanf("")};
  CHECK_THROWS_WITH(greedy.sample(nan), Catch::Contains("NaN"));
  CHECK_THROWS_AS(model::Sampler({.temperature = -1.0f}), Error);
  CHECK_THROWS_AS(model::Sampler({.temperature = 1.0f, .top_p = 0.0f}), Error);
}

}  // namespace
}  // namespace porta::test::model_decode_tests

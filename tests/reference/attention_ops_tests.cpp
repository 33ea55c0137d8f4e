// Reference attention: single keys, hand-computed softmax weights, causal masking, GQA head
// mapping, Dk != Dv, the default scale and the KV cache.

#include <cmath>
#include <string>

#include <porta/error.hpp>

#include "reference/ops_test_support.hpp"

namespace reference_attention_ops_tests {

using namespace ops_test;

namespace {

const float kLn3 = static_cast<float>(std::log(3.0));

struct QKV {
  porta::Shape q_shape, k_shape, v_shape;
  std::vector<float> q, k, v;
};

porta::Tensor attend(const QKV& in, porta::AttentionAttrs attrs) {
  porta::Graph g;
  auto q = g.input("q", in.q_shape, porta::DType::F32);
  auto k = g.input("k", in.k_shape, porta::DType::F32);
  auto v = g.input("v", in.v_shape, porta::DType::F32);
  return run_single(
      g, g.attention(q, k, v, attrs),
      {{"q", f32(in.q_shape, in.q)}, {"k", f32(in.k_shape, in.k)}, {"v", f32(in.v_shape, in.v)}});
}

}  // namespace

TEST_CASE("attention over a single key returns its value (Dk != Dv)", "[ops][attention]") {
  const QKV in{{1, 1, 2}, {1, 1, 2}, {1, 1, 3}, {0.3f, -2}, {5, 7}, {1, -2, 4}};
  check_close(attend(in, {}).to_f32(), {1, -2, 4});
}

TEST_CASE("attention weights are the softmax of the scaled scores", "[ops][attention]") {
  // scale 1: scores q·k = [0, ln3] -> weights [1/4, 3/4].
  const QKV in{{1, 1, 2}, {2, 1, 2}, {2, 1, 2}, {1, 0}, {0, 0, kLn3, 5}, {1, 0, 0, 1}};
  check_close(attend(in, {.causal = false, .scale = 1.0f}).to_f32(), {0.25, 0.75});
}

TEST_CASE("attention's default scale is 1/sqrt(Dk)", "[ops][attention]") {
  // Dk = 4, q = ones, k1 = ln3/2 · ones: q·k1 = 2·ln3, times 1/2 = ln3 -> weights [1/4, 3/4].
  const float h = kLn3 / 2;
  const QKV in{{1, 1, 4}, {2, 1, 4}, {2, 1, 1}, {1, 1, 1, 1}, {0, 0, 0, 0, h, h, h, h}, {4, 8}};
  check_close(attend(in, {.causal = false}).to_f32(), {0.25 * 4 + 0.75 * 8});
}

TEST_CASE("causal attention hides later keys", "[ops][attention]") {
  // Two queries, two keys, scale 1. Query 0 sees key 0 only; query 1 sees both, scores [0, ln3].
  const QKV in{{2, 1, 2}, {2, 1, 2}, {2, 1, 2}, {1, 0, 1, 0}, {0, 0, kLn3, 5}, {1, 0, 0, 1}};
  check_close(attend(in, {.causal = true, .scale = 1.0f}).to_f32(), {1, 0, 0.25, 0.75});
  // Without the mask query 0 also sees key 1.
  check_close(attend(in, {.causal = false, .scale = 1.0f}).to_f32(), {0.25, 0.75, 0.25, 0.75});
}

TEST_CASE("a causal query that sees no key outputs zeros", "[ops][attention]") {
  // Tq = 2 > N = 1: the queries align with the last positions, so query 0 precedes every key.
  const QKV in{{2, 1, 1}, {1, 1, 1}, {1, 1, 2}, {1, 1}, {1}, {3, 4}};
  check_close(attend(in, {.causal = true}).to_f32(), {0, 0, 3, 4}, 0.0);
}

TEST_CASE("grouped-query attention maps query head h to kv head h / (Hq / Hkv)",
          "[ops][attention]") {
  // Hq = 4, Hkv = 2, one key: heads 0, 1 read kv head 0's value, heads 2, 3 kv head 1's.
  const QKV in{{1, 4, 1}, {1, 2, 1}, {1, 2, 2}, {1, 2, 3, 4}, {1, 1}, {10, 20, 30, 40}};
  check_close(attend(in, {}).to_f32(), {10, 20, 10, 20, 30, 40, 30, 40});
}

TEST_CASE("grouped-query attention with several keys weights per head", "[ops][attention]") {
  // Hq = 2, Hkv = 1, two keys, scale 1. Head 0 (q = 1) scores [0, ln3]; head 1 (q = 0) is uniform.
  const QKV in{{1, 2, 1}, {2, 1, 1}, {2, 1, 1}, {1, 0}, {0, kLn3}, {4, 8}};
  check_close(attend(in, {.causal = false, .scale = 1.0f}).to_f32(), {7, 6});
}

namespace {

// Attention of (q, new k/v) after a cache holding `cache_len` valid rows out of S = 4.
porta::Tensor attend_cached(std::int64_t cache_len, bool causal, const std::string& node = "attn") {
  porta::Graph g;
  auto q = g.input("q", {2, 1, 2}, porta::DType::F32);
  auto k = g.input("k", {2, 1, 2}, porta::DType::F32);
  auto v = g.input("v", {2, 1, 1}, porta::DType::F32);
  auto kc = g.input("k_cache", {4, 1, 2}, porta::DType::F32);
  auto vc = g.input("v_cache", {4, 1, 1}, porta::DType::F32);
  auto len = g.input("len", {1}, porta::DType::I64);
  auto y = g.name(
      g.attention(q, k, v, kc, vc, len, {.causal = causal, .scale = 1.0f, .kv_cache = true}), node);
  // Rows 2 and 3 of the cache are garbage that must never be read when cache_len = 2.
  return run_single(g, y,
                    {{"q", f32({2, 1, 2}, {1, 0, 1, 0})},
                     {"k", f32({2, 1, 2}, {0, 0, kLn3, 0})},
                     {"v", f32({2, 1, 1}, {2, 6})},
                     {"k_cache", f32({4, 1, 2}, {0, 0, 0, 0, 1000, 0, 1000, 0})},
                     {"v_cache", f32({4, 1, 1}, {1, 3, 1e6f, 1e6f})},
                     {"len", i64({1}, {cache_len})}});
}

}  // namespace

TEST_CASE("attention with a KV cache equals attention over the concatenated keys",
          "[ops][attention]") {
  // Keys: cache rows 0, 1 then the new k rows: scores for q = (1, 0) are [0, 0, 0, ln3].
  // Causal (N = 4, Tq = 2): query 0 sees keys 0..2 (uniform over values 1, 3, 2 -> 2);
  // query 1 sees all four, weights [1, 1, 1, 3] / 6 over values [1, 3, 2, 6] -> 24 / 6 = 4.
  check_close(attend_cached(2, true).to_f32(), {2, 4}, 1e-6);
  // The same keys built by concatenation and fed to the cache-free op.
  const QKV concatenated{
      {2, 1, 2}, {4, 1, 2}, {4, 1, 1}, {1, 0, 1, 0}, {0, 0, 0, 0, 0, 0, kLn3, 0}, {1, 3, 2, 6}};
  check_close(attend(concatenated, {.causal = true, .scale = 1.0f}).to_f32(), {2, 4}, 1e-6);
  // Non-causal: both queries see all four keys.
  check_close(attend_cached(2, false).to_f32(), {4, 4}, 1e-6);
}

TEST_CASE("attention with an empty cache uses the new keys only", "[ops][attention]") {
  // N = Tq = 2: query 0 sees key 0 (value 2); query 1 sees both, scores [0, ln3] -> 0.5 + 4.5 = 5.
  check_close(attend_cached(0, true).to_f32(), {2, 5}, 1e-6);
}

TEST_CASE("attention rejects a cache_len beyond the cache", "[ops][attention]") {
  try {
    attend_cached(5, true, "layer0.attn");
    FAIL("expected porta::Error");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::InvalidArgument);
    const std::string message = e.what();
    CHECK_THAT(message, Catch::Contains("layer0.attn") && Catch::Contains("attention") &&
                            Catch::Contains("5"));
  }
  CHECK_THROWS_AS(attend_cached(-1, true), porta::Error);
}

}  // namespace reference_attention_ops_tests

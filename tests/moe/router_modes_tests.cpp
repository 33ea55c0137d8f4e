// moe_router's valid mask, hash mode and expert-choice mode on the reference backend. Every
// expectation is worked out by hand from docs/moe-router.md (the comments show the working).
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "moe/moe_test_support.hpp"

namespace moe_router_modes_tests {

using namespace porta_moe_test;
using porta::moe::Mode;
using porta::moe::Score;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Softmax of one row, in double, independently of the library.
std::vector<double> softmax(const std::vector<float>& row) {
  double z = 0;
  for (float v : row) z += std::exp(double{v});
  std::vector<double> s;
  for (float v : row) s.push_back(std::exp(double{v}) / z);
  return s;
}

}  // namespace

TEST_CASE("moe router valid mask: padding rows get no experts and are not counted", "[moe]") {
  auto a = router(4, 2, Score::Identity);
  a.use_valid = true;
  RouterExtras x;
  x.valid = {1, 0, 1};
  // Row 1 is padding (and holds a NaN that must not matter).
  const std::vector<float> logits{4, 3, 2, 1, kNaN, 9, 9, 9, 1, 2, 5, 4};
  const auto r = run_router(logits, 3, a, x);
  CHECK(r.ids == std::vector<std::int32_t>{0, 1, -1, -1, 2, 3});
  CHECK(r.weights == std::vector<float>{4, 3, 0, 0, 5, 4});
  CHECK(r.counts == std::vector<std::int32_t>{1, 1, 1, 1});
  CHECK(r.offsets == std::vector<std::int32_t>{0, 1, 2, 3, 4});
  CHECK(r.perm == std::vector<std::int32_t>{0, 1, 4, 5, 6, 6});  // two free slots: sentinel 6
  CHECK(r.inv == std::vector<std::int32_t>{0, 1, -1, -1, 2, 3});
  CHECK(r.nonfinite == std::vector<std::int32_t>{0, 0, 0});
  // Means over the two valid rows only: (4 + 1) / 2, (3 + 2) / 2, (2 + 5) / 2, (1 + 4) / 2.
  CHECK(r.mean_score == std::vector<float>{2.5f, 2.5f, 3.5f, 2.5f});

  SECTION("capacity counts valid rows only: a padded batch routes as the unpadded one") {
    auto s = porta::moe::switch_capacity(1.0f, 2);
    s.use_valid = true;
    RouterExtras v;
    v.valid = {1, 0, 0, 1};  // T_valid = 2: C = ceil(1 · 2 · 1 / 2) = 1, not ceil(4 / 2) = 2
    const auto c = run_router({1, 0, 1, 0, 1, 0, 1, 0}, 4, s, v);
    CHECK(c.ids == std::vector<std::int32_t>{0, -1, -1, -1});
    CHECK(c.counts == std::vector<std::int32_t>{1, 0});
    CHECK(c.dropped == std::vector<std::int32_t>{1, 0});
  }
  SECTION("i8 and i64 masks work the same") {
    for (auto dtype : {porta::DType::I8, porta::DType::I64}) {
      porta::Graph g;
      porta::MoeRouterInputs in;
      in.logits = g.input("logits", {3, 4}, porta::DType::F32);
      in.valid = g.input("valid", {3}, dtype);
      const auto route = g.moe_router(in, a);
      g.output("ids", route.ids);
      auto exe = porta::compile(g);
      const auto out =
          exe.run({{"logits", porta::Tensor::from_vector<float>({3, 4}, logits)},
                   {"valid", porta::Tensor::from_f32({3}, dtype, std::vector<float>{1, 0, 1})}});
      CHECK(ints(out.at("ids")) == r.ids);
    }
  }
}

TEST_CASE("moe router hash mode takes ids from the table and weighs them by score", "[moe]") {
  auto a = router(4, 2, Score::Softmax);
  a.mode = Mode::Hash;
  a.scale = 2.0f;
  RouterExtras x;
  x.hash_table = {1, 3, 2, 0, 3, 2};  // V = 3: token id 0 -> [1, 3], 1 -> [2, 0], 2 -> [3, 2]
  x.token_ids = {2, 0, 1};
  const std::vector<float> logits{0.5f, -1, 2, 0, 1, 1, -2, 3, 0, 0.25f, 0.75f, -0.5f};
  const auto r = run_router(logits, 3, a, x);
  CHECK(r.ids == std::vector<std::int32_t>{3, 2, 1, 3, 2, 0});
  const std::vector<std::vector<int>> ids{{3, 2}, {1, 3}, {2, 0}};
  for (std::size_t t = 0; t < 3; ++t) {
    const auto s = softmax(std::vector<float>(logits.begin() + static_cast<long>(t * 4),
                                              logits.begin() + static_cast<long>(t * 4 + 4)));
    for (std::size_t k = 0; k < 2; ++k)
      CHECK(r.weights[t * 2 + k] == Approx(2.0 * s[static_cast<std::size_t>(ids[t][k])]));
  }
  // Expert 0: a = 5; 1: a = 2; 2: a = 1, 4; 3: a = 0, 3.
  CHECK(r.counts == std::vector<std::int32_t>{1, 1, 2, 2});
  CHECK(r.offsets == std::vector<std::int32_t>{0, 1, 2, 4, 6});
  CHECK(r.perm == std::vector<std::int32_t>{5, 2, 1, 4, 0, 3});
  CHECK(r.inv == std::vector<std::int32_t>{4, 2, 1, 5, 3, 0});

  SECTION("renormalized over the table's experts") {
    a.renormalize = true;
    const auto n = run_router(logits, 3, a, x);
    const auto s = softmax({0.5f, -1, 2, 0});
    CHECK(n.weights[0] == Approx(2.0 * s[3] / (s[3] + s[2])));
    CHECK(n.weights[1] == Approx(2.0 * s[2] / (s[3] + s[2])));
  }
  SECTION("with capacity: Switch-style hash routing drops in token order") {
    auto c = porta::moe::switch_capacity(1.0f, 2);
    c.mode = Mode::Hash;
    RouterExtras h;
    h.hash_table = {0, 1};
    h.token_ids = {0, 0, 0, 1};  // C = ceil(4 / 2) = 2: the third token for expert 0 is dropped
    const auto d = run_router(std::vector<float>(8, 0.0f), 4, c, h);
    CHECK(d.ids == std::vector<std::int32_t>{0, 0, -1, 1});
    CHECK(d.weights == std::vector<float>{0.5f, 0.5f, 0.0f, 0.5f});
    CHECK(d.dropped == std::vector<std::int32_t>{1, 0});
  }
  SECTION("padding rows are not looked up, even with an out-of-range token id") {
    a.use_valid = true;
    RouterExtras v = x;
    v.valid = {1, 0, 1};
    v.token_ids = {2, 99, 1};
    const auto p = run_router(logits, 3, a, v);
    CHECK(p.ids == std::vector<std::int32_t>{3, 2, -1, -1, 2, 0});
  }
}

TEST_CASE("moe router hash mode refuses token ids and tables out of range at run time", "[moe]") {
  auto a = router(4, 2, Score::Softmax);
  a.mode = Mode::Hash;
  const auto expect_refused = [&](std::vector<std::int32_t> table, std::vector<std::int32_t> ids,
                                  const char* what) {
    RouterExtras x;
    x.hash_table = std::move(table);
    x.token_ids = std::move(ids);
    try {
      (void)run_router(std::vector<float>(8, 0.0f), 2, a, x);
      FAIL("accepted " << what);
    } catch (const porta::Error& e) {
      CHECK(e.code() == porta::ErrorCode::InvalidArgument);
      CHECK_THAT(e.what(), Catch::Contains(what));
    }
  };
  expect_refused({1, 3, 2, 0}, {0, 2}, "token_ids[1] = 2");
  expect_refused({1, 3, 2, 0}, {-1, 0}, "token_ids[0] = -1");
  expect_refused({1, 4, 2, 0}, {0, 1}, "hash_table[0, 1] = 4");
  expect_refused({1, 3, 2, 2}, {0, 1}, "twice");
}

TEST_CASE("moe router expert choice: each expert takes its C best tokens", "[moe]") {
  // E = 3, T = 4, K = 1: C = ceil(4 · 1 / 3) = 2.
  //   t0 [5 1 0]  t1 [4 2 3]  t2 [0 3 1]  t3 [1 0 2]
  // Expert 0 takes t0, t1; expert 1 takes t2, t1; expert 2 takes t1, t3.
  // t1's experts by value: 0 (4), 2 (3), 1 (2).
  auto a = router(3, 1, Score::Identity);
  a.mode = Mode::ExpertChoice;
  const std::vector<float> logits{5, 1, 0, 4, 2, 3, 0, 3, 1, 1, 0, 2};
  const auto r = run_router(logits, 4, a);
  CHECK(r.ids == std::vector<std::int32_t>{0, -1, -1, 0, 2, 1, 1, -1, -1, 2, -1, -1});
  CHECK(r.weights == std::vector<float>{5, 0, 0, 4, 3, 2, 3, 0, 0, 2, 0, 0});
  CHECK(r.counts == std::vector<std::int32_t>{2, 2, 2});
  CHECK(r.offsets == std::vector<std::int32_t>{0, 2, 4, 6});
  // a = t·E + slot. Expert 0: a = 0, 3; 1: a = 5, 6; 2: a = 4, 9.
  CHECK(r.perm == std::vector<std::int32_t>{0, 3, 5, 6, 4, 9});
  CHECK(r.inv == std::vector<std::int32_t>{0, -1, -1, 1, 4, 2, 3, -1, -1, 5, -1, -1});
  CHECK(r.dropped == std::vector<std::int32_t>{0, 0, 0});
  CHECK(r.mean_score == std::vector<float>{2.5f, 1.5f, 1.5f});

  SECTION("ties go to the lower token; a token may get no expert") {
    auto t = router(2, 1, Score::Identity);
    t.mode = Mode::ExpertChoice;  // C = ceil(3 / 2) = 2
    const auto z = run_router(std::vector<float>(6, 0.0f), 3, t);
    CHECK(z.ids == std::vector<std::int32_t>{0, 1, 0, 1, -1, -1});
    CHECK(z.perm == std::vector<std::int32_t>{0, 2, 1, 3});
  }
  SECTION("capacity factor 2 with T = 2, E = 2: every expert takes every token") {
    auto f = router(2, 1, Score::Softmax);
    f.mode = Mode::ExpertChoice;
    f.capacity_factor = 2.0f;  // C = ceil(2 · 2 · 1 / 2) = 2 = T
    f.renormalize = true;
    const auto all = run_router({1, 3, 0.5f, -0.5f}, 2, f);
    CHECK(all.ids == std::vector<std::int32_t>{1, 0, 0, 1});
    const auto s0 = softmax({1, 3}), s1 = softmax({0.5f, -0.5f});
    CHECK(all.weights[0] == Approx(s0[1]));
    CHECK(all.weights[1] == Approx(s0[0]));
    CHECK(all.weights[2] == Approx(s1[0]));
    CHECK(all.weights[3] == Approx(s1[1]));
  }
  SECTION("valid mask: C from the valid rows, padding never chosen") {
    a.use_valid = true;
    RouterExtras v;
    v.valid = {1, 1, 0, 1};  // C = ceil(3 / 3) = 1; expert 0 takes t0, 1 and 2 take t1
    const auto m = run_router(logits, 4, a, v);
    CHECK(m.ids == std::vector<std::int32_t>{0, -1, -1, 2, 1, -1, -1, -1, -1, -1, -1, -1});
    CHECK(m.counts == std::vector<std::int32_t>{1, 1, 1});
    constexpr std::int32_t S = 12;  // P = E · C(T = 4) = 6 rows, three of them free
    CHECK(m.perm == std::vector<std::int32_t>{0, 4, 3, S, S, S});
    CHECK(m.offsets == std::vector<std::int32_t>{0, 1, 2, 3});
  }
  SECTION("NaN rows rank last and raise nonfinite") {
    auto n = router(2, 1, Score::Identity);
    n.mode = Mode::ExpertChoice;  // C = 1 for T = 2
    const auto q = run_router({kNaN, kNaN, -5, -7}, 2, n);
    CHECK(q.nonfinite == std::vector<std::int32_t>{1, 0});
    CHECK(q.ids == std::vector<std::int32_t>{-1, -1, 0, 1});
  }
  SECTION("shapes: [T, E] slots and E · C (+ padding) rows of perm") {
    porta::Graph g;
    a.block_size = 4;
    const auto route = g.moe_router(g.input("logits", {4, 3}, porta::DType::F32), a);
    CHECK(route.top_k == 3);
    CHECK(route.ids.shape() == porta::Shape{4, 3});
    CHECK(route.weights.shape() == porta::Shape{4, 3});
    CHECK(route.inv.shape() == porta::Shape{12});
    CHECK(route.perm.shape() == porta::Shape{3 * 2 + 3 * 3});
  }
}

TEST_CASE("moe router size helpers", "[moe]") {
  auto a = porta::moe::switch_capacity(1.25f, 4);
  CHECK(porta::moe::slots_per_token(a) == 1);
  CHECK(porta::moe::expert_capacity(a, 8) == 3);  // ceil(1.25 · 8 / 4)
  CHECK(porta::moe::expert_capacity(porta::moe::mixtral(), 8) == -1);
  CHECK(porta::moe::perm_rows(a, 8) == 8);
  a.mode = Mode::ExpertChoice;
  CHECK(porta::moe::slots_per_token(a) == 4);
  CHECK(porta::moe::expert_capacity(a, 8) == 3);
  CHECK(porta::moe::expert_capacity(a, 0) == 0);
  a.capacity_factor = 100.0f;
  CHECK(porta::moe::expert_capacity(a, 8) == 8);  // never more than T
  a.block_size = 2;
  CHECK(porta::moe::perm_rows(a, 8) == 4 * 8 + 4);
}

}  // namespace moe_router_modes_tests

// Every dense kernel of the cpu backend against the reference backend, in f32 and bf16, over
// shapes beyond the conformance cases: odd sizes, broadcasting, transposes, batches, T = 1.
#include "cpu/cpu_test_support.hpp"

namespace cpu_kernels_tests {

using namespace cpu_test;
using porta::DType;
using porta::Value;

namespace {

void check_both_dtypes(const Build& build, double f32_tolerance = 2e-5) {
  for (DType dtype : {DType::F32, DType::BF16}) {
    INFO("dtype " << porta::dtype_name(dtype));
    CHECK(cpu_error(build, dtype) <= tolerance(dtype, f32_tolerance));
  }
}

}  // namespace

TEST_CASE("cpu matmul matches the reference on odd, transposed, batched and T=1 shapes",
          "[cpu][matmul]") {
  struct Case {
    porta::Shape a, b;
    bool ta, tb, b_constant;
  };
  const std::vector<Case> cases{
      {{1, 2048}, {2048, 64}, false, false, true},     // decode, weight reordered once
      {{17, 33}, {33, 5}, false, false, false},        // odd sizes, runtime b
      {{13, 40}, {29, 40}, false, true, true},         // nn.Linear layout
      {{40, 13}, {40, 29}, true, false, false},        // transpose_a
      {{40, 7}, {9, 40}, true, true, true},            // both transposed
      {{3, 5, 16}, {3, 16, 4}, false, false, false},   // batched
      {{2, 1, 6, 8}, {3, 8, 5}, false, false, false},  // batch broadcast both ways
      {{4, 6, 10}, {10, 3}, false, false, true},       // rank-2 weight over a batch
      // At most 8 rows against a constant bf16 weight (AVX2: the weight streamed as bf16);
      // K not a multiple of the vector loop's 16 or 8.
      {{3, 37}, {37, 19}, false, false, true},
      {{8, 45}, {21, 45}, false, true, true},
      // Batched against a constant weight (MLA's per-head absorbed projections): few rows per
      // batch entry streamed per entry, a [B, K, N] weight transposed once, many rows.
      {{3, 1, 40}, {3, 21, 40}, false, true, true},
      {{3, 2, 40}, {3, 40, 21}, false, false, true},
      {{3, 12, 40}, {3, 21, 40}, false, true, true},
  };
  for (const auto& c : cases) {
    INFO("a" << c.a.to_string() << " b" << c.b.to_string() << " ta " << c.ta << " tb " << c.tb);
    check_both_dtypes([c](CaseBuilder& b) -> std::vector<Value> {
      auto a = b.input("a", c.a);
      auto w = c.b_constant ? b.weight("b", c.b) : b.input("b", c.b);
      return {b.graph.matmul(a, w, {c.ta, c.tb})};
    });
  }
}

TEST_CASE("cpu matmul with bf16 weights and f32 activations accumulates in f32", "[cpu][matmul]") {
  struct Case {
    porta::Shape x, w;
    bool transpose_b;
  };
  // Plain; batched [B, N, K] weights (per-head projections) at many rows (bf16 panels widened
  // per batch entry) and at one row (streamed as bf16).
  const std::vector<Case> cases{{{7, 96}, {96, 24}, false},
                                {{4, 12, 96}, {4, 24, 96}, true},
                                {{4, 1, 96}, {4, 24, 96}, true}};
  for (const auto& c : cases) {
    INFO("x" << c.x.to_string() << " w" << c.w.to_string());
    const Build build = [c](CaseBuilder& b) -> std::vector<Value> {
      auto x = b.input_f32("x", c.x);
      auto w = b.graph.weight("w", b.random_tensor(c.w, -1, 1, DType::BF16));
      return {b.graph.matmul(x, w, {.transpose_b = c.transpose_b})};
    };
    // The reference sees the same bf16 weight (widened exactly) and f32 activations.
    CaseBuilder test = make_case(build, DType::F32, DType::F32, 3);
    CaseBuilder ref = make_case(build, DType::F32, DType::F32, 3);
    const auto got = porta::compile(test.graph, on("cpu")).run(test.inputs).at("out0").to_f32();
    const auto want =
        porta::compile(ref.graph, on("reference")).run(ref.inputs).at("out0").to_f32();
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-4));
  }
}

TEST_CASE("cpu matmul with f16 weights runs porta's row kernels, not the fallback",
          "[cpu][matmul]") {
  // A GGUF's F16 matrices: [N, K] constants at decode's few rows (dot rows) and at a prompt's
  // many (widened panels, the GEMM of dequantized panels), plain and batched; K 200 leaves
  // vector tails. The reference widens the same f16 values exactly.
  struct Case {
    porta::Shape x, w;
  };
  const std::vector<Case> cases{{{1, 200}, {70, 200}},
                                {{8, 200}, {70, 200}},
                                {{100, 200}, {70, 200}},
                                {{3, 9, 64}, {3, 40, 64}}};
  for (const auto& c : cases) {
    INFO("x" << c.x.to_string() << " w" << c.w.to_string());
    const Build build = [c](CaseBuilder& b) -> std::vector<Value> {
      auto x = b.input_f32("x", c.x);
      auto w = b.graph.weight("w", b.random_tensor(c.w, -1, 1, DType::F16));
      return {b.graph.matmul(x, w, {.transpose_b = true})};
    };
    CaseBuilder test = make_case(build, DType::F32, DType::F32, 5);
    CaseBuilder ref = make_case(build, DType::F32, DType::F32, 5);
    auto exe = porta::compile(test.graph, on("cpu"));  // no fallback: cpu must take it
    const auto got = exe.run(test.inputs).at("out0").to_f32();
    const auto want =
        porta::compile(ref.graph, on("reference")).run(ref.inputs).at("out0").to_f32();
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-4));
  }
  // An f16 weight stored [K, N] (or any f16 operand that is not a weight) is declined honestly.
  porta::Graph g;
  auto x = g.input("x", {4, 8}, DType::F32);
  auto w = g.weight("w", porta::Tensor::from_f32({8, 3}, DType::F16, std::vector<float>(24, 0.5f)));
  g.output("y", g.name(g.matmul(x, w), "kn_f16"));
  auto exe = porta::compile(g, on("cpu", "reference"));
  REQUIRE(exe.placement().size() == 1);
  CHECK(exe.placement()[0].backend == "reference");
  CHECK_THAT(exe.placement()[0].reason, Catch::Contains("f16"));
}

TEST_CASE("cpu matmul with K = 0 or an empty output", "[cpu][matmul]") {
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    return {b.graph.matmul(b.input("a", {3, 0}), b.input("b", {0, 4}))};
  });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    return {b.graph.matmul(b.input("a", {0, 5}), b.weight("b", {5, 4}))};
  });
}

TEST_CASE("cpu binary ops broadcast either operand", "[cpu][binary]") {
  const std::vector<std::pair<porta::Shape, porta::Shape>> shapes{
      {{5, 37}, {5, 37}}, {{2, 3, 17}, {17}}, {{17}, {2, 3, 17}},
      {{4, 1}, {1, 9}},   {{1}, {3, 4}},      {{2, 1, 5}, {3, 1}}};
  for (porta::OpKind op :
       {porta::OpKind::Add, porta::OpKind::Sub, porta::OpKind::Mul, porta::OpKind::Div})
    for (const auto& [sa, sb] : shapes) {
      INFO(porta::op_name(op) << " " << sa.to_string() << " " << sb.to_string());
      check_both_dtypes([op, sa, sb](CaseBuilder& b) -> std::vector<Value> {
        auto x = b.input("a", sa);
        auto y = op == porta::OpKind::Div ? b.input("b", sb, 0.5f, 2.0f) : b.input("b", sb);
        return {b.graph.add_op(op, {x, y})[0]};
      });
    }
}

TEST_CASE("cpu unary ops, swiglu and softmax on odd shapes", "[cpu][eltwise]") {
  for (porta::OpKind op : {porta::OpKind::Silu, porta::OpKind::Sigmoid, porta::OpKind::Exp}) {
    INFO(porta::op_name(op));
    check_both_dtypes([op](CaseBuilder& b) -> std::vector<Value> {
      return {b.graph.add_op(op, {b.input("x", {3, 7, 11}, -5, 5)})[0]};
    });
  }
  for (auto approx : {porta::GeluApproximation::None, porta::GeluApproximation::Tanh})
    check_both_dtypes([approx](CaseBuilder& b) -> std::vector<Value> {
      return {b.graph.gelu(b.input("x", {1, 1001}, -6, 6), {approx})};
    });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    return {b.graph.swiglu(b.input("g", {3, 1000}, -4, 4), b.input("u", {3, 1000}))};
  });
  for (int axis : {-1, 0, 1})
    check_both_dtypes([axis](CaseBuilder& b) -> std::vector<Value> {
      return {b.graph.softmax(b.input("x", {3, 5, 129}, -8, 8), axis)};
    });
}

TEST_CASE("cpu rms_norm and layer_norm on odd widths and T=1", "[cpu][norm]") {
  for (std::int64_t hidden : {1, 7, 64, 2049})
    for (std::int64_t tokens : {1, 5}) {
      INFO("tokens " << tokens << " hidden " << hidden);
      check_both_dtypes([=](CaseBuilder& b) -> std::vector<Value> {
        return {b.graph.rms_norm(b.input("x", {tokens, hidden}), b.weight("w", {hidden}, 0.5, 1.5),
                                 1e-6f)};
      });
      check_both_dtypes([=](CaseBuilder& b) -> std::vector<Value> {
        return {b.graph.layer_norm(b.input("x", {tokens, hidden}, -2, 3),
                                   b.input("w", {hidden}, 0.5, 1.5), b.weight("b", {hidden}),
                                   1e-5f)};
      });
    }
}

TEST_CASE("cpu rope, attention, embedding and top_k", "[cpu][positions]") {
  const auto positions = [](CaseBuilder& b, std::int64_t n, std::int32_t start) {
    std::vector<std::int32_t> p(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < p.size(); ++i) p[i] = start + static_cast<std::int32_t>(3 * i);
    return b.exact_input("pos", porta::Tensor::from_vector<std::int32_t>({n}, p));
  };
  for (auto layout : {porta::RopeLayout::NeoX, porta::RopeLayout::Interleaved})
    check_both_dtypes([=](CaseBuilder& b) -> std::vector<Value> {
      porta::RopeAttrs a;
      a.layout = layout;
      a.rotary_dim = 32;
      return {b.graph.rope(b.input("x", {3, 5, 40}), positions(b, 3, 11), a)};
    });
  check_both_dtypes([=](CaseBuilder& b) -> std::vector<Value> {
    return {b.graph.rope(b.input("x", {1, 64}), positions(b, 1, 4095), {})};  // T = 1, [T, D]
  });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {  // decode: one query, GQA 4:1
    auto len = b.exact_input("len", porta::Tensor::from_vector<std::int64_t>({1}, {9}));
    return {b.graph.attention(b.input("q", {1, 8, 24}), b.input("k", {1, 2, 24}),
                              b.input("v", {1, 2, 16}), b.input("kc", {12, 2, 24}),
                              b.input("vc", {12, 2, 16}), len)};
  });
  // One kv head shared by 16 query heads (MQA, MLA's latent): blocks of 8 tokens x 16 heads,
  // three of them, after a cache prefix; then decode (one block, on one thread).
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    auto len = b.exact_input("len", porta::Tensor::from_vector<std::int64_t>({1}, {5}));
    return {b.graph.attention(b.input("q", {20, 16, 24}), b.input("k", {20, 1, 24}),
                              b.input("v", {20, 1, 16}), b.input("kc", {30, 1, 24}),
                              b.input("vc", {30, 1, 16}), len)};
  });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    auto len = b.exact_input("len", porta::Tensor::from_vector<std::int64_t>({1}, {29}));
    return {b.graph.attention(b.input("q", {1, 16, 24}), b.input("k", {1, 1, 24}),
                              b.input("v", {1, 1, 16}), b.input("kc", {30, 1, 24}),
                              b.input("vc", {30, 1, 16}), len)};
  });
  // Decode at a long context: the heads split into one group per thread (16 heads, and 7,
  // which split unevenly), keys and values from one tensor as MLA's latent is used.
  for (const std::int64_t heads : {16, 7})
    check_both_dtypes([heads](CaseBuilder& b) -> std::vector<Value> {
      auto len = b.exact_input("len", porta::Tensor::from_vector<std::int64_t>({1}, {590}));
      auto latent = b.input("latent", {1, 1, 144});
      auto cache = b.input("cache", {600, 1, 144});
      return {b.graph.attention(b.input("q", {1, heads, 144}), latent, latent, cache, cache, len)};
    });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {  // GQA, 2 blocks of 64 tokens
    return {b.graph.attention(b.input("q", {70, 4, 8}), b.input("k", {70, 2, 8}),
                              b.input("v", {70, 2, 12}))};
  });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {  // more queries than keys
    return {b.graph.attention(b.input("q", {6, 3, 8}), b.input("k", {4, 3, 8}),
                              b.input("v", {4, 3, 8}))};
  });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    std::vector<std::int64_t> ids{4, 0, 4, 19};
    return {b.graph.embedding(b.weight("t", {20, 33}),
                              b.exact_input("ids", porta::Tensor::from_vector({2, 2}, ids)))};
  });
  for (bool largest : {true, false})
    check_both_dtypes([=](CaseBuilder& b) -> std::vector<Value> {
      auto [values, indices] = b.graph.top_k(b.input("x", {4, 3, 50}), 50, largest);
      return {values, indices};
    });
}

TEST_CASE("cpu layout ops: reshape, permute, slice, concat, cast", "[cpu][layout]") {
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    return {b.graph.permute(b.input("x", {2, 3, 4, 5}), {3, 1, 0, 2})};
  });
  // Small permutes are strided copies of our own (contiguous inner runs or not), large ones a
  // oneDNN reorder (64 KB is the switch).
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    return {b.graph.permute(b.input("x", {3, 5, 7}), {1, 0, 2}),
            b.graph.permute(b.input("y", {40, 24, 32}), {1, 0, 2}),
            b.graph.permute(b.input("z", {40, 24, 32}), {2, 0, 1})};
  });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    auto x = b.input("x", {6, 10});
    return {b.graph.reshape(b.graph.slice(x, 1, 1, -1, 2), {2, -1}), b.graph.slice(x, 0, 4, 100)};
  });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    return {b.graph.concat(
        {b.input("a", {2, 0, 3}), b.input("b", {2, 4, 3}), b.input("c", {2, 1, 3})}, 1)};
  });
  check_both_dtypes([](CaseBuilder& b) -> std::vector<Value> {
    auto x = b.input("x", {3, 9}, -300, 300);
    return {b.graph.cast(x, DType::F32), b.graph.cast(x, DType::BF16), b.graph.cast(x, DType::I32),
            b.graph.cast(x, DType::F16)};
  });
  // i64 elements have no oneDNN type: the strided permute of our own moves them.
  porta::Graph g;
  auto x = g.input("x", {2, 3}, DType::I64);
  g.output("y", g.permute(x, {1, 0}));
  auto out = porta::compile(g, on("cpu"))
                 .run({{"x", porta::Tensor::from_vector<std::int64_t>({2, 3}, {1, 2, 3, 4, 5, 6})}})
                 .at("y");
  CHECK(out.to_f32() == std::vector<float>{1, 4, 2, 5, 3, 6});
}

}  // namespace cpu_kernels_tests

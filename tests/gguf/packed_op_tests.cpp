// ggml blocks inside the quantized ops (QuantFormat::GgmlBlocks): the reference computes on each
// block type's own definition (checked here against block_reference.hpp's independent scalar
// definition), cpu (block kernels, or exact row dequantization for the other types) matches it
// within the kernels' documented bound, opencl and npu-sim
// decline the nodes so that the runtime puts them on the fallback, and bad layouts are errors
// naming the field.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include <porta/porta.hpp>

#include "gguf/block_reference.hpp"

namespace gguf_packed_op_tests {

using namespace porta;
using gguf::GgmlType;

namespace {

Tensor random_f32(const Shape& shape, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (float& x : v) x = d(rng);
  return Tensor::from_f32(shape, DType::F32, v);
}

std::vector<GgmlType> block_types() {
  std::vector<GgmlType> out;
  for (const auto t : gguf::kDequantizableTypes)
    if (gguf::traits_of(t).block_elements > 1) out.push_back(t);
  return out;
}

const GgmlType kKernelTypes[] = {GgmlType::Q8_0,   GgmlType::Q4_0, GgmlType::Q4_1,
                                 GgmlType::Q5_0,   GgmlType::Q5_1, GgmlType::IQ4_NL,
                                 GgmlType::Q4_K,   GgmlType::Q5_K, GgmlType::Q6_K,
                                 GgmlType::IQ4_XS};

// W[n, k] of a rank-2 ggml weight from the scalar definition (block_reference.hpp).
float element(const QuantizedTensor& w, std::int64_t n, std::int64_t k) {
  const auto t = gguf::traits_of(w.scheme.ggml_type);
  const auto* row = static_cast<const unsigned char*>(w.data.data()) +
                    static_cast<std::size_t>(n * w.data.shape()[-1]);
  const std::int64_t block = k / t.block_elements;
  return gguf::test::value(w.scheme.ggml_type, row + block * t.block_bytes,
                           static_cast<int>(k % t.block_elements));
}

struct Linear {
  std::vector<double> y;      // Σ_k x·W in double
  std::vector<double> bound;  // 1e-6 · Σ|x| · max|W| per output (the kernels' documented bound)
};

Linear scalar_linear(const QuantizedTensor& w, const std::vector<float>& x, std::int64_t rows) {
  const std::int64_t n = w.shape[0], k = w.shape[1];
  Linear out;
  out.y.assign(static_cast<std::size_t>(rows * n), 0.0);
  out.bound.assign(out.y.size(), 0.0);
  for (std::int64_t j = 0; j < n; ++j) {
    double wmax = 0;
    for (std::int64_t c = 0; c < k; ++c) wmax = std::max(wmax, std::fabs(double(element(w, j, c))));
    for (std::int64_t m = 0; m < rows; ++m) {
      double acc = 0, xabs = 0;
      for (std::int64_t c = 0; c < k; ++c) {
        acc += double(x[static_cast<std::size_t>(m * k + c)]) * double(element(w, j, c));
        xabs += std::fabs(double(x[static_cast<std::size_t>(m * k + c)]));
      }
      out.y[static_cast<std::size_t>(m * n + j)] = acc;
      out.bound[static_cast<std::size_t>(m * n + j)] = 1e-6 * xabs * wmax;
    }
  }
  return out;
}

std::vector<float> run(const Graph& g, const std::map<std::string, Tensor>& inputs,
                       const std::string& backend, const std::string& fallback = "") {
  return compile(g, {.backend = backend, .fallback = fallback}).run(inputs).at("y").to_f32();
}

// The device `backend` names ("opencl" -> "opencl:0"), or "" when it is not available here.
std::string device(const std::string& backend) {
  for (const auto& d : list_devices())
    if (d.available && (d.name == backend || d.name.starts_with(backend + ":"))) return d.name;
  return "";
}

}  // namespace

TEST_CASE("the reference quant_matmul over ggml blocks is each type's scalar definition",
          "[gguf][packed]") {
  for (const GgmlType type : block_types()) {
    DYNAMIC_SECTION(gguf::type_name(type)) {
      const QuantizedTensor w = quantize(random_f32({12, 512}, 3), ggml_scheme(type));
      CHECK(w.data.shape() == Shape{12, static_cast<std::int64_t>(gguf::row_bytes(type, 512))});
      CHECK(w.scale.shape() == Shape{12, 0});
      const Tensor x = random_f32({3, 512}, 4);
      Graph g;
      g.output("y", g.matmul(g.input("x", {3, 512}, DType::F32), g.weight("w", w)));
      const auto got = run(g, {{"x", x}}, "reference");
      const Linear want = scalar_linear(w, x.to_f32(), 3);
      REQUIRE(got.size() == want.y.size());
      // The same exact products summed in double in the same order, rounded once.
      for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == static_cast<float>(want.y[i]));
      // dequantize() gives the definition's elements.
      const auto d = dequantize(w).to_f32();
      for (std::int64_t n = 0; n < 12; n += 5)
        for (std::int64_t k = 0; k < 512; k += 37)
          CHECK(d[static_cast<std::size_t>(n * 512 + k)] == element(w, n, k));
    }
  }
}

TEST_CASE("cpu computes ggml blocks in place within the kernels' bound", "[gguf][packed]") {
  // Every block type (each has a kernel).
  const GgmlType types[] = {GgmlType::Q8_0,   GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                            GgmlType::Q5_1,   GgmlType::IQ4_NL, GgmlType::Q4_K, GgmlType::Q5_K,
                            GgmlType::Q6_K,   GgmlType::IQ4_XS, GgmlType::Q3_K, GgmlType::Q2_K};
  for (const GgmlType type : types)
    for (const std::int64_t rows : {1, 2, 9, 40}) {  // decode, prefill, GEMM panels
      DYNAMIC_SECTION(gguf::type_name(type) << " rows " << rows) {
        const QuantizedTensor w = quantize(random_f32({40, 768}, 5), ggml_scheme(type));
        const Tensor x = random_f32({rows, 768}, 6);
        Graph g;
        g.output("y", g.matmul(g.input("x", {rows, 768}, DType::F32), g.weight("w", w)));
        auto exe = compile(g, {.backend = "cpu", .fallback = ""});
        for (const auto& p : exe.placement()) CHECK(p.backend == "cpu");
        CHECK(exe.copied_weight_bytes() == 0);
        const auto got = exe.run({{"x", x}}).at("y").to_f32();
        const Linear want = scalar_linear(w, x.to_f32(), rows);
        for (std::size_t i = 0; i < got.size(); ++i)
          CHECK(std::fabs(got[i] - want.y[i]) <= want.bound[i]);
      }
    }
}

TEST_CASE("cpu's grouped matmul and MoE experts read each expert's blocks in place",
          "[gguf][packed]") {
  for (const GgmlType type : kKernelTypes) {
    DYNAMIC_SECTION(gguf::type_name(type)) {
      const QuantScheme s = ggml_scheme(type);
      // Experts of 0, 1, 2 and 22 rows: the shared decode loop and the GEMM panels.
      const QuantizedTensor w = quantize(random_f32({4, 24, 256}, 7), s);
      const Tensor rows = random_f32({25, 256}, 8);
      const Tensor offsets = Tensor::from_vector<std::int32_t>({5}, {0, 0, 1, 3, 25});
      Graph g;
      g.output("y", g.grouped_matmul(g.input("rows", {25, 256}, DType::F32), g.weight("w", w),
                                     g.input("offsets", {5}, DType::I32)));
      const std::map<std::string, Tensor> in{{"rows", rows}, {"offsets", offsets}};
      const auto got = run(g, in, "cpu");
      const auto x = rows.to_f32();
      for (std::int64_t e = 1; e < 4; ++e) {
        const std::int64_t first = e == 1 ? 0 : e == 2 ? 1 : 3, count = e == 1 ? 1 : e == 2 ? 2 : 22;
        QuantizedTensor one = w;
        one.shape = {24, 256};
        const auto bytes = static_cast<std::int64_t>(w.data.shape()[2]);
        one.data = Tensor::view(static_cast<char*>(w.data.data()) + e * 24 * bytes, {24, bytes},
                                DType::I8);
        const std::vector<float> xe(x.begin() + first * 256, x.begin() + (first + count) * 256);
        const Linear want = scalar_linear(one, xe, count);
        for (std::int64_t m = 0; m < count; ++m)
          for (std::int64_t n = 0; n < 24; ++n) {
            const auto i = static_cast<std::size_t>(m * 24 + n);
            CHECK(std::fabs(got[static_cast<std::size_t>((first + m) * 24 + n)] - want.y[i]) <=
                  want.bound[i]);
          }
      }

      // quant_moe_experts: the reference's composition with the same projections.
      Graph m;
      MoeRoute route;
      route.weights = m.input("weights", {3, 2}, DType::F32);
      route.offsets = m.input("offsets", {5}, DType::I32);
      route.perm = m.input("perm", {6}, DType::I32);
      route.inv = m.input("inv", {6}, DType::I32);
      QuantMoeExpertWeights ew{m.weight("gate", quantize(random_f32({4, 256, 256}, 9), s)),
                               m.weight("up", quantize(random_f32({4, 256, 256}, 10), s)),
                               m.weight("down", quantize(random_f32({4, 256, 256}, 11), s))};
      m.output("y", m.moe_experts(m.input("x", {3, 256}, DType::F32), route, ew));
      // Tokens 0, 1, 2 pick experts (0, 3), (3, 1), (3, 0): expert rows sorted by expert.
      const std::map<std::string, Tensor> moe_in{
          {"x", random_f32({3, 256}, 12)},
          {"weights", Tensor::from_vector<float>({3, 2}, {0.7f, 0.3f, 0.6f, 0.4f, 0.5f, 0.5f})},
          {"offsets", Tensor::from_vector<std::int32_t>({5}, {0, 2, 3, 3, 6})},
          {"perm", Tensor::from_vector<std::int32_t>({6}, {0, 5, 3, 1, 2, 4})},
          {"inv", Tensor::from_vector<std::int32_t>({6}, {0, 3, 4, 2, 5, 1})}};
      const auto cpu = run(m, moe_in, "cpu");
      const auto ref = run(m, moe_in, "reference");
      double scale = 0;
      for (float v : ref) scale = std::max(scale, std::fabs(double(v)));
      REQUIRE(scale > 0);
      for (std::size_t i = 0; i < ref.size(); ++i) CHECK(std::fabs(cpu[i] - ref[i]) <= 1e-5 * scale);
    }
  }
}

TEST_CASE("opencl and npu-sim leave nodes over ggml blocks to the fallback",
          "[gguf][packed]") {
  const QuantizedTensor q8 = quantize(random_f32({8, 256}, 14), ggml_scheme(GgmlType::Q8_0));
  const Tensor x = random_f32({2, 256}, 15);
  for (const std::string backend : {"opencl", "npu-sim"}) {
    const std::string name = device(backend);
    if (name.empty()) continue;  // not built here
    DYNAMIC_SECTION(name) {
      Graph g;
      g.output("y", g.matmul(g.input("x", {2, 256}, DType::F32), g.weight("w", q8)));
      CHECK_THROWS_WITH(compile(g, {.backend = name, .fallback = ""}),
                        Catch::Contains("no ggml block decoder"));
      auto exe = compile(g, {.backend = name, .fallback = "reference"});
      bool placed = false;
      for (const auto& p : exe.placement())
        if (p.op == "quant_matmul") {
          placed = true;
          CHECK(p.backend == "reference");
          CHECK_THAT(p.reason, Catch::Contains("no ggml block decoder"));
        }
      CHECK(placed);
      CHECK(exe.run({{"x", x}}).at("y").to_f32() == run(g, {{"x", x}}, "reference"));
    }
  }
}

TEST_CASE("bad ggml block weights are errors naming the field", "[gguf][packed]") {
  CHECK_THROWS_WITH(ggml_scheme(GgmlType::F16), Catch::Contains("not a block type"));
  CHECK_THROWS_WITH(ggml_scheme(GgmlType::Q8_1), Catch::Contains("q8_1"));
  CHECK_THROWS_WITH(quantize(random_f32({4, 96}, 1), ggml_scheme(GgmlType::Q4_K)),
                    Catch::Contains("group: K = 96 is not a whole number of q4_K blocks"));

  QuantizedTensor w = quantize(random_f32({4, 64}, 2), ggml_scheme(GgmlType::Q8_0));
  CHECK_NOTHROW(validate(w, "w"));
  QuantizedTensor short_rows = w;
  short_rows.data = Tensor::zeros({4, 66}, DType::I8);
  CHECK_THROWS_WITH(validate(short_rows, "blk.0.ffn_up.weight"),
                    Catch::Contains("blk.0.ffn_up.weight") &&
                        Catch::Contains("data: shape [4, 66] should be [4, 68]") &&
                        Catch::Contains("34 bytes per 32-element q8_0 block"));
  QuantizedTensor wrong_dtype = w;
  wrong_dtype.data = Tensor::zeros({4, 68}, DType::F32);
  CHECK_THROWS_WITH(validate(wrong_dtype, "w"), Catch::Contains("data: dtype f32 should be i8"));
  QuantizedTensor with_scales = w;
  with_scales.scale = Tensor::zeros({4, 2}, DType::F16);
  CHECK_THROWS_WITH(validate(with_scales, "w"), Catch::Contains("scale: shape [4, 2] should be [4, 0]"));
  QuantizedTensor regrouped = w;
  regrouped.scheme.group_k = 64;
  CHECK_THROWS_WITH(validate(regrouped, "w"), Catch::Contains("group: group_k = 64 should be q8_0's"));
  QuantizedTensor asym = w;
  asym.scheme.zero_point = true;
  asym.zero = Tensor::zeros({4, 0}, DType::I8);
  CHECK_THROWS_WITH(validate(asym, "w"), Catch::Contains("zero:"));

  Graph g;
  const QuantizedValue v = g.weight("w", w);
  CHECK_THROWS_WITH(g.matmul(g.input("x", {1, 64}, DType::F32), v, ActivationQuant::DynamicInt8),
                    Catch::Contains("dynamic_int8 activations need int8 weights, not ggml q8_0"));
  CHECK_THROWS_WITH(g.matmul(g.input("x2", {1, 96}, DType::F32), v), Catch::Contains("data"));
}

}  // namespace gguf_packed_op_tests

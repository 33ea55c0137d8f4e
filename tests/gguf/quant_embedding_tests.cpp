// quant_embedding: rows of a quantized table (a GGUF's token_embd in its blocks) gathered by ids
// and dequantized to f32. Each row must be the scheme's own dequantization bit for bit on every
// backend (the reference's dequantize_row, cpu's SIMD decoders, the others through the
// fallback), and bad ids and bad tables are porta::Errors. (A GGUF model's packed table:
// packed_model_tests.cpp.)
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <porta/gguf.hpp>
#include <porta/porta.hpp>

#include "quant/quant_test_support.hpp"

namespace gguf_quant_embedding_tests {

using namespace porta;
using gguf::GgmlType;

namespace {

struct SchemeCase {
  std::string label;
  QuantScheme scheme;
};

std::vector<SchemeCase> schemes() {
  std::vector<SchemeCase> out;
  for (const auto t : gguf::kDequantizableTypes)
    if (gguf::traits_of(t).block_elements > 1)
      out.push_back({fmt::format("ggml {}", gguf::type_name(t)), ggml_scheme(t)});
  out.push_back({"int8 per-channel", quant_test::make_scheme(QuantFormat::Int8)});
  out.push_back({"int4 g64 asym", quant_test::make_scheme(QuantFormat::Int4, 64, true)});
  out.push_back({"f8_e4m3 block 128x128",
                 quant_test::make_scheme(QuantFormat::F8E4M3, 128, false, DType::F32, 128)});
  return out;
}

std::vector<float> gather(const QuantizedTensor& table, const Tensor& ids,
                          const std::string& backend, const std::string& fallback = "") {
  Graph g;
  g.output("rows", g.embedding(g.weight("table", table), g.input("ids", ids.shape(), ids.dtype())));
  return compile(g, {.backend = backend, .fallback = fallback})
      .run({{"ids", ids}})
      .at("rows")
      .to_f32();
}

bool available(const std::string& backend) {
  for (const auto& d : list_devices())
    if (d.available && (d.name == backend || d.name.starts_with(backend + ":"))) return true;
  return false;
}

}  // namespace

TEST_CASE("quant_embedding gives each row as its scheme dequantizes it, on every backend",
          "[gguf][embedding]") {
  const std::vector<std::int32_t> ids{23, 0, 5, 5, 17};
  const Tensor ids_i32 = Tensor::from_vector<std::int32_t>({5}, ids);
  const Tensor ids_i64 = Tensor::from_vector<std::int64_t>({2, 2}, {0, 23, 9, 9});
  for (const SchemeCase& c : schemes()) {
    DYNAMIC_SECTION(c.label) {
      const QuantizedTensor table = quantize(quant_test::random_tensor({24, 512}, 7), c.scheme);
      const std::vector<float> all = dequantize(table).to_f32();
      const auto want = [&](const std::vector<std::int64_t>& rows) {
        std::vector<float> out;
        for (const std::int64_t r : rows)
          out.insert(out.end(), all.begin() + r * 512, all.begin() + (r + 1) * 512);
        return out;
      };
      const std::vector<float> want_i32 = want({23, 0, 5, 5, 17});
      const std::vector<float> want_i64 = want({0, 23, 9, 9});
      for (const std::string backend : {"reference", "cpu", "npu-sim", "opencl"}) {
        if (!available(backend)) continue;
        INFO(backend);
        // opencl has no quant_embedding and npu-sim none over ggml blocks: the runtime places
        // those nodes on the fallback, so the rows are still the definition's.
        const std::string fallback = backend == "reference" ? "" : "cpu";
        CHECK(gather(table, ids_i32, backend, fallback) == want_i32);
        CHECK(gather(table, ids_i64, backend, fallback) == want_i64);
      }
    }
  }
}

TEST_CASE("bad quant_embedding ids and tables are errors naming them", "[gguf][embedding]") {
  const QuantizedTensor table =
      quantize(quant_test::random_tensor({8, 64}, 3), ggml_scheme(GgmlType::Q8_0));
  for (const std::string backend : {"reference", "cpu"}) {
    INFO(backend);
    CHECK_THROWS_WITH(gather(table, Tensor::from_vector<std::int32_t>({3}, {1, 8, 2}), backend),
                      Catch::Contains("id 8") && Catch::Contains("table of 8 rows"));
    CHECK_THROWS_WITH(gather(table, Tensor::from_vector<std::int64_t>({1}, {-1}), backend),
                      Catch::Contains("id -1"));
  }
  Graph g;
  const QuantizedValue v = g.weight("table", table);
  CHECK_THROWS_WITH(g.embedding(v, g.input("f", {2}, DType::F32)), Catch::Contains("ids"));
  const Value ids = g.input("ids", {2}, DType::I32);
  CHECK_THROWS_WITH(
      g.add_op(OpKind::QuantEmbedding, {ids, v.data, v.scale},
               QuantAttrs{v.scheme, ActivationQuant::GgmlQ8}),
      Catch::Contains("a table lookup has no activations to quantize (ggml_q8 given"));
  // Rows of 66 bytes are not whole q8_0 blocks of 34.
  const Value short_rows = g.weight("short", Tensor::zeros({8, 66}, DType::I8));
  CHECK_THROWS_WITH(
      g.add_op(OpKind::QuantEmbedding, {ids, short_rows, v.scale}, QuantAttrs{v.scheme}),
      Catch::Contains("rows of 66 bytes are not whole q8_0 blocks"));
  CHECK_THROWS_WITH(
      g.add_op(OpKind::QuantEmbedding, {ids, v.data, v.scale, v.scale}, QuantAttrs{v.scheme}),
      Catch::Contains("zero (input 3): the scheme is symmetric"));
}

}  // namespace gguf_quant_embedding_tests

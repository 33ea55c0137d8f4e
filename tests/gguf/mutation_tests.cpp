// No byte pattern makes the GGUF reader crash: random mutations of a valid file written by
// porta's writer either load (and every tensor's bytes stay inside the file and dequantize) or
// raise porta::Error. Deterministic (seeded) and fast; run it under ASan to prove the point.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include <porta/gguf.hpp>

#include "gguf/gguf_test_support.hpp"

namespace gguf_mutation_tests {

using namespace porta;
using namespace porta::gguf;
// porta::test (other files' helpers) is visible too when test files share a unity batch.
namespace test = porta::gguf::test;

TEST_CASE("mutated GGUF files load or raise porta::Error, never crash", "[gguf][mutation]") {
  std::vector<TensorToWrite> tensors;
  for (GgmlType type : {GgmlType::F32, GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::BF16}) {
    std::vector<float> values(256);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = std::cos(static_cast<float>(i));
    tensors.push_back(make_tensor(std::string("blk.0.") + std::string(type_name(type)), {1, 256},
                                  type, values));
  }
  const auto original_path = test::gguf_tmp("mutation_original.gguf");
  write_gguf(original_path,
             {{"general.architecture", gguf::Value::str("llama")},
              {"llama.block_count", gguf::Value::u32(1)},
              {"tokenizer.ggml.tokens", gguf::Value::strings({"a", "b", "<s>"})},
              {"tokenizer.ggml.scores",
               gguf::Value::array_of(ValueType::F32, {gguf::Value::f32(0), gguf::Value::f32(-1), gguf::Value::f32(-2)})}},
             tensors);
  const std::string original = io::test::read_bytes(original_path);
  // The header (where the counts, lengths, types and offsets live) is where mutations matter;
  // half of the edits land there.
  const std::size_t header = static_cast<std::size_t>(GgufFile::open(original_path).data_offset());
  std::mt19937_64 rng(1203);
  const auto mutated_path = test::gguf_tmp("mutation_mutated.gguf");
  int loaded = 0, rejected = 0;
  const int trials = 800;
  for (int trial = 0; trial < trials; ++trial) {
    std::string bytes = original;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !bytes.empty(); ++e) {
      const std::size_t span = (rng() % 2 == 0) ? std::min(header, bytes.size()) : bytes.size();
      const auto at = rng() % span;
      switch (rng() % 5) {
        case 0: bytes[at] = static_cast<char>(rng() & 0xff); break;  // random byte
        case 1: bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8))); break;  // bit
        case 2: bytes.resize(at); break;                                              // truncate
        case 3: bytes.insert(at, 1, static_cast<char>(rng() & 0xff)); break;           // insert
        default:  // a large little-endian count or length
          for (int k = 0; k < 8 && at + static_cast<std::size_t>(k) < bytes.size(); ++k)
            bytes[at + static_cast<std::size_t>(k)] = static_cast<char>(k < 7 ? 0xff : 0x0f);
          break;
      }
    }
    io::test::write_bytes(mutated_path, bytes);
    try {
      const GgufFile f = GgufFile::open(mutated_path);
      for (const TensorInfo& t : f.tensors()) {
        const auto data = f.data(t.name);
        REQUIRE(data.size() == t.nbytes);
        if (t.nbytes > 0) {
          volatile auto last = data[data.size() - 1];  // ASan checks this stays in the mapping
          (void)last;
        }
        if (t.numel() <= (1u << 16)) {
          try {
            (void)f.dequantized(t.name);
          } catch (const Error&) {
            // a type porta cannot dequantize (the mutation changed the type id)
          }
        }
      }
      for (const auto& [key, value] : f.metadata()) (void)value.to_string();
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  }
  CHECK(loaded + rejected == trials);
  CHECK(rejected > trials / 4);
  CHECK(loaded > 0);
}

}  // namespace gguf_mutation_tests

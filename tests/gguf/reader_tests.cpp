// Reading GGUF files built byte by byte, writing them with porta's writer and reading back, and
// every class of corrupt field giving a porta::Error that names the key or tensor and the field.
#include <catch2/catch.hpp>

#include <cmath>

#include <porta/gguf.hpp>

#include "gguf/gguf_test_support.hpp"

namespace gguf_reader_tests {

using namespace porta;
using namespace porta::gguf;
// porta::test (other files' helpers) is visible too when test files share a unity batch.
namespace test = porta::gguf::test;
using porta::gguf::test::Builder;

namespace {
GgufFile open_bytes(const std::string& bytes, const std::string& name = "sample.gguf") {
  const auto path = test::gguf_tmp(name);
  io::test::write_bytes(path, bytes);
  return GgufFile::open(path);
}
}  // namespace

TEST_CASE("a hand-built GGUF file reads back exactly", "[gguf][reader]") {
  for (std::uint32_t version : {2u, 3u}) {
    const GgufFile f = open_bytes(test::sample_file(version).bytes);
    CHECK(f.version() == version);
    CHECK(f.alignment() == 64);
    CHECK(f.data_offset() % 64 == 0);
    REQUIRE(f.metadata().size() == 7);
    CHECK(f.metadata()[0].first == "general.architecture");
    CHECK(f.get_string("general.architecture") == "test");
    CHECK(f.get_int("test.count") == -7);
    CHECK(f.get_float("test.scale") == 0.5);
    CHECK(f.get_bool("test.flag"));
    const gguf::Value* list = f.find("test.list");
    REQUIRE(list != nullptr);
    CHECK(list->element_type == ValueType::U16);
    REQUIRE(list->array.size() == 3);
    CHECK(list->array[2].unsigned_integer == 65535);
    CHECK(f.find("test.names")->array[1].string == "beta");
    CHECK(f.find("missing") == nullptr);
    CHECK_FALSE(f.get_int_or("missing").has_value());

    REQUIRE(f.tensors().size() == 2);
    const TensorInfo& w = f.tensor("w");
    CHECK(w.dims == std::vector<std::uint64_t>{3, 2});
    CHECK(w.shape() == Shape{2, 3});  // outermost first
    CHECK(w.nbytes == 24);
    const Tensor wt = f.view("w");
    CHECK(wt.to_f32() == std::vector<float>{1, 2, 3, 4, 5, 6});
    const TensorInfo& q = f.tensor("q");
    CHECK(q.type == GgmlType::Q8_0);
    CHECK(q.nbytes == 34);
    const Tensor qd = f.dequantized("q");
    CHECK(qd.at_f32(0) == -16.0f);
    CHECK(qd.at_f32(31) == 15.0f);
    REQUIRE_PORTA_ERROR(f.view("q"), ErrorCode::Unsupported, "'q' is q8_0");
    REQUIRE_PORTA_ERROR(f.tensor("nope"), ErrorCode::NotFound, "'nope'");
    REQUIRE_PORTA_ERROR(f.get_string("test.count"), ErrorCode::CorruptFile,
                        "'test.count' is i32 (-7), not a string");
    REQUIRE_PORTA_ERROR(f.get_int("test.absent"), ErrorCode::NotFound, "'test.absent'");
    REQUIRE_PORTA_ERROR(f.get_bool("test.scale"), ErrorCode::CorruptFile, "not a bool");
  }
}

TEST_CASE("the writer's files read back: every value type, every block type, alignment",
          "[gguf][writer]") {
  std::vector<std::pair<std::string, gguf::Value>> metadata = {
      {"general.architecture", gguf::Value::str("test")},
      {"general.alignment", gguf::Value::u32(128)},
      {"v.u8", gguf::Value::u8(200)},
      {"v.i8", gguf::Value::i8(-100)},
      {"v.u16", gguf::Value::u16(60000)},
      {"v.i16", gguf::Value::i16(-30000)},
      {"v.u32", gguf::Value::u32(4000000000u)},
      {"v.i32", gguf::Value::i32(-2000000000)},
      {"v.u64", gguf::Value::u64(1ull << 60)},
      {"v.i64", gguf::Value::i64(-(1ll << 60))},
      {"v.f32", gguf::Value::f32(1.25f)},
      {"v.f64", gguf::Value::f64(-2.5e300)},
      {"v.bool", gguf::Value::boolean_value(false)},
      {"v.empty", gguf::Value::str("")},
      {"v.strings", gguf::Value::strings({"a", "", "ccc"})},
      {"v.ints", gguf::Value::array_of(ValueType::I32, {gguf::Value::i32(1), gguf::Value::i32(-2)})},
      {"v.none", gguf::Value::array_of(ValueType::F32, {})},
  };
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<float>> originals;
  for (GgmlType type : kDequantizableTypes) {
    std::vector<float> values(512);
    for (std::size_t i = 0; i < values.size(); ++i)
      values[i] = std::sin(static_cast<float>(i) * 0.37f + static_cast<float>(type));
    tensors.push_back(make_tensor(std::string("t.") + std::string(type_name(type)), {2, 256},
                                  type, values));
    originals.push_back(values);
  }
  const auto path = test::gguf_tmp("written.gguf");
  write_gguf(path, metadata, tensors);
  const GgufFile f = GgufFile::open(path);
  CHECK(f.alignment() == 128);
  REQUIRE(f.metadata().size() == metadata.size());
  for (std::size_t i = 0; i < metadata.size(); ++i) {
    INFO(metadata[i].first);
    CHECK(f.metadata()[i].first == metadata[i].first);
    CHECK(f.metadata()[i].second.to_string(100) == metadata[i].second.to_string(100));
    CHECK(f.metadata()[i].second.type == metadata[i].second.type);
  }
  CHECK(f.get_int("v.u32") == 4000000000ll);
  CHECK(f.get_int("v.i64") == -(1ll << 60));
  CHECK(f.get_float("v.f64") == -2.5e300);
  REQUIRE(f.tensors().size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& info = f.tensors()[i];
    INFO(info.name);
    CHECK(info.name == tensors[i].name);
    CHECK(info.type == tensors[i].type);
    CHECK(info.dims == std::vector<std::uint64_t>{256, 2});
    CHECK((f.data_offset() + info.offset) % 128 == 0);
    const auto bytes = f.data(info.name);
    REQUIRE(bytes.size() == tensors[i].data.size());
    CHECK(std::memcmp(bytes.data(), tensors[i].data.data(), bytes.size()) == 0);
    const Tensor d = f.dequantized(info.name);
    CHECK(d.shape() == Shape{2, 256});
  }
  // The f32 tensor is stored exactly.
  CHECK(f.dequantized("t.f32").to_f32() == originals[0]);

  SECTION("bad writer input") {
    auto bad = tensors;
    bad[0].data.pop_back();
    REQUIRE_PORTA_ERROR(write_gguf(path, metadata, bad), ErrorCode::InvalidArgument, "'t.f32'");
    bad = {tensors[1], tensors[1]};
    REQUIRE_PORTA_ERROR(write_gguf(path, metadata, bad), ErrorCode::InvalidArgument,
                        "given twice");
    auto dup = metadata;
    dup.push_back(metadata[2]);
    REQUIRE_PORTA_ERROR(write_gguf(path, dup, {}), ErrorCode::InvalidArgument, "'v.u8'");
    REQUIRE_PORTA_ERROR(make_tensor("odd", {3, 100}, GgmlType::Q4_K, std::vector<float>(300)),
                        ErrorCode::InvalidArgument, "'odd'");
  }
}

TEST_CASE("dequantizing to bf16 or f16 rounds the exact f32 values, a few rows at a time",
          "[gguf][reader]") {
  // 300 rows of 512: steps of 128 rows (64 Ki elements), the last one partial.
  std::vector<TensorToWrite> tensors;
  for (const GgmlType type : {GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::F16}) {
    std::vector<float> values(300 * 512);
    for (std::size_t i = 0; i < values.size(); ++i)
      values[i] = std::cos(static_cast<float>(i) * 0.011f) * static_cast<float>(1 + i % 7);
    tensors.push_back(make_tensor(std::string(type_name(type)), {300, 512}, type, values));
  }
  const auto path = test::gguf_tmp("dequantized_to.gguf");
  write_gguf(path, {}, tensors);
  const GgufFile f = GgufFile::open(path);
  for (const TensorToWrite& t : tensors) {
    const Tensor exact = f.dequantized(t.name);
    for (const DType to : {DType::BF16, DType::F16}) {
      INFO(t.name << " to " << dtype_name(to));
      const Tensor got = f.dequantized(t.name, to);
      REQUIRE(got.dtype() == to);
      REQUIRE(got.shape() == Shape{300, 512});
      // Element by element through store_from_f32, the rounding every other path uses.
      std::vector<std::uint16_t> want(static_cast<std::size_t>(exact.numel()));
      for (std::size_t i = 0; i < want.size(); ++i)
        store_from_f32(want.data(), to, i, exact.data_as<float>()[i]);
      CHECK(std::memcmp(got.data(), want.data(), want.size() * 2) == 0);
    }
  }
  REQUIRE_PORTA_ERROR(f.dequantized("q4_K", DType::I8), ErrorCode::InvalidArgument,
                      "'q4_K': dequantized to i8, not a float dtype");
}

TEST_CASE("corrupt GGUF fields are porta::Errors naming the key or tensor and the field",
          "[gguf][reader]") {
  struct Case {
    const char* what;
    void (*corrupt)(Builder&);
    ErrorCode code;
    const char* fragment;
  };
  const Case cases[] = {
      {"magic", [](Builder& b) { b.bytes[0] = 'X'; }, ErrorCode::CorruptFile, "not a GGUF file"},
      {"version 1", [](Builder& b) { b.patch_u32("version", 1); }, ErrorCode::Unsupported,
       "version 1"},
      {"version 4", [](Builder& b) { b.patch_u32("version", 4); }, ErrorCode::Unsupported,
       "version 4"},
      {"big-endian", [](Builder& b) { b.patch_u32("version", 0x03000000); },
       ErrorCode::Unsupported, "big-endian"},
      {"tensor count", [](Builder& b) { b.patch_u64("tensor_count", 1ull << 40); },
       ErrorCode::CorruptFile, "tensor count"},
      {"metadata count", [](Builder& b) { b.patch_u64("kv_count", ~0ull); },
       ErrorCode::CorruptFile, "metadata count"},
      {"key length", [](Builder& b) { b.patch_u64("kv2.key", 1ull << 62); },
       ErrorCode::CorruptFile, "metadata entry #2: its key has length"},
      {"value type", [](Builder& b) { b.patch_u32("kv0.type", 13); }, ErrorCode::CorruptFile,
       "metadata key 'general.architecture': its value type is 13"},
      {"string value length", [](Builder& b) { b.patch_u64("kv0.value", 1ull << 50); },
       ErrorCode::CorruptFile, "'general.architecture': its string value has length"},
      {"array length", [](Builder& b) { b.patch_u64("kv5.length", 1ull << 61); },
       ErrorCode::CorruptFile, "metadata key 'test.list': its array length"},
      {"array element type", [](Builder& b) { b.patch_u32("kv5.element_type", 77); },
       ErrorCode::CorruptFile, "'test.list': its array element type is 77"},
      {"nested array", [](Builder& b) { b.patch_u32("kv5.element_type", 9); },
       ErrorCode::Unsupported, "'test.list'"},
      {"string item length", [](Builder& b) { b.patch_u64("kv6.item1", 1000000); },
       ErrorCode::CorruptFile, "'test.names': its string value has length"},
      {"bool value", [](Builder& b) { b.bytes[b.at.at("kv4.value")] = 2; },
       ErrorCode::CorruptFile, "'test.flag': its bool value is 2"},
      {"alignment type", [](Builder& b) { b.patch_u32("kv1.type", 5); }, ErrorCode::CorruptFile,
       "'general.alignment': it must be a u32"},
      {"alignment value", [](Builder& b) { b.patch_u32("kv1.value", 48); },
       ErrorCode::CorruptFile, "48 is not a power of two"},
      {"alignment zero", [](Builder& b) { b.patch_u32("kv1.value", 0); },
       ErrorCode::CorruptFile, "0 is not a power of two"},
      {"duplicate key",
       [](Builder& b) { b.bytes.replace(b.at.at("kv2.key") + 8, 10, "test.scale"); },
       ErrorCode::CorruptFile, "'test.scale': the key appears twice"},
      {"tensor name length", [](Builder& b) { b.patch_u64("t1.name", 1ull << 40); },
       ErrorCode::CorruptFile, "tensor #1: its name has length"},
      {"dimension count", [](Builder& b) { b.patch_u32("t0.ndims", 5); }, ErrorCode::CorruptFile,
       "tensor 'w': it has 5 dimensions"},
      {"dimension sign", [](Builder& b) { b.patch_u64("t0.dim1", ~0ull); },
       ErrorCode::CorruptFile, "tensor 'w': its dimension 1"},
      {"dims overflow",
       [](Builder& b) {
         b.patch_u64("t0.dim0", 1ull << 40);
         b.patch_u64("t0.dim1", 1ull << 40);
       },
       ErrorCode::CorruptFile, "tensor 'w': its dimensions 1099511627776 x 1099511627776 overflow"},
      {"bytes overflow",
       [](Builder& b) {
         b.patch_u64("t0.dim0", 1ull << 31);
         b.patch_u64("t0.dim1", 1ull << 31);
       },
       ErrorCode::CorruptFile, "tensor 'w': its byte size overflows"},
      {"tensor type", [](Builder& b) { b.patch_u32("t0.type", 99); }, ErrorCode::CorruptFile,
       "tensor 'w': its type 99"},
      {"block row length", [](Builder& b) { b.patch_u64("t1.dim0", 33); },
       ErrorCode::CorruptFile, "tensor 'q': its row length 33 is not a multiple"},
      {"misaligned offset", [](Builder& b) { b.patch_u64("t1.offset", 60); },
       ErrorCode::CorruptFile, "tensor 'q': its data offset 60 is not a multiple of the "
                               "alignment 64"},
      {"offset past the end", [](Builder& b) { b.patch_u64("t1.offset", 1ull << 40); },
       ErrorCode::CorruptFile, "tensor 'q': its data"},
      {"offset wraps", [](Builder& b) { b.patch_u64("t1.offset", ~0ull - 63); },
       ErrorCode::CorruptFile, "tensor 'q': its data"},
      {"size past the end", [](Builder& b) { b.patch_u64("t1.dim0", 64); },
       ErrorCode::CorruptFile, "tensor 'q': its data"},
      {"overlap", [](Builder& b) { b.patch_u64("t1.offset", 0); }, ErrorCode::CorruptFile,
       "overlap in the data section"},
      {"duplicate tensor", [](Builder& b) { b.bytes[b.at.at("t1.name") + 8] = 'w'; },
       ErrorCode::CorruptFile, "tensor 'w': the tensor name appears twice"},
      {"truncated data", [](Builder& b) { b.bytes.resize(b.bytes.size() - 1); },
       ErrorCode::CorruptFile, "tensor 'q': its data"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Builder b = test::sample_file();
    c.corrupt(b);
    REQUIRE_PORTA_ERROR(open_bytes(b.bytes, "corrupt.gguf"), c.code, c.fragment);
  }
}

TEST_CASE("a GGUF file truncated at any byte is a porta::Error", "[gguf][reader]") {
  const Builder sample = test::sample_file();
  const std::string& bytes = sample.bytes;
  // Every byte of the header and the padding, every fourth of the tensor data.
  for (std::size_t length = 0; length < bytes.size();
       length += length < sample.at.at("data") ? 1 : 4) {
    INFO("length " << length);
    CHECK_THROWS_AS(open_bytes(bytes.substr(0, length), "truncated.gguf"), Error);
  }
  // A file with no tensors ends right after its metadata.
  Builder b;
  b.u32(0x46554747);
  b.u32(3);
  b.u64(0);
  b.u64(0);
  CHECK(open_bytes(b.bytes, "empty.gguf").tensors().empty());
}

TEST_CASE("the tokenizer metadata is read and checked", "[gguf][reader]") {
  const auto path = test::gguf_tmp("tokenizer.gguf");
  std::vector<std::pair<std::string, gguf::Value>> md = {
      {"general.architecture", gguf::Value::str("qwen3moe")},
      {"tokenizer.ggml.model", gguf::Value::str("gpt2")},
      {"tokenizer.ggml.pre", gguf::Value::str("qwen2")},
      {"tokenizer.ggml.tokens", gguf::Value::strings({"a", "b", "ab", "<|endoftext|>"})},
      {"tokenizer.ggml.token_type",
       gguf::Value::array_of(ValueType::I32, {gguf::Value::i32(1), gguf::Value::i32(1), gguf::Value::i32(1), gguf::Value::i32(3)})},
      {"tokenizer.ggml.merges", gguf::Value::strings({"a b"})},
      {"tokenizer.ggml.eos_token_id", gguf::Value::u32(3)},
      {"tokenizer.ggml.add_bos_token", gguf::Value::boolean_value(false)},
      {"tokenizer.chat_template", gguf::Value::str("{% for m in messages %}{{ m.content }}{% endfor %}")},
  };
  write_gguf(path, md, {});
  const auto t = tokenizer_metadata(GgufFile::open(path));
  REQUIRE(t.has_value());
  CHECK(t->model == "gpt2");
  CHECK(t->pre == "qwen2");
  CHECK(t->tokens == std::vector<std::string>{"a", "b", "ab", "<|endoftext|>"});
  CHECK(t->token_types == std::vector<std::int32_t>{1, 1, 1, 3});
  CHECK(t->scores.empty());
  CHECK(t->merges == std::vector<std::string>{"a b"});
  CHECK(t->eos_id == 3);
  CHECK_FALSE(t->bos_id.has_value());
  CHECK(t->add_bos == false);
  CHECK_THAT(t->chat_template, Catch::StartsWith("{% for m"));

  auto bad = md;
  bad[6].second = gguf::Value::u32(4);
  write_gguf(path, bad, {});
  REQUIRE_PORTA_ERROR(tokenizer_metadata(GgufFile::open(path)), ErrorCode::CorruptFile,
                      "'tokenizer.ggml.eos_token_id' is 4, outside the 4 tokens");
  bad = md;
  bad[4].second = gguf::Value::array_of(ValueType::I32, {gguf::Value::i32(1)});
  write_gguf(path, bad, {});
  REQUIRE_PORTA_ERROR(tokenizer_metadata(GgufFile::open(path)), ErrorCode::CorruptFile,
                      "'tokenizer.ggml.token_type' has 1 entries for 4 tokens");
  bad = md;
  bad[3].second = gguf::Value::array_of(ValueType::U8, {gguf::Value::u8(1)});
  write_gguf(path, bad, {});
  REQUIRE_PORTA_ERROR(tokenizer_metadata(GgufFile::open(path)), ErrorCode::CorruptFile,
                      "'tokenizer.ggml.tokens' is an array of u8, not of string");
  write_gguf(path, {md[0]}, {});
  CHECK_FALSE(tokenizer_metadata(GgufFile::open(path)).has_value());
}

}  // namespace gguf_reader_tests

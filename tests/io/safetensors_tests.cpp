// safetensors: round trips, a file built byte by byte, views outliving the file object.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>

#include <porta/io.hpp>

#include "io/io_test_support.hpp"

namespace io_safetensors_tests {

using namespace porta;
using namespace porta::io::test;

TEST_CASE("safetensors round trip keeps every dtype and the metadata", "[io][safetensors]") {
  const std::string path = fresh_dir("st_round_trip") + "/all.safetensors";
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"f32", Tensor::from_vector<float>({2, 3}, {1.5f, -2.25f, 0.0f, 3e-5f, 1e10f, -7.0f})},
      {"f16", Tensor::from_vector<Half>({3}, {Half{0x3c00}, Half{0xc000}, Half{0x0001}})},
      {"bf16", Tensor::from_vector<BFloat16>({1, 2}, {BFloat16{0x3fc0}, BFloat16{0xc010}})},
      {"f8", Tensor::from_vector<Float8E4M3>(
                 {3}, {Float8E4M3{0x38}, Float8E4M3{0xc0}, Float8E4M3{0x7e}})},
      {"i8", Tensor::from_vector<std::int8_t>({5}, {-128, 127, 0, 1, -1})},
      {"i32", Tensor::from_vector<std::int32_t>({}, {-123456})},
      {"i64", Tensor::from_vector<std::int64_t>({2}, {-(1LL << 62), (1LL << 62) + 5})},
      {"empty", Tensor::from_vector<float>({0, 4}, {})},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode"}};
  io::write_safetensors(path, tensors, metadata);

  // The header length is a multiple of 8 so that the data section starts 8-byte aligned.
  const std::string bytes = read_bytes(path);
  const std::uint64_t header_length = load_unaligned<std::uint64_t>(bytes.data(), 0);
  CHECK(header_length % 8 == 0);
  std::size_t total = 0;
  for (const auto& named : tensors) total += named.second.nbytes();
  CHECK(bytes.size() == 8 + header_length + total);

  const auto file = io::SafeTensorsFile::open(path);
  CHECK(file.metadata() == metadata);
  REQUIRE(file.entries().size() == tensors.size());
  std::size_t expected_offset = 8 + header_length;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, original] = tensors[i];
    INFO(name);
    const io::TensorEntry& entry = file.entries()[i];  // data-offset order = the order written
    CHECK(entry.name == name);
    CHECK(entry.offset == expected_offset);
    CHECK(entry.nbytes == original.nbytes());
    expected_offset += original.nbytes();
    const Tensor loaded = file.get(name);
    CHECK(loaded.dtype() == original.dtype());
    CHECK(loaded.shape() == original.shape());
    CHECK(tensor_bytes(loaded) == tensor_bytes(original));
  }
  CHECK(file.contains("bf16"));
  CHECK_FALSE(file.contains("nope"));
}

TEST_CASE("safetensors file built byte by byte", "[io][safetensors]") {
  const std::string path = fresh_dir("st_by_hand") + "/hand.safetensors";
  // Deliberately unsorted keys, an I32 tensor that is not 4-byte aligned in the file (N = 141),
  // and the trailing spaces the format allows after the JSON.
  const std::string header = R"({"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]},)"
                             R"("a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                             R"("__metadata__":{"format":"pt"}}  )";
  // f16 1.0 = 0x3c00, -2.0 = 0xc000; i32 7 and -1.
  const std::string data = std::string("\x00\x3c\x00\xc0", 4) + le(7, 4) + le(0xffffffffu, 4);
  REQUIRE((8 + header.size() + 4) % 4 != 0);
  write_bytes(path, safetensors_bytes(header, data));

  const auto file = io::SafeTensorsFile::open(path);
  REQUIRE(file.entries().size() == 2);
  CHECK(file.entries()[0].name == "a");
  CHECK(file.entries()[1].name == "b");
  CHECK(file.entries()[0].offset == 8 + header.size());
  CHECK(file.entries()[1].offset == 8 + header.size() + 4);
  CHECK(file.entries()[1].file == path);
  CHECK(file.metadata() == std::map<std::string, std::string>{{"format", "pt"}});

  const Tensor a = file.get("a");
  CHECK(a.dtype() == DType::F16);
  CHECK(a.shape() == Shape{2});
  CHECK(load_unaligned<std::uint16_t>(a.data(), 0) == 0x3c00);
  CHECK(load_unaligned<std::uint16_t>(a.data(), 1) == 0xc000);
  const Tensor b = file.get("b");
  CHECK(b.dtype() == DType::I32);
  CHECK(load_unaligned<std::int32_t>(b.data(), 0) == 7);
  CHECK(load_unaligned<std::int32_t>(b.data(), 1) == -1);
  REQUIRE_PORTA_ERROR(file.get("c"), ErrorCode::NotFound, "'c'");
  REQUIRE_PORTA_ERROR(file.entry("c"), ErrorCode::NotFound, "hand.safetensors");
}

TEST_CASE("safetensors with no tensors and zero-sized tensors", "[io][safetensors]") {
  const std::string dir = fresh_dir("st_empty");
  write_bytes(dir + "/none.safetensors", safetensors_bytes("{}      ", ""));
  CHECK(io::SafeTensorsFile::open(dir + "/none.safetensors").entries().empty());
  // Two empty tensors at the same offset own no bytes, so they do not overlap.
  write_bytes(dir + "/zero.safetensors",
              safetensors_bytes(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                                R"("y":{"dtype":"I8","shape":[3,0],"data_offsets":[0,0]}})",
                                ""));
  const auto file = io::SafeTensorsFile::open(dir + "/zero.safetensors");
  REQUIRE(file.entries().size() == 2);
  CHECK(file.get("y").shape() == Shape{3, 0});
  CHECK(file.get("x").numel() == 0);
}

TEST_CASE("safetensors views outlive the SafeTensorsFile and never write the file",
          "[io][safetensors]") {
  const std::string path = fresh_dir("st_view_lifetime") + "/w.safetensors";
  io::write_safetensors(path, {{"w", Tensor::from_vector<float>({4}, {1, 2, 3, 4})}});
  Tensor view;
  {
    const auto file = io::SafeTensorsFile::open(path);
    view = file.get("w");
  }  // the file object is gone; the mapping must live on inside `view`
  REQUIRE(view.shape() == Shape{4});
  CHECK(load_unaligned<float>(view.data(), 0) == 1.0f);
  CHECK(load_unaligned<float>(view.data(), 3) == 4.0f);

  // A private mapping: writing through the view changes the view only, never the file.
  const float changed = 99.0f;
  std::memcpy(view.data(), &changed, sizeof changed);
  CHECK(load_unaligned<float>(view.data(), 0) == 99.0f);
  const Tensor reread = io::SafeTensorsFile::open(path).get("w");
  CHECK(load_unaligned<float>(reread.data(), 0) == 1.0f);
}

TEST_CASE("write_safetensors refuses bad names", "[io][safetensors][bad]") {
  const std::string path = fresh_dir("st_write_bad") + "/x.safetensors";
  const Tensor t = Tensor::from_vector<float>({1}, {1});
  REQUIRE_PORTA_ERROR(io::write_safetensors(path, {{"a", t}, {"a", t}}), ErrorCode::InvalidArgument,
                      "'a' given twice");
  REQUIRE_PORTA_ERROR(io::write_safetensors(path, {{"__metadata__", t}}),
                      ErrorCode::InvalidArgument, "__metadata__");
  REQUIRE_PORTA_ERROR(io::write_safetensors(path, {{"", t}}), ErrorCode::InvalidArgument,
                      "not a valid tensor name");
  REQUIRE_PORTA_ERROR(io::write_safetensors(path, {{"bad\xff", t}}), ErrorCode::InvalidArgument,
                      "UTF-8");
}

TEST_CASE("list_tensors of a safetensors file", "[io][safetensors]") {
  const std::string dir = fresh_dir("st_list");
  io::write_safetensors(dir + "/m.safetensors",
                        {{"z", Tensor::from_vector<std::int8_t>({2}, {1, 2})},
                         {"a", Tensor::from_vector<float>({1, 1}, {5})}});
  const auto entries = io::list_tensors(dir + "/m.safetensors");
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].name == "z");
  CHECK(entries[0].dtype == DType::I8);
  CHECK(entries[0].nbytes == 2);
  CHECK(entries[1].name == "a");
  CHECK(entries[1].shape == Shape{1, 1});
  CHECK(entries[1].offset == entries[0].offset + 2);

  write_bytes(dir + "/notes.txt", "hello");
  REQUIRE_PORTA_ERROR(io::list_tensors(dir + "/notes.txt"), ErrorCode::InvalidArgument, "'.txt'");
  REQUIRE_PORTA_ERROR(io::list_tensors(dir + "/absent.safetensors"), ErrorCode::NotFound,
                      "absent.safetensors");
}

}  // namespace io_safetensors_tests

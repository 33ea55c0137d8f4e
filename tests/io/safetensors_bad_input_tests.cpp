// safetensors: one test per kind of bad file, each checking the ErrorCode and that the message
// names the file and the tensor or key at fault.
#include <catch2/catch.hpp>

#include <filesystem>

#include <porta/io.hpp>

#include "io/io_test_support.hpp"

namespace io_safetensors_bad_input_tests {

using namespace porta;
using namespace porta::io::test;

namespace {

// Writes `bytes` to a fresh file for test `name` and returns its path.
std::string bad_file(const std::string& name, const std::string& bytes) {
  const std::string path = fresh_dir(name) + "/" + name + ".safetensors";
  write_bytes(path, bytes);
  return path;
}

const std::string kTwoFloats = raw<float>({1.0f, 2.0f});

}  // namespace

TEST_CASE("safetensors bad input: non-existent file", "[io][safetensors][bad]") {
  const std::string path = fresh_dir("st_bad_missing") + "/ghost.safetensors";
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::NotFound, "ghost.safetensors");
}

TEST_CASE("safetensors bad input: truncated header length", "[io][safetensors][bad]") {
  const std::string path = bad_file("st_bad_short", std::string("\x10\x00\x00", 3));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "too short");
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "st_bad_short");
}

TEST_CASE("safetensors bad input: header length past end of file", "[io][safetensors][bad]") {
  const std::string path = bad_file("st_bad_length", le(1000, 8) + "{}");
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "header length 1000 runs past the end of the file (10 bytes)");
}

TEST_CASE("safetensors bad input: absurd header length", "[io][safetensors][bad]") {
  // A length field of 2^63 must be refused before any allocation is attempted.
  const std::string path = bad_file("st_bad_huge_length", le(1ULL << 63, 8) + "{}");
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "header length");
}

TEST_CASE("safetensors bad input: invalid JSON", "[io][safetensors][bad]") {
  const std::string path =
      bad_file("st_bad_json", safetensors_bytes(R"({"a": {"dtype": "F32", )", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "not valid JSON");
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "st_bad_json");
}

TEST_CASE("safetensors bad input: header is not an object", "[io][safetensors][bad]") {
  const std::string path = bad_file("st_bad_array", safetensors_bytes("[1, 2]", ""));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "not an object");
}

TEST_CASE("safetensors bad input: missing dtype", "[io][safetensors][bad]") {
  const std::string path =
      bad_file("st_bad_no_dtype",
               safetensors_bytes(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "tensor 'w' lacks \"dtype\"");
}

TEST_CASE("safetensors bad input: missing shape", "[io][safetensors][bad]") {
  const std::string path =
      bad_file("st_bad_no_shape",
               safetensors_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "tensor 'w' lacks \"shape\"");
}

TEST_CASE("safetensors bad input: missing data_offsets", "[io][safetensors][bad]") {
  const std::string path = bad_file(
      "st_bad_no_offsets", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "tensor 'w' lacks \"data_offsets\"");
}

TEST_CASE("safetensors bad input: unsupported or unknown dtype", "[io][safetensors][bad]") {
  const std::string f64 = bad_file(
      "st_bad_f64",
      safetensors_bytes(R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(f64), ErrorCode::Unsupported,
                      "tensor 'w' has dtype 'F64'");
  const std::string bogus =
      bad_file("st_bad_bogus_dtype",
               safetensors_bytes(R"({"w":{"dtype":"FLOAT99","shape":[2],"data_offsets":[0,8]}})",
                                 kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(bogus), ErrorCode::Unsupported, "'FLOAT99'");
  const std::string number = bad_file(
      "st_bad_numeric_dtype",
      safetensors_bytes(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(number), ErrorCode::CorruptFile,
                      "non-string dtype");
}

TEST_CASE("safetensors bad input: negative shape", "[io][safetensors][bad]") {
  const std::string path = bad_file(
      "st_bad_negative_shape",
      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "tensor 'w' has a negative dimension -2");
}

TEST_CASE("safetensors bad input: non-integer shape", "[io][safetensors][bad]") {
  const std::string path = bad_file(
      "st_bad_float_shape",
      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "tensor 'w'");
}

TEST_CASE("safetensors bad input: offsets out of range", "[io][safetensors][bad]") {
  const std::string path = bad_file(
      "st_bad_out_of_range",
      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "tensor 'w' data_offsets [0, 16] run past the end of the data section (8 "
                      "bytes)");
}

TEST_CASE("safetensors bad input: offsets reversed or malformed", "[io][safetensors][bad]") {
  const std::string reversed = bad_file(
      "st_bad_reversed",
      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(reversed), ErrorCode::CorruptFile,
                      "begin after they end");
  const std::string three = bad_file(
      "st_bad_three_offsets",
      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(three), ErrorCode::CorruptFile, "[begin, end]");
  const std::string negative = bad_file(
      "st_bad_negative_offset",
      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(negative), ErrorCode::CorruptFile,
                      "tensor 'w' data_offsets");
}

TEST_CASE("safetensors bad input: overlapping offsets", "[io][safetensors][bad]") {
  const std::string path =
      bad_file("st_bad_overlap",
               safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                 raw<float>({1, 2, 3})));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
}

TEST_CASE("safetensors bad input: a tensor nested inside another", "[io][safetensors][bad]") {
  // Sorted by begin, 'inner' follows 'outer' and ends before it: still an overlap.
  const std::string path =
      bad_file("st_bad_nested",
               safetensors_bytes(R"({"outer":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                 R"("inner":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                                 R"("after":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                 raw<float>({1, 2, 3, 4})));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "'outer'");
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "overlap");
}

TEST_CASE("safetensors bad input: shape and offsets disagree on size", "[io][safetensors][bad]") {
  const std::string path =
      bad_file("st_bad_size_mismatch",
               safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                 raw<float>({1, 2, 3})));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "tensor 'w' (F32 [3]) needs 12 bytes but its data_offsets [0, 8] span 8");
}

TEST_CASE("safetensors bad input: truncated data", "[io][safetensors][bad]") {
  const std::string path = fresh_dir("st_bad_truncated") + "/cut.safetensors";
  io::write_safetensors(path, {{"a", Tensor::from_vector<float>({2}, {1, 2})},
                               {"b", Tensor::from_vector<float>({3}, {3, 4, 5})}});
  const auto full_size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, full_size - 4);
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "tensor 'b' data_offsets [8, 20] run past the end of the data section (16 "
                      "bytes)");
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "cut.safetensors");
}

TEST_CASE("safetensors bad input: metadata that is not a string map", "[io][safetensors][bad]") {
  const std::string path =
      bad_file("st_bad_metadata", safetensors_bytes(R"({"__metadata__":{"epochs":3}})", ""));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile,
                      "\"__metadata__\" key 'epochs' must map to a string");
  const std::string list =
      bad_file("st_bad_metadata_list", safetensors_bytes(R"({"__metadata__":["a"]})", ""));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(list), ErrorCode::CorruptFile, "__metadata__");
}

TEST_CASE("safetensors bad input: a tensor named twice", "[io][safetensors][bad]") {
  const std::string path =
      bad_file("st_bad_duplicate",
               safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                 kTwoFloats));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "names 'w' twice");
}

TEST_CASE("safetensors bad input: a shape whose size overflows", "[io][safetensors][bad]") {
  const std::string path = bad_file(
      "st_bad_overflow",
      safetensors_bytes(
          R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""));
  REQUIRE_PORTA_ERROR(io::SafeTensorsFile::open(path), ErrorCode::CorruptFile, "overflows");
}

}  // namespace io_safetensors_bad_input_tests

// .npy reading and writing: round trips, files built from the format description, bad inputs.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <limits>

#include <porta/io.hpp>

#include "io/io_test_support.hpp"

namespace io_npy_tests {

using namespace porta;
using namespace porta::io::test;

namespace {

// A .npy file as numpy.lib.format describes it: magic, version, header length (2 bytes for 1.0,
// 4 for 2.0 and 3.0), the dict padded with spaces and a final '\n' so the data starts at a
// multiple of 64, then the data.
std::string npy_bytes(int major, const std::string& dict, const std::string& data) {
  const std::size_t preamble = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((preamble + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += static_cast<char>(major);
  bytes += '\0';
  bytes += le(header.size(), major == 1 ? 2 : 4);
  return bytes + header + data;
}

std::vector<std::int64_t> dims_of(const Tensor& t) { return t.shape().dims(); }

}  // namespace

TEST_CASE("npy round trip keeps every supported dtype and shape", "[io][npy]") {
  const std::string dir = fresh_dir("npy_round_trip");
  const std::vector<Tensor> originals = {
      Tensor::from_vector<float>({2, 3}, {1.5f, -2.25f, 0.0f, 3e-5f, 1e10f, -7.0f}),
      Tensor::from_vector<float>({}, {42.5f}),
      Tensor::from_vector<float>({0}, {}),
      Tensor::from_vector<Half>({2, 3}, {Half{0x3c00}, Half{0xc000}, Half{0x7bff}, Half{0x0001},
                                         Half{0x8000}, Half{0x3555}}),
      Tensor::from_vector<Half>({}, {Half{0x4248}}),
      Tensor::from_vector<std::int8_t>({2, 3}, {-128, 127, 0, 1, -1, 42}),
      Tensor::from_vector<std::int8_t>({0}, {}),
      Tensor::from_vector<std::int32_t>(
          {2, 3}, {std::numeric_limits<std::int32_t>::min(), 2147483647, 0, -1, 7, 65536}),
      Tensor::from_vector<std::int32_t>({}, {-5}),
      Tensor::from_vector<std::int64_t>(
          {2, 3}, {std::numeric_limits<std::int64_t>::min(),
                   std::numeric_limits<std::int64_t>::max(), 0, -1, 1LL << 40, 3}),
      Tensor::from_vector<std::int64_t>({0}, {}),
  };
  for (std::size_t i = 0; i < originals.size(); ++i) {
    const Tensor& original = originals[i];
    INFO("tensor " << i << ": " << original.description());
    const std::string path = dir + "/t" + std::to_string(i) + ".npy";
    io::write_npy(path, original);
    // NumPy aligns the data to 64 bytes; each of these dicts (50-60 characters) plus the
    // 10-byte preamble and the '\n' takes more than 64 bytes, so the data starts at 128.
    CHECK(std::filesystem::file_size(path) == 128 + original.nbytes());
    const Tensor loaded = io::read_npy(path);
    CHECK(loaded.dtype() == original.dtype());
    CHECK(dims_of(loaded) == dims_of(original));
    CHECK(tensor_bytes(loaded) == tensor_bytes(original));
  }
}

TEST_CASE("npy write widens bf16 and f8_e4m3 to float32", "[io][npy]") {
  const std::string dir = fresh_dir("npy_widen");
  // bf16 0x3fc0 = 1.5, 0xc010 = -2.25; e4m3 0x38 = 1.0, 0xc0 = -2.0, 0x7e = 448.
  io::write_npy(dir + "/b.npy",
                Tensor::from_vector<BFloat16>({2}, {BFloat16{0x3fc0}, BFloat16{0xc010}}));
  io::write_npy(dir + "/f8.npy", Tensor::from_vector<Float8E4M3>(
                                     {3}, {Float8E4M3{0x38}, Float8E4M3{0xc0}, Float8E4M3{0x7e}}));
  const Tensor b = io::read_npy(dir + "/b.npy");
  REQUIRE(b.dtype() == DType::F32);
  CHECK(dims_of(b) == std::vector<std::int64_t>{2});
  CHECK(b.data_as<float>()[0] == 1.5f);
  CHECK(b.data_as<float>()[1] == -2.25f);
  const Tensor f8 = io::read_npy(dir + "/f8.npy");
  REQUIRE(f8.dtype() == DType::F32);
  CHECK(f8.data_as<float>()[0] == 1.0f);
  CHECK(f8.data_as<float>()[1] == -2.0f);
  CHECK(f8.data_as<float>()[2] == 448.0f);
}

TEST_CASE("npy writer follows the format byte for byte", "[io][npy]") {
  const std::string path = fresh_dir("npy_writer_bytes") + "/a.npy";
  io::write_npy(path, Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6}));
  const std::string bytes = read_bytes(path);
  // The dict is 60 characters; 10 + 60 + '\n' rounds up to 128, so the header length is 118.
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  REQUIRE(bytes.size() == 128 + 24);
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  CHECK(bytes.substr(8, 2) == std::string("\x76\x00", 2));
  CHECK(bytes.substr(10, dict.size()) == dict);
  CHECK(bytes.substr(10 + dict.size(), 127 - 10 - dict.size()) ==
        std::string(127 - 10 - dict.size(), ' '));
  CHECK(bytes[127] == '\n');
  CHECK(load_unaligned<float>(bytes.data() + 128, 5) == 6.0f);
}

TEST_CASE("npy files written from the format description read back", "[io][npy]") {
  const std::string dir = fresh_dir("npy_by_hand");

  SECTION("version 1.0, int32, (2, 3)") {
    const std::string path = dir + "/v1.npy";
    write_bytes(path, npy_bytes(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
                                raw<std::int32_t>({1, -2, 3, -4, 5, 2147483647})));
    const Tensor t = io::read_npy(path);
    REQUIRE(t.dtype() == DType::I32);
    REQUIRE(dims_of(t) == std::vector<std::int64_t>{2, 3});
    const std::int32_t* v = t.data_as<std::int32_t>();
    CHECK(v[0] == 1);
    CHECK(v[3] == -4);
    CHECK(v[5] == 2147483647);
  }
  SECTION("version 2.0, double quotes, no trailing comma, float16 (3,)") {
    const std::string path = dir + "/v2.npy";
    // f16 0x3c00 = 1.0, 0xc000 = -2.0, 0x3800 = 0.5
    write_bytes(path, npy_bytes(2, R"({"descr": "<f2", "shape": (3,), "fortran_order": False})",
                                raw<std::uint16_t>({0x3c00, 0xc000, 0x3800})));
    const Tensor t = io::read_npy(path);
    REQUIRE(t.dtype() == DType::F16);
    REQUIRE(dims_of(t) == std::vector<std::int64_t>{3});
    CHECK(t.at_f32(0) == 1.0f);
    CHECK(t.at_f32(1) == -2.0f);
    CHECK(t.at_f32(2) == 0.5f);
  }
  SECTION("version 3.0, |i1 scalar") {
    const std::string path = dir + "/v3.npy";
    write_bytes(path, npy_bytes(3, "{'descr': '|i1', 'fortran_order': False, 'shape': (), }",
                                std::string(1, static_cast<char>(-7))));
    const Tensor t = io::read_npy(path);
    REQUIRE(t.dtype() == DType::I8);
    CHECK(t.shape().rank() == 0);
    CHECK(t.data_as<std::int8_t>()[0] == -7);
  }
  SECTION("<i8 and <i1 empty arrays") {
    write_bytes(dir + "/e8.npy",
                npy_bytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (0, 4), }", ""));
    const Tensor e8 = io::read_npy(dir + "/e8.npy");
    CHECK(e8.dtype() == DType::I64);
    CHECK(dims_of(e8) == std::vector<std::int64_t>{0, 4});
    write_bytes(dir + "/e1.npy",
                npy_bytes(1, "{'descr': '<i1', 'fortran_order': False, 'shape': (0,), }", ""));
    CHECK(io::read_npy(dir + "/e1.npy").dtype() == DType::I8);
  }
}

TEST_CASE("npy list_tensors names the entry after the file", "[io][npy]") {
  const std::string path = fresh_dir("npy_list") + "/weights.npy";
  write_bytes(path, npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                              raw<float>({1, 2, 3, 4})));
  const auto entries = io::list_tensors(path);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].name == "weights");
  CHECK(entries[0].dtype == DType::F32);
  CHECK(entries[0].shape == Shape{4});
  CHECK(entries[0].nbytes == 16);
  CHECK(entries[0].offset == 128);  // 10 + 57-character dict + '\n', rounded up to 64
  CHECK(entries[0].file == path);
}

// ---- bad inputs -------------------------------------------------------------------------------

TEST_CASE("npy: non-existent file is NotFound naming the path", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_missing") + "/nothing_here.npy";
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::NotFound, "nothing_here.npy");
  REQUIRE_PORTA_ERROR(io::list_tensors(path), ErrorCode::NotFound, "nothing_here.npy");
}

TEST_CASE("npy: bad magic", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_magic") + "/a.npy";
  std::string bytes =
      npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", raw<float>({1}));
  bytes[1] = 'X';
  write_bytes(path, bytes);
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::CorruptFile, "bad magic");
}

TEST_CASE("npy: file shorter than the preamble", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_short") + "/a.npy";
  write_bytes(path, "\x93NUM");
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::CorruptFile, "a.npy");
}

TEST_CASE("npy: fortran order is refused", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_fortran") + "/f.npy";
  write_bytes(path, npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                              raw<float>({1, 2, 3, 4})));
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::Unsupported, "Fortran-order");
}

TEST_CASE("npy: big-endian dtype is refused naming the descr and file", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_big_endian") + "/be.npy";
  write_bytes(path, npy_bytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                              raw<float>({1})));
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::Unsupported, "big-endian .npy dtype '>f4'");
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::Unsupported, "be.npy");
}

TEST_CASE("npy: other dtypes are refused naming the descr", "[io][npy][bad]") {
  const std::string dir = fresh_dir("npy_other_dtype");
  write_bytes(
      dir + "/f8.npy",
      npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", raw<double>({1})));
  REQUIRE_PORTA_ERROR(io::read_npy(dir + "/f8.npy"), ErrorCode::Unsupported, "'<f8'");
  write_bytes(dir + "/rec.npy",
              npy_bytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                        raw<float>({1})));
  REQUIRE_PORTA_ERROR(io::read_npy(dir + "/rec.npy"), ErrorCode::Unsupported, "structured");
}

TEST_CASE("npy: truncated data names expected and actual bytes", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_truncated") + "/t.npy";
  std::string bytes = npy_bytes(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
                                raw<std::int32_t>({1, 2, 3, 4, 5, 6}));
  write_bytes(path, bytes.substr(0, bytes.size() - 5));
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::CorruptFile, "needs 24 bytes");
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::CorruptFile, "holds 19");
}

TEST_CASE("npy: header length past the end of the file", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_header_past_eof") + "/h.npy";
  write_bytes(path, std::string("\x93NUMPY\x01\x00", 8) + le(500, 2) + "{'descr': '<f4'");
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::CorruptFile, "header length 500");
}

TEST_CASE("npy: malformed header dicts are CorruptFile", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_bad_dict") + "/d.npy";
  const auto check = [&](const std::string& dict, const std::string& fragment) {
    INFO(dict);
    write_bytes(path, npy_bytes(1, dict, raw<float>({1, 2})));
    REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::CorruptFile, fragment);
  };
  check("{'descr': '<f4', 'fortran_order': False, }", "lacks the key 'shape'");
  check("{'fortran_order': False, 'shape': (2,), }", "lacks the key 'descr'");
  check("{'descr': '<f4', 'shape': (2,), }", "lacks the key 'fortran_order'");
  check("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "negative dimension");
  check("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", "one-element tuple");
  check("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", "True or False");
  check("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }",
        "unexpected key 'extra'");
  check("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
        "repeats the key 'descr'");
  check("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", "after the closing");
  check("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "'}'");
  check("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "64 bits");
}

TEST_CASE("npy: unsupported format version", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_version") + "/v.npy";
  std::string bytes =
      npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", raw<float>({1}));
  bytes[6] = 4;
  write_bytes(path, bytes);
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::Unsupported, "version 4.0");
}

TEST_CASE("npy: shape whose byte count overflows", "[io][npy][bad]") {
  const std::string path = fresh_dir("npy_overflow") + "/o.npy";
  write_bytes(path, npy_bytes(1,
                              "{'descr': '<f4', 'fortran_order': False, 'shape': "
                              "(4294967296, 4294967296), }",
                              raw<float>({1})));
  REQUIRE_PORTA_ERROR(io::read_npy(path), ErrorCode::CorruptFile, "more than 2^64");
}

TEST_CASE("npy writer switches to version 2.0 for headers over 64 KiB", "[io][npy]") {
  const std::string path = fresh_dir("npy_v2_write") + "/deep.npy";
  // 25000 dimensions of 1 print as "1, 1, ..." (75000 characters): too long for a u16 length.
  const Shape shape(std::vector<std::int64_t>(25000, 1));
  io::write_npy(path, Tensor::from_vector<std::int32_t>(shape, {-42}));
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() > 12);
  CHECK(bytes[6] == 2);
  CHECK(bytes[7] == 0);
  const std::size_t header_length = load_unaligned<std::uint32_t>(bytes.data() + 8, 0);
  CHECK(header_length > 0xffff);
  CHECK((12 + header_length) % 64 == 0);
  CHECK(bytes.size() == 12 + header_length + 4);
  const Tensor loaded = io::read_npy(path);
  CHECK(loaded.shape() == shape);
  CHECK(loaded.data_as<std::int32_t>()[0] == -42);
}

TEST_CASE("default-constructed loaders throw instead of crashing", "[io][bad]") {
  const io::SafeTensorsFile file;
  REQUIRE_PORTA_ERROR(file.entries(), ErrorCode::InvalidArgument, "SafeTensorsFile::open");
  const io::Checkpoint checkpoint;
  REQUIRE_PORTA_ERROR(checkpoint.get("w"), ErrorCode::InvalidArgument, "Checkpoint::open");
  REQUIRE_PORTA_ERROR(io::write_npy(fresh_dir("npy_undefined") + "/u.npy", Tensor()),
                      ErrorCode::InvalidArgument, "empty");
}

}  // namespace io_npy_tests

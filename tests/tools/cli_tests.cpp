// The porta program end to end: each kind of bad input gives a clear message and a non-zero exit,
// never a crash; the good paths print what they promise.
#ifdef PORTA_CLI_PATH

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include <porta/porta.hpp>
#include "tools/cli_support.hpp"

namespace tools_cli_tests {

namespace {

using porta::test::CliResult;
using porta::test::run_porta;

std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "cli";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string write_file(const std::string& name, const std::string& bytes) {
  const auto path = scratch(name);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::string u64le(std::uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string safetensors(const std::string& header, std::size_t data_bytes) {
  return u64le(header.size()) + header + std::string(data_bytes, '\0');
}

void expect_failure(const std::string& args, const std::string& message_part) {
  INFO("porta " << args);
  const auto r = run_porta(args);
  INFO(r.output);
  CHECK(r.exit_code > 0);
  CHECK_THAT(r.output, Catch::Contains(message_part));
}

}  // namespace

TEST_CASE("porta devices lists the reference backend", "[cli]") {
  const auto r = run_porta("devices");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("reference") && Catch::Contains("available"));
}

TEST_CASE("porta check passes every op on the reference backend", "[cli]") {
  const auto r = run_porta("check --backend reference");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  for (const auto& op : porta::all_ops())
    CHECK_THAT(r.output, Catch::Contains(std::string(op.name)));
  CHECK_THAT(r.output, Catch::Contains("0 failed"));
}

TEST_CASE("porta inspect lists the tensors of a file", "[cli]") {
  const auto path = scratch("good.safetensors");
  porta::io::write_safetensors(
      path, {{"w", porta::Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6})}});
  const auto r = run_porta("inspect " + path);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("w") && Catch::Contains("f32") &&
                           Catch::Contains("[2, 3]") && Catch::Contains("24"));
}

TEST_CASE("porta rejects each kind of bad input with a message and a non-zero exit", "[cli]") {
  SECTION("a file that does not exist") {
    expect_failure("inspect " + scratch("missing.safetensors"), "does not exist");
  }
  SECTION("a safetensors file shorter than its length field") {
    expect_failure("inspect " + write_file("short.safetensors", "abc"), "short.safetensors");
  }
  SECTION("a header length past the end of the file") {
    expect_failure("inspect " + write_file("long.safetensors", u64le(1000) + "{}"),
                   "long.safetensors");
  }
  SECTION("a header that is not JSON") {
    expect_failure("inspect " + write_file("json.safetensors", safetensors("{not json!", 0)),
                   "json.safetensors");
  }
  SECTION("an unknown dtype string") {
    expect_failure(
        "inspect " +
            write_file("dtype.safetensors",
                       safetensors(R"({"t":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", 4)),
        "Q7");
  }
  SECTION("data offsets past the data section") {
    expect_failure(
        "inspect " +
            write_file(
                "range.safetensors",
                safetensors(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)),
        "t");
  }
  SECTION("overlapping data offsets") {
    expect_failure(
        "inspect " +
            write_file("overlap.safetensors",
                       safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                   12)),
        "overlap");
  }
  SECTION("offsets that disagree with the shape") {
    expect_failure(
        "inspect " +
            write_file("size.safetensors",
                       safetensors(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
        "t");
  }
  SECTION("an .npy file with a bad magic string") {
    expect_failure("inspect " + write_file("bad.npy", "NOTNUMPY-------------"), "bad.npy");
  }
  SECTION("a file of an unknown kind") {
    expect_failure("inspect " + write_file("notes.txt", "hello"), "notes.txt");
  }
  SECTION("an unknown op") { expect_failure("check --op frobnicate", "frobnicate"); }
  SECTION("an unknown backend") { expect_failure("check --backend warp-drive", "warp-drive"); }
  SECTION("an unknown dtype") { expect_failure("check --dtype f13", "f13"); }
  SECTION("a benchmark dtype that cannot hold weights") {
    expect_failure("bench --dtype i32 -t 1", "i32");
  }
  SECTION("an unknown backend for bench") {
    expect_failure("bench -b warp-drive -t 1", "warp-drive");
  }
  SECTION("a non-positive token count") { expect_failure("bench -t 0", "tokens"); }
  SECTION("no subcommand") { expect_failure("", "subcommand"); }
  SECTION("an unknown subcommand") { expect_failure("frobnicate", "frobnicate"); }
}

TEST_CASE("porta bench prints a side-by-side table", "[cli]") {
  const auto r = run_porta("bench -t 2 -r 1 --hidden 32 --experts 4 --top-k 2 --inter 16");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("| reference") && Catch::Contains("median ms") &&
                           Catch::Contains("max err"));
}

#endif  // PORTA_CLI_PATH

}  // namespace tools_cli_tests

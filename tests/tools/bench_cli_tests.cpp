// `porta bench` end to end, on toy cases: every output format parses and says what it promises
// (closed-form FLOP counts, the reference's zero error against itself, build and host fields), the
// compare mode matches runs, the plot is an SVG with a bar per measured row, a missing backend is
// skipped with its reason, and each kind of bad argument gives a message and a non-zero exit.
#ifdef PORTA_CLI_PATH

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include "tools/cli_support.hpp"

namespace tools_bench_cli_tests {

namespace {

using nlohmann::json;

using porta::test::CliResult;
using porta::test::run_porta;

std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "bench";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string write_text(const std::string& name, const std::string& text) {
  const auto path = scratch(name);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  return path;
}

// A run that succeeds, writing `format` to a scratch file; returns the file's text.
std::string bench_to_file(const std::string& args, const std::string& format,
                          const std::string& file) {
  const auto path = scratch(file);
  std::filesystem::remove(path);
  const auto r = run_porta("bench " + args + " --format " + format + " -o " + path);
  INFO("porta bench " << args << "\n" << r.output);
  REQUIRE(r.exit_code == 0);
  return read_text(path);
}

// matmul:tiny is x[T, 32] · w[16, 32]ᵀ: 2·T·32·16 FLOPs.
constexpr double matmul_tiny_flops(int tokens) { return 2.0 * tokens * 32 * 16; }

const char* kToyRun = "-c matmul:tiny,moe_layer:tiny -b reference -t 2,3 -r 3 --warmup 1";

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cells.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cells.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.emplace_back();
    } else {
      cells.back() += c;
    }
  }
  return cells;
}

void check_record(const json& r) {
  INFO(r.dump(2));
  CHECK(r.at("status") == "ok");
  CHECK(r.at("backend") == "reference");
  CHECK_FALSE(r.at("device").get<std::string>().empty());
  for (const char* field : {"porta_version", "git_commit", "compiler", "flags", "build_type"})
    CHECK_FALSE(r.at("build").at(field).get<std::string>().empty());
  CHECK_FALSE(r.at("host").at("cpu").get<std::string>().empty());
  CHECK(r.at("host").at("logical_cores").get<int>() > 0);
  const auto& wall = r.at("wall_ms");
  CHECK(wall.at("min").get<double>() > 0);
  CHECK(wall.at("min").get<double>() <= wall.at("p25").get<double>());
  CHECK(wall.at("p25").get<double>() <= wall.at("median").get<double>());
  CHECK(wall.at("median").get<double>() <= wall.at("p75").get<double>());
  CHECK(wall.at("p75").get<double>() <= wall.at("max").get<double>());
  const int reps = r.at("repetitions").get<int>();
  CHECK(reps >= 1);
  CHECK(reps <= 3);
  const double median_s = wall.at("median").get<double>() * 1e-3;
  CHECK(r.at("gflops").get<double>() ==
        Approx(r.at("flops").get<double>() / median_s * 1e-9).epsilon(1e-9));
  CHECK(r.at("tokens_per_s").get<double>() ==
        Approx(r.at("tokens").get<double>() / median_s).epsilon(1e-9));
  // The reference backend checked against itself, on the same inputs: exactly equal.
  CHECK(r.at("max_error").get<double>() == 0.0);
  if (r.at("case") == "matmul:tiny")
    CHECK(r.at("flops").get<double>() == matmul_tiny_flops(r.at("tokens").get<int>()));
}

}  // namespace

TEST_CASE("porta bench --format json writes one valid record per case and backend", "[bench]") {
  const auto doc = json::parse(bench_to_file(kToyRun, "json", "run.json"));
  CHECK(doc.at("format") == "porta-bench");
  CHECK(doc.at("version") == 1);
  const auto& records = doc.at("records");
  REQUIRE(records.size() == 4);  // 2 cases x 2 token counts x 1 backend
  std::vector<std::string> keys;
  for (const auto& r : records) {
    check_record(r);
    keys.push_back(r.at("key"));
  }
  CHECK(keys == std::vector<std::string>{"matmul:tiny/f32/T=2", "matmul:tiny/f32/T=3",
                                         "moe_layer:tiny/f32/T=2", "moe_layer:tiny/f32/T=3"});
}

TEST_CASE("porta bench --format jsonl writes one JSON record per line", "[bench]") {
  std::istringstream lines(bench_to_file(kToyRun, "jsonl", "run.jsonl"));
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) check_record(json::parse(line));
  CHECK(count == 4);
}

TEST_CASE("porta bench --format csv has stable columns and one row per record", "[bench]") {
  std::istringstream lines(bench_to_file(kToyRun, "csv", "run.csv"));
  std::string header;
  std::getline(lines, header);
  // Tools read these columns by name: they may gain columns at the end, never lose or move one.
  const std::vector<std::string> expected{
      "key",           "case",          "case_kind",  "dtype",         "tokens",       "backend",
      "device",        "device_kind",   "status",     "repetitions",   "warmup",       "compile_ms",
      "median_ms",     "min_ms",        "max_ms",     "p25_ms",        "p75_ms",       "mean_ms",
      "flops",         "bytes",         "gflops",     "gbps",          "tokens_per_s", "device_ms",
      "device_gflops", "modelled_ops",  "total_ops",  "metrics",       "max_error",    "message",
      "description",   "porta_version", "git_commit", "compiler",      "flags",        "build_type",
      "host_cpu",      "host_cores",    "host_os",    "checked_tokens", "first_run_ms"};
  REQUIRE(split_csv_line(header) == expected);
  int rows = 0;
  for (std::string line; std::getline(lines, line); ++rows) {
    const auto cells = split_csv_line(line);
    REQUIRE(cells.size() == expected.size());
    auto cell = [&](const std::string& name) {
      return cells[static_cast<std::size_t>(std::find(expected.begin(), expected.end(), name) -
                                            expected.begin())];
    };
    CHECK(cell("status") == "ok");
    CHECK(std::stod(cell("median_ms")) > 0);
    CHECK(std::stod(cell("max_error")) == 0.0);
    CHECK_FALSE(cell("git_commit").empty());
    CHECK_FALSE(cell("host_cpu").empty());
    if (cell("case") == "matmul:tiny")
      CHECK(std::stod(cell("flops")) == matmul_tiny_flops(std::stoi(cell("tokens"))));
  }
  CHECK(rows == 4);
}

TEST_CASE("porta bench prints a markdown table with the build and host", "[bench]") {
  const auto r = run_porta("bench -c matmul:tiny -b reference -t 2 -r 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("| case | dtype | T | backend |") &&
                           Catch::Contains("| matmul:tiny | f32 | 2 | reference | 2 |") &&
                           Catch::Contains("- build: porta") && Catch::Contains("- host: "));
  // stderr is a pipe here, not a terminal: no progress line.
  CHECK_THAT(r.output, !Catch::Contains("elapsed") && !Catch::Contains("\r"));
}

TEST_CASE("porta bench checks other backends against the reference", "[bench]") {
  // The cpu backend computes in its own order: a small error that is not exactly zero shows the
  // check compares two different computations.
  const auto devices = run_porta("devices");
  if (devices.output.find("\ncpu ") == std::string::npos) return;
  const auto doc =
      json::parse(bench_to_file("-c matmul:tiny -b cpu -t 5 -r 1 --set k=300", "json", "cpu.json"));
  const auto& r = doc.at("records").at(0);
  INFO(r.dump(2));
  REQUIRE(r.at("status") == "ok");
  CHECK(r.at("max_error").get<double>() < 1e-5);
  CHECK(r.at("flops").get<double>() == 2.0 * 5 * 300 * 16);
}

TEST_CASE("porta bench checks a long case on a prefix of the same inputs", "[bench]") {
  const auto devices = run_porta("devices");
  if (devices.output.find("\ncpu ") == std::string::npos) return;
  // The MoE layer is row-wise: the reference on the first 4 tokens must match the first 4 rows of
  // the cpu backend's 16-token output as closely as the full check does. Comparing any other rows
  // would give an error of order 1.
  for (const char* check : {"4", "0"}) {
    const auto doc = json::parse(
        bench_to_file(std::string("-c moe_layer:tiny -b cpu -t 16 -r 1 --check-tokens ") + check,
                      "json", "prefix.json"));
    const auto& r = doc.at("records").at(0);
    INFO(r.dump(2));
    REQUIRE(r.at("status") == "ok");
    CHECK(r.at("checked_tokens").get<int>() == (check[0] == '4' ? 4 : 16));
    CHECK(r.at("max_error").get<double>() < 1e-5);
  }
}

TEST_CASE("porta bench runs whole checkpoints: tiny presets and a checkpoint directory",
          "[bench]") {
  // The preset generated in memory, and a checkpoint gen-checkpoint wrote, loaded from disk.
  const auto dir = scratch("tiny-v3-ckpt");
  const auto gen = run_porta("gen-checkpoint --kind deepseek_v3 --dtype f32 --out " + dir);
  REQUIRE(gen.exit_code == 0);
  for (const std::string& c : {std::string("checkpoint:deepseek_v3"), "checkpoint:path=" + dir}) {
    const auto doc = json::parse(
        bench_to_file("-c " + c + " -b reference -t 3 -r 1", "json", "checkpoint.json"));
    const auto& r = doc.at("records").at(0);
    INFO(r.dump(2));
    REQUIRE(r.at("status") == "ok");
    CHECK(r.at("max_error").get<double>() == 0.0);
    CHECK(r.at("flops").get<double>() > 0);
  }
  const auto missing =
      run_porta("bench -c checkpoint:path=" + scratch("no-such-dir") + " -b reference");
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.output, Catch::Contains("not a checkpoint directory"));
}

TEST_CASE("porta bench skips a backend it has no device for, with the reason", "[bench]") {
  const auto doc = json::parse(bench_to_file(
      "-c matmul:tiny -b reference,npu-sim:no-such-chip -t 2 -r 1", "json", "skip.json"));
  const auto& records = doc.at("records");
  REQUIRE(records.size() == 2);
  CHECK(records[0].at("status") == "ok");
  CHECK(records[1].at("backend") == "npu-sim:no-such-chip");
  CHECK(records[1].at("status") == "skipped");
  CHECK_THAT(records[1].at("message").get<std::string>(), Catch::Contains("npu-sim"));

  const auto md = run_porta("bench -c matmul:tiny -b reference,npu-sim:no-such-chip -t 2 -r 1");
  CHECK(md.exit_code == 0);
  CHECK_THAT(md.output,
             Catch::Contains("Skipped backends:") && Catch::Contains("- npu-sim:no-such-chip: "));
}

TEST_CASE("porta bench --no-check leaves the error out", "[bench]") {
  const auto doc = json::parse(
      bench_to_file("-c softmax:tiny -b reference -t 2 -r 1 --no-check", "json", "nocheck.json"));
  CHECK(doc.at("records").at(0).at("max_error").is_null());
}

TEST_CASE("porta bench --compare prints the ratio table of two runs", "[bench]") {
  const auto a = scratch("compare_a.json");
  const auto b = scratch("compare_b.jsonl");
  write_text("compare_a.json", bench_to_file("-c matmul:tiny,softmax:tiny -b reference -t 2 -r 2",
                                             "json", "compare_a.json"));
  write_text("compare_b.jsonl", bench_to_file("-c matmul:tiny,rms_norm:tiny -b reference -t 2 -r 2",
                                              "jsonl", "compare_b.jsonl"));
  const auto r = run_porta("bench --compare " + a + " " + b);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("B speed-up") &&
                           Catch::Contains("| matmul:tiny/f32/T=2 | reference |") &&
                           Catch::Contains("Geometric mean of B's speed-up over 1 matched rows"));
  CHECK_THAT(r.output, Catch::Contains("Only in A:\n- softmax:tiny/f32/T=2 on reference") &&
                           Catch::Contains("Only in B:\n- rms_norm:tiny/f32/T=2 on reference"));
}

TEST_CASE("porta bench --compare of a run with itself gives a speed-up of exactly 1", "[bench]") {
  const auto a = scratch("self.json");
  bench_to_file("-c matmul:tiny -b reference -t 2,4 -r 2", "json", "self.json");
  const auto r = run_porta("bench --compare " + a + " " + a);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output,
             Catch::Contains("| 1.00x |") && Catch::Contains("over 2 matched rows: 1.000x"));
}

TEST_CASE("porta bench --plot writes an SVG bar chart of every measured row", "[bench]") {
  const auto svg_path = scratch("plot.svg");
  std::filesystem::remove(svg_path);
  const auto r =
      run_porta("bench -c matmul:tiny,rms_norm:tiny -b reference -t 2,8 -r 1 --plot " + svg_path);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto svg = read_text(svg_path);
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK_THAT(svg, Catch::EndsWith("</svg>\n") && Catch::Contains(">reference</text>") &&
                      Catch::Contains("matmul:tiny") && Catch::Contains("GFLOP/s"));
  auto count = [&](const std::string& needle) {
    std::size_t n = 0;
    for (auto at = svg.find(needle); at != std::string::npos; at = svg.find(needle, at + 1)) ++n;
    return n;
  };
  CHECK(count("<title>") == 4);  // one bar (with its tooltip) per measured row
  CHECK(count("<text") == count("</text>"));
}

TEST_CASE("porta bench --list names every case family and suite", "[bench]") {
  const auto r = run_porta("bench --list");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (const char* name : {"matmul", "grouped_matmul", "moe_router", "rms_norm", "softmax",
                           "attention", "moe_layer", "model", "v2-lite", "moe-stack", "demo"})
    CHECK_THAT(r.output, Catch::Contains(name));
}

TEST_CASE("porta bench runs the whole-model case", "[bench]") {
  const auto doc =
      json::parse(bench_to_file("-c model:tiny -b reference -t 3 -r 1", "json", "model.json"));
  const auto& r = doc.at("records").at(0);
  INFO(r.dump(2));
  CHECK(r.at("status") == "ok");
  CHECK(r.at("case_kind") == "model");
  // Embedding, 2 x (norm, 3 projections, 2 ropes, attention, o projection, 2 adds, MoE block),
  // final norm and logits: well over twenty ops.
  CHECK(r.at("total_ops").get<int>() > 20);
  CHECK(r.at("flops").get<double>() > 0);
}

TEST_CASE("porta bench rejects bad arguments with a message and a non-zero exit", "[bench]") {
  auto expect_failure = [](const std::string& args, const std::string& message_part) {
    INFO("porta " << args);
    const auto r = run_porta(args);
    INFO(r.output);
    CHECK(r.exit_code > 0);
    CHECK_THAT(r.output, Catch::Contains(message_part));
  };
  SECTION("an unknown backend") {
    expect_failure("bench -c matmul:tiny -b warp-drive -t 1", "unknown backend 'warp-drive'");
  }
  SECTION("an unknown case") {
    expect_failure("bench -c frobnicate -b reference", "unknown bench case 'frobnicate'");
  }
  SECTION("an unknown configuration of a case") {
    expect_failure("bench -c matmul:huge -b reference", "no configuration 'huge'");
  }
  SECTION("an unknown suite") { expect_failure("bench --suite nightly", "unknown bench suite"); }
  SECTION("a bad format") {
    expect_failure("bench -c matmul:tiny -b reference -f xml", "unknown bench format 'xml'");
  }
  SECTION("a dtype that is not a float") {
    expect_failure("bench -c matmul:tiny -b reference --dtype i8", "not i8");
  }
  SECTION("a size the cases do not have") {
    expect_failure("bench -c matmul:tiny -b reference --set experts=4", "no chosen bench case");
  }
  SECTION("a size that is not NAME=INTEGER") {
    expect_failure("bench -c matmul:tiny -b reference --set k=lots", "NAME=INTEGER");
  }
  SECTION("a compare file that does not exist") {
    expect_failure("bench --compare " + scratch("nope.json") + " " + scratch("nope.json"),
                   "does not exist");
  }
  SECTION("a compare file that is not JSON") {
    const auto bad = write_text("bad.json", "{ this is not json");
    expect_failure("bench --compare " + bad + " " + bad, "bad.json");
  }
  SECTION("a compare file that is JSON but not a bench run") {
    const auto other = write_text("other.json", R"({"hello": [1, 2, 3]})");
    expect_failure("bench --compare " + other + " " + other, "not a porta bench run");
  }
  SECTION("a compare record with a missing field") {
    const auto partial = write_text(
        "partial.json", R"({"format": "porta-bench", "version": 1, "records": [{"case": "x"}]})");
    expect_failure("bench --compare " + partial + " " + partial, "no field 'dtype'");
  }
  SECTION("a compare record with a field of the wrong type") {
    const auto typed = write_text(
        "typed.jsonl",
        R"({"case": "x", "dtype": "f32", "tokens": "many", "backend": "cpu", "status": "ok"})");
    expect_failure("bench --compare " + typed + " " + typed, "'tokens' has the wrong type");
  }
  SECTION("compare with one file") {
    expect_failure("bench --compare " + scratch("one.json"), "compare");
  }
  SECTION("an output file that cannot be written") {
    expect_failure("bench -c matmul:tiny -b reference -t 1 -r 1 -o /nonexistent-dir/x.json",
                   "cannot open");
  }
}

#endif  // PORTA_CLI_PATH

}  // namespace tools_bench_cli_tests

// One measured row of `porta bench` and the environment it was measured in.
//
// A Record is self-describing: it carries the build (porta version, git commit, compiler, flags,
// build type), the host CPU and the backend's device, so that a JSONL line or a CSV row read
// months later still says what produced it. Records round-trip through JSON for --compare.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <porta/tensor.hpp>

namespace porta::cli::bench {

struct BuildInfo {
  std::string porta_version;
  std::string git_commit;  // "unknown" when neither the build nor the source tree says
  std::string compiler;    // "GCC 12.2.0"
  std::string flags;       // what the compiler was told that matters for speed: -O, -march, ...
  std::string build_type;  // "Release", "Debug"
};

struct HostInfo {
  std::string cpu;  // model name
  int logical_cores = 0;
  std::string os;  // kernel name and release
};

BuildInfo build_info();
HostInfo host_info();

struct Stats {
  int count = 0;
  double median = 0, min = 0, max = 0, p25 = 0, p75 = 0, mean = 0;
};
// Order statistics of `samples` (linear interpolation between ranks for the quartiles).
Stats summarise(std::vector<double> samples);

// max |got - want| / max |want| (the normalisation of lib/check); infinity for a NaN or a shape
// that differs.
double normalised_error(const Tensor& got, const Tensor& want);

enum class Status { Ok, Skipped, Failed };
const char* status_name(Status status);

struct Record {
  // What was measured. key() = "case/dtype/T=tokens"; --compare matches on (key, backend).
  std::string case_id;  // "moe_layer:v2-lite"
  std::string case_kind;
  std::string description;
  std::string dtype;
  std::int64_t tokens = 0;
  std::string backend;
  std::string device;  // the device's description
  std::string device_kind;
  Status status = Status::Ok;
  std::string message;  // why it was skipped or failed; notes (ops placed elsewhere) when ok

  // Wall time of run() on the host, in milliseconds, over `wall.count` repetitions after warm-up.
  // The one-time costs are apart: compile() and the first run (which builds what a backend builds
  // lazily: OpenCL programs, oneDNN kernels, first-touch memory), never one of the samples.
  int warmup = 0;
  Stats wall;
  double compile_ms = 0;
  double first_run_ms = 0;
  double flops = 0;  // per run, from the profile
  double bytes = 0;
  double gflops = 0, gbps = 0, tokens_per_s = 0;  // at the median wall time
  // Device time of the ops that report one: modelled by a simulator (npu-sim), or measured by the
  // device's own timers (OpenCL events). Backend metrics that count (cycles, bytes, ...) are summed
  // over ops; the others (utilisations, busy fractions) are averaged weighted by device time.
  std::optional<double> device_ms;
  std::optional<double> device_gflops;
  int modelled_ops = 0, total_ops = 0;
  std::map<std::string, double> metrics;
  // max |test - ref| / max |ref| over the outputs, against the reference backend.
  std::optional<double> max_error;
  std::int64_t checked_tokens = 0;  // the error covers the first checked_tokens tokens

  BuildInfo build;
  HostInfo host;

  std::string key() const;
};

nlohmann::json to_json(const Record& r);
// Throws porta::Error (CorruptFile) naming `origin` and the field when a record is malformed.
Record record_from_json(const nlohmann::json& j, const std::string& origin);

}  // namespace porta::cli::bench

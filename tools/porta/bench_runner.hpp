// The runner of `porta bench`: every case of a sweep on every backend, timed, with its error
// against the reference backend.
//
// For each case (family config x dtype x token count) the graph is built once and the reference
// output computed once (or not at all with check = false); then each backend compiles it (timed),
// runs it once on its own (timed apart: the first run pays lazy one-time costs), `warmup` - 1 more
// times untimed and up to `repetitions` times timed, stopping early once `max_seconds` of timed
// runs are spent (at least one timed run after the first always happens). A backend that is compiled in but
// has no device, or was not compiled in, gives "skipped" records with the reason; a failure in one
// case is a "failed" record, and the sweep goes on.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <porta/porta.hpp>

#include "bench_case.hpp"
#include "bench_record.hpp"

namespace porta::cli::bench {

// A backend named on the command line, resolved against the devices porta was built with.
struct BackendTarget {
  std::string name;  // as passed to compile()
  bool available = false;
  std::string reason;  // why not, when not available
  DeviceInfo device;
};

// Every available device when `requested` is empty. Throws porta::Error (NotFound) for a name
// that is no backend porta knows of, listing them; a known backend without the device (not built
// in, no OpenCL platform, no such simulator profile) is returned unavailable, with the reason.
std::vector<BackendTarget> resolve_backends(const std::vector<std::string>& requested);

struct SweepOptions {
  std::vector<CaseSpec> cases;
  std::vector<BackendTarget> backends;
  std::vector<std::int64_t> tokens;
  std::vector<DType> dtypes;
  int warmup = 1;
  int repetitions = 5;
  double max_seconds = 5;
  bool check = true;
  // Cases longer than this are checked on their first check_tokens tokens when their family is
  // prefix-independent (0: always the whole case). The reference's ~70 GFLOP for a V2-Lite layer
  // at T=512 is most of a demo's time otherwise.
  std::int64_t check_tokens = 64;
  std::uint64_t seed = 7;
};

struct ProgressEvent {
  int done = 0;     // runs (case x backend) finished
  int total = 0;    // runs in the sweep
  std::string now;  // what runs next, e.g. "moe_layer:v2-lite bf16 T=512 on opencl"
};
using ProgressFn = std::function<void(const ProgressEvent&)>;

// The sweep's records in case order, backends in the order given (skipped ones included).
std::vector<Record> run_sweep(const SweepOptions& options, const ProgressFn& progress = {});

}  // namespace porta::cli::bench

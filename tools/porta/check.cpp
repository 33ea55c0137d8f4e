// `porta check`: the conformance matrix of every op on every available backend against the
// reference backend. Exits non-zero when any case fails.
#include <unistd.h>

#include <fmt/format.h>

#include <porta/device.hpp>

#include "check/conformance.hpp"
#include "commands.hpp"

namespace porta::cli {

namespace {

struct CheckArgs {
  std::vector<std::string> backends;
  std::vector<std::string> ops;
  std::vector<std::string> dtypes;
  std::uint64_t seed = 42;
  bool verbose = false;
};

}  // namespace

Command add_check_command(CLI::App& app) {
  auto args = std::make_shared<CheckArgs>();
  app.add_option("-b,--backend", args->backends, "Backends to check (default: every available one)")
      ->delimiter(',');
  app.add_option("--op", args->ops, "Ops to check (default: all)")->delimiter(',');
  app.add_option("--dtype", args->dtypes, "Dtypes to check (default: f32,f16,bf16)")
      ->delimiter(',');
  app.add_option("--seed", args->seed, "Random seed of the inputs");
  app.add_flag("-v,--verbose", args->verbose, "Print every case");
  return [args] {
    check::CheckOptions options;
    options.ops = args->ops;
    options.seed = args->seed;
    for (const auto& t : args->dtypes) options.dtypes.push_back(parse_dtype(t));
    options.backends = args->backends;
    if (options.backends.empty())
      for (const auto& d : list_devices())
        if (d.available) options.backends.push_back(d.name);
    const bool tty = isatty(fileno(stderr)) != 0;
    std::size_t done = 0;
    const auto results = check::run_conformance(options, [&](const check::CaseResult& r) {
      ++done;
      if (args->verbose || r.status == check::Status::Fail || r.status == check::Status::Error)
        fmt::print(
            "{:<11} {:<12} {:<5} {:<46} err {:.2e} (tol {:.1e}){}\n",
            r.status == check::Status::Pass          ? "pass"
            : r.status == check::Status::Unsupported ? "unsupported"
            : r.status == check::Status::Fail        ? "FAIL"
                                                     : "ERROR",
            r.op, dtype_name(r.dtype), fmt::format("{} [{}]", r.label, r.backend), r.error,
            r.tolerance,
            r.message.empty() || r.status == check::Status::Pass ? "" : "\n    " + r.message);
      if (tty) fmt::print(stderr, "\r{} cases done", done);
    });
    if (tty) fmt::print(stderr, "\r");
    fmt::print("{}", check::format_matrix(results));
    std::size_t failed = 0, unsupported = 0;
    for (const auto& r : results) {
      if (r.status == check::Status::Fail || r.status == check::Status::Error) ++failed;
      if (r.status == check::Status::Unsupported) ++unsupported;
    }
    fmt::print("{} cases: {} passed, {} failed, {} unsupported (placed elsewhere at run time)\n",
               results.size(), results.size() - failed - unsupported, failed, unsupported);
    return failed == 0 ? 0 : kExitFailure;
  };
}

}  // namespace porta::cli

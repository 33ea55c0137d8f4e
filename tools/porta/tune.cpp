// `porta tune`: runs CLBlast's GEMM tuner for an OpenCL device with a sampling fraction and saves
// the parameters, which the opencl backend loads whenever a later process opens that device.
// An exhaustive search did not finish in 15 minutes on PoCL; the fraction bounds the search.
// Built only with the opencl backend (tools/CMakeLists.txt).
#include <fmt/format.h>

#include "commands.hpp"

#include <porta/error.hpp>

#include "../../backends/opencl/opencl_tuning.hpp"
#include "runtime/backend.hpp"

namespace porta::cli {

namespace {

struct TuneArgs {
  std::string device = "opencl";
  std::size_t m = 512, n = 512, k = 512;
  double fraction = 0.01;
  std::string output;
  bool show_path = false;
};

}  // namespace

Command add_tune_command(CLI::App& app) {
  auto args = std::make_shared<TuneArgs>();
  app.add_option("-d,--device", args->device, "OpenCL device to tune (opencl or opencl:N)")
      ->capture_default_str();
  app.add_option("-m", args->m, "Rows of the GEMM the tuner times")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("-n", args->n, "Columns of the GEMM the tuner times")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("-k", args->k, "Inner dimension of the GEMM the tuner times")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("-f,--fraction", args->fraction,
                 "Share of the search space to sample, in (0, 1]; 1 is exhaustive (hours on "
                 "some devices)")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  app.add_option("-o,--output", args->output,
                 "Where to save the parameters (default: the file the backend loads for this "
                 "device)");
  app.add_flag("--where", args->show_path,
               "Print the file the backend loads this device's parameters from, and exit");
  return [args]() -> int {
    if (args->device != "opencl" && args->device.rfind("opencl:", 0) != 0) {
      fmt::print(stderr, "porta tune: '{}' is not an OpenCL device (opencl or opencl:N)\n",
                 args->device);
      return kExitUsage;
    }
    auto backend = detail::get_backend(args->device);
    auto& device = detail::opencl::device_of(*backend);
    if (args->show_path) {
      fmt::print("{}\n", detail::opencl::tuning_file(device).string());
      return 0;
    }
    detail::opencl::TuneOptions options;
    options.m = args->m;
    options.n = args->n;
    options.k = args->k;
    options.fraction = args->fraction;
    options.file = args->output;
    fmt::print(
        "tuning CLBlast Xgemm (f32) on {} ({}) at {}x{}x{}, sampling {:.3g} of the search "
        "space...\n",
        backend->name(), backend->info().description, options.m, options.n, options.k,
        options.fraction);
    const auto result = detail::opencl::tune_gemm(device, options);
    for (const auto& [name, value] : result.parameters) fmt::print("  {} = {}\n", name, value);
    fmt::print("saved to {}; later runs on {} load it\n", result.file.string(), backend->name());
    return 0;
  };
}

}  // namespace porta::cli

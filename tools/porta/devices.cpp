// `porta devices`: every backend compiled in and every device it sees.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <porta/device.hpp>

#include "commands.hpp"

namespace porta::cli {

namespace {

std::string human_bytes(std::uint64_t bytes) {
  if (bytes == 0) return "-";
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, units[unit]);
}

}  // namespace

Command add_devices_command(CLI::App& app) {
  auto verbose = std::make_shared<bool>(false);
  app.add_flag("-v,--verbose", *verbose, "Show every property of each device");
  return [verbose] {
    const auto devices = list_devices();
    fmt::print("{:<16} {:<11} {:<9} {:>10} {:>11} {:>10}  {}\n", "name", "kind", "status", "memory",
               "peak GFLOP/s", "GB/s", "description");
    for (const auto& d : devices) {
      std::vector<std::string> dtypes;
      for (auto t : d.dtypes) dtypes.emplace_back(dtype_name(t));
      fmt::print("{:<16} {:<11} {:<9} {:>10} {:>11} {:>10}  {}\n", d.name, d.kind,
                 d.available ? "available" : "missing", human_bytes(d.memory_bytes),
                 d.peak_gflops > 0 ? fmt::format("{:.0f}", d.peak_gflops) : "-",
                 d.peak_gbps > 0 ? fmt::format("{:.0f}", d.peak_gbps) : "-", d.description);
      if (!d.available) fmt::print("{:<16} unavailable: {}\n", "", d.unavailable_reason);
      fmt::print("{:<16} dtypes: {}\n", "", fmt::join(dtypes, ", "));
      if (*verbose)
        for (const auto& [key, value] : d.properties) fmt::print("{:<16} {}: {}\n", "", key, value);
    }
    return 0;
  };
}

}  // namespace porta::cli

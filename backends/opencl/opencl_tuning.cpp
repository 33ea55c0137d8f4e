// `porta tune` behind the scenes: CLBlast's Xgemm tuner, and the file its result is kept in.
#include "opencl_tuning.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <clblast.h>
#include <fmt/format.h>

namespace porta::detail::opencl {

namespace {

std::string device_text(cl_device_id device, cl_device_info what) {
  std::size_t size = 0;
  if (clGetDeviceInfo(device, what, 0, nullptr, &size) != CL_SUCCESS || size == 0) return {};
  std::string text(size, '\0');
  clGetDeviceInfo(device, what, size, text.data(), nullptr);
  while (!text.empty() && text.back() == '\0') text.pop_back();
  return text;
}

std::string file_safe(std::string text) {
  for (char& c : text)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-'))
      c = '_';
  return text;
}

void check_clblast(clblast::StatusCode status, std::string_view what) {
  if (status == clblast::StatusCode::kSuccess) return;
  throw Error(ErrorCode::Backend, fmt::format("opencl: CLBlast {} failed with status {}", what,
                                              static_cast<int>(status)));
}

}  // namespace

std::filesystem::path tuning_file(const Device& device) {
  std::filesystem::path dir = user_opencl_dir();
  if (const char* d = std::getenv("PORTA_OPENCL_TUNING_DIR"); d != nullptr && *d != '\0') dir = d;
  const std::string name = device_text(device.id(), CL_DEVICE_NAME);
  const std::string driver = device_text(device.id(), CL_DRIVER_VERSION);
  return dir / fmt::format("xgemm-{}-{}.txt", file_safe(name), file_safe(driver));
}

std::map<std::string, std::size_t> read_tuning_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in)
    throw Error(ErrorCode::Io, fmt::format("cannot open the tuning file '{}'", file.string()));
  std::map<std::string, std::size_t> parameters;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    std::size_t value = 0;
    std::istringstream digits(eq == std::string::npos ? std::string() : line.substr(eq + 1));
    if (eq == 0 || eq == std::string::npos || !(digits >> value) || !digits.eof())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("tuning file '{}' line {}: '{}' is not NAME=VALUE", file.string(),
                              number, line));
    parameters[line.substr(0, eq)] = value;
  }
  if (parameters.empty())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tuning file '{}' holds no parameters", file.string()));
  return parameters;
}

TuneResult tune_gemm(Device& device, const TuneOptions& options) {
  if (!(options.fraction > 0.0 && options.fraction <= 1.0))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("the sampling fraction must be in (0, 1], got {}", options.fraction));
  if (options.m == 0 || options.n == 0 || options.k == 0)
    throw Error(ErrorCode::InvalidArgument, "the tuning sizes must be positive");
  std::unordered_map<std::string, std::size_t> found;
  cl_command_queue queue = device.queue();
  check_clblast(
      clblast::TuneXgemm<float>(&queue, options.m, options.n, options.k, options.fraction, found),
      "TuneXgemm");
  TuneResult result;
  result.parameters.insert(found.begin(), found.end());
  result.file = options.file.empty() ? tuning_file(device) : options.file;
  std::error_code ignored;
  if (result.file.has_parent_path())
    std::filesystem::create_directories(result.file.parent_path(), ignored);
  std::ofstream out(result.file);
  out << fmt::format(
      "# porta tune: CLBlast Xgemm (f32) parameters for {}\n# {}x{}x{}, fraction {}\n",
      device.name(), options.m, options.n, options.k, options.fraction);
  for (const auto& [name, value] : result.parameters) out << name << '=' << value << '\n';
  out.close();
  if (!out)
    throw Error(ErrorCode::Io,
                fmt::format("cannot write the tuning file '{}'", result.file.string()));
  check_clblast(
      clblast::OverrideParameters(device.id(), "Xgemm", clblast::Precision::kSingle, found),
      "OverrideParameters");
  return result;
}

bool load_saved_tuning(Device& device, std::string* why) {
  const auto file = tuning_file(device);
  std::error_code error;
  if (!std::filesystem::exists(file, error)) return false;
  try {
    const auto parameters = read_tuning_file(file);
    const std::unordered_map<std::string, std::size_t> values(parameters.begin(), parameters.end());
    check_clblast(
        clblast::OverrideParameters(device.id(), "Xgemm", clblast::Precision::kSingle, values),
        fmt::format("loading '{}'", file.string()));
    return true;
  } catch (const Error& e) {
    if (why != nullptr) *why = e.what();
    return false;
  }
}

}  // namespace porta::detail::opencl

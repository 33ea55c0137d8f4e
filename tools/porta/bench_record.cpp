// Records of `porta bench`: the build and host they came from, their statistics, and JSON.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/version.hpp>

#include "bench_record.hpp"

namespace porta::cli::bench {

namespace fs = std::filesystem;

namespace {

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string read_first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return trim(line);
}

std::string run_quietly(const std::string& command) {
  std::string out;
  if (FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r")) {
    std::array<char, 256> chunk{};
    while (fgets(chunk.data(), static_cast<int>(chunk.size()), pipe)) out += chunk.data();
    if (pclose(pipe) != 0) out.clear();
  }
  return trim(out);
}

// The commit of the source tree this program was built in: the build tree sits inside it (build/,
// build-*/), so walk up from the executable to the first .git. A build may instead bake the commit
// in with -DPORTA_GIT_COMMIT="...", which wins.
std::string git_commit() {
#ifdef PORTA_GIT_COMMIT
  return PORTA_GIT_COMMIT;
#else
  std::error_code ec;
  fs::path dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  if (ec) return "unknown";
  for (; !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
    const fs::path git = dir / ".git";
    std::error_code missing;
    if (!fs::is_directory(git, missing)) continue;
    // git itself knows about packed refs and local edits; without it, read HEAD by hand.
    const std::string described =
        run_quietly(fmt::format("git -C '{}' describe --always --dirty --abbrev=12", dir.string()));
    if (!described.empty()) return described;
    std::string head = read_first_line(git / "HEAD");
    if (head.starts_with("ref: ")) {
      const std::string ref = head.substr(5);
      head = read_first_line(git / ref);
      if (head.empty()) {
        std::ifstream packed(git / "packed-refs");
        for (std::string line; std::getline(packed, line);)
          if (line.size() > 41 && line.substr(41) == ref) head = line.substr(0, 40);
      }
    }
    return head.empty() ? "unknown" : head.substr(0, 12);
  }
  return "unknown";
#endif
}

std::string compiler_name() {
#if defined(__clang__)
  return fmt::format("Clang {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
  return fmt::format("GCC {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
  return "unknown compiler";
#endif
}

// The flags that change speed, as the compiler saw them (a build may pass -DPORTA_BUILD_FLAGS).
std::string compiler_flags() {
#ifdef PORTA_BUILD_FLAGS
  return PORTA_BUILD_FLAGS;
#else
  std::vector<std::string> flags;
#if defined(__OPTIMIZE_SIZE__)
  flags.emplace_back("-Os");
#elif defined(__OPTIMIZE__)
  flags.emplace_back("-O2+");
#else
  flags.emplace_back("-O0");
#endif
#ifdef NDEBUG
  flags.emplace_back("-DNDEBUG");
#endif
#if defined(__AVX512F__)
  flags.emplace_back("avx512f");
#elif defined(__AVX2__)
  flags.emplace_back("avx2");
#elif defined(__x86_64__)
  flags.emplace_back("x86-64 baseline");
#endif
#ifdef __FMA__
  flags.emplace_back("fma");
#endif
#if defined(__SANITIZE_ADDRESS__)
  flags.emplace_back("-fsanitize=address");
#endif
  std::string out;
  for (const auto& f : flags) out += (out.empty() ? "" : " ") + f;
  return out;
#endif
}

std::string build_type() {
#ifdef PORTA_BUILD_TYPE
  return PORTA_BUILD_TYPE;
#elif defined(__SANITIZE_ADDRESS__)
  return "Sanitize";
#elif defined(NDEBUG) && defined(__OPTIMIZE__)
  return "Release";
#else
  return "Debug";
#endif
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("model name")) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return trim(line.substr(colon + 1));
    }
  return "unknown CPU";
}

double quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

template <class T>
T field(const nlohmann::json& j, const char* name, const std::string& origin) {
  if (!j.contains(name))
    throw Error(ErrorCode::CorruptFile,
                fmt::format("{}: a bench record has no field '{}'", origin, name));
  try {
    return j.at(name).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorCode::CorruptFile,
                fmt::format("{}: the bench record field '{}' has the wrong type", origin, name));
  }
}

std::optional<double> optional_number(const nlohmann::json& j, const char* name) {
  if (!j.contains(name) || j.at(name).is_null()) return std::nullopt;
  return j.at(name).get<double>();
}

nlohmann::json optional_json(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// JSON has no infinity or NaN; an error that overflowed is written as the string "inf".
nlohmann::json error_json(const std::optional<double>& v) {
  if (v && !std::isfinite(*v)) return "inf";
  return optional_json(v);
}

}  // namespace

BuildInfo build_info() {
  static const BuildInfo info{PORTA_VERSION_STRING, git_commit(), compiler_name(), compiler_flags(),
                              build_type()};
  return info;
}

HostInfo host_info() {
  HostInfo h;
  h.cpu = cpu_model();
  h.logical_cores = static_cast<int>(std::thread::hardware_concurrency());
  utsname u{};
  if (uname(&u) == 0) h.os = fmt::format("{} {}", u.sysname, u.release);
  return h;
}

Stats summarise(std::vector<double> samples) {
  Stats s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.count = static_cast<int>(samples.size());
  s.min = samples.front();
  s.max = samples.back();
  s.median = quantile(samples, 0.5);
  s.p25 = quantile(samples, 0.25);
  s.p75 = quantile(samples, 0.75);
  double sum = 0;
  for (double v : samples) sum += v;
  s.mean = sum / static_cast<double>(samples.size());
  return s;
}

double normalised_error(const Tensor& got, const Tensor& want) {
  if (got.shape() != want.shape()) return INFINITY;
  const auto a = got.to_f32();
  const auto b = want.to_f32();
  double scale = 0, worst = 0;
  for (float v : b) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  if (scale == 0 || !std::isfinite(scale)) scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (std::isnan(d)) return INFINITY;
    worst = std::max(worst, d / scale);
  }
  return worst;
}

const char* status_name(Status status) {
  switch (status) {
    case Status::Ok: return "ok";
    case Status::Skipped: return "skipped";
    case Status::Failed: return "failed";
  }
  return "?";
}

std::string Record::key() const { return fmt::format("{}/{}/T={}", case_id, dtype, tokens); }

nlohmann::json to_json(const Record& r) {
  using nlohmann::json;
  return json{
      {"key", r.key()},
      {"case", r.case_id},
      {"case_kind", r.case_kind},
      {"description", r.description},
      {"dtype", r.dtype},
      {"tokens", r.tokens},
      {"backend", r.backend},
      {"device", r.device},
      {"device_kind", r.device_kind},
      {"status", status_name(r.status)},
      {"message", r.message},
      {"warmup", r.warmup},
      {"repetitions", r.wall.count},
      {"compile_ms", r.compile_ms},
      {"first_run_ms", r.first_run_ms},
      {"wall_ms",
       {{"median", r.wall.median},
        {"min", r.wall.min},
        {"max", r.wall.max},
        {"p25", r.wall.p25},
        {"p75", r.wall.p75},
        {"mean", r.wall.mean}}},
      {"flops", r.flops},
      {"bytes", r.bytes},
      {"gflops", r.gflops},
      {"gbps", r.gbps},
      {"tokens_per_s", r.tokens_per_s},
      {"device_ms", optional_json(r.device_ms)},
      {"device_gflops", optional_json(r.device_gflops)},
      {"modelled_ops", r.modelled_ops},
      {"total_ops", r.total_ops},
      {"metrics", r.metrics},
      {"max_error", error_json(r.max_error)},
      {"checked_tokens", r.checked_tokens},
      {"build",
       {{"porta_version", r.build.porta_version},
        {"git_commit", r.build.git_commit},
        {"compiler", r.build.compiler},
        {"flags", r.build.flags},
        {"build_type", r.build.build_type}}},
      {"host", {{"cpu", r.host.cpu}, {"logical_cores", r.host.logical_cores}, {"os", r.host.os}}},
  };
}

Record record_from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object())
    throw Error(ErrorCode::CorruptFile, fmt::format("{}: a bench record is not an object", origin));
  Record r;
  r.case_id = field<std::string>(j, "case", origin);
  r.dtype = field<std::string>(j, "dtype", origin);
  r.tokens = field<std::int64_t>(j, "tokens", origin);
  r.backend = field<std::string>(j, "backend", origin);
  const auto status = field<std::string>(j, "status", origin);
  r.status = status == "ok" ? Status::Ok : status == "skipped" ? Status::Skipped : Status::Failed;
  r.case_kind = j.value("case_kind", "");
  r.description = j.value("description", "");
  r.device = j.value("device", "");
  r.device_kind = j.value("device_kind", "");
  r.message = j.value("message", "");
  if (r.status == Status::Ok) {
    const auto wall = field<nlohmann::json>(j, "wall_ms", origin);
    r.wall.median = field<double>(wall, "median", origin);
    r.wall.min = wall.value("min", r.wall.median);
    r.wall.max = wall.value("max", r.wall.median);
    r.wall.count = j.value("repetitions", 1);
    r.compile_ms = j.value("compile_ms", 0.0);
    r.first_run_ms = j.value("first_run_ms", 0.0);
    r.gflops = j.value("gflops", 0.0);
    r.gbps = j.value("gbps", 0.0);
    r.tokens_per_s = j.value("tokens_per_s", 0.0);
    r.flops = j.value("flops", 0.0);
    r.device_ms = optional_number(j, "device_ms");
    r.device_gflops = optional_number(j, "device_gflops");
    if (j.contains("max_error") && j.at("max_error").is_string())
      r.max_error = INFINITY;
    else
      r.max_error = optional_number(j, "max_error");
    r.checked_tokens = j.value("checked_tokens", std::int64_t{0});
  }
  if (j.contains("build") && j.at("build").is_object()) {
    const auto& b = j.at("build");
    r.build = {b.value("porta_version", ""), b.value("git_commit", ""), b.value("compiler", ""),
               b.value("flags", ""), b.value("build_type", "")};
  }
  if (j.contains("host") && j.at("host").is_object())
    r.host = {j.at("host").value("cpu", ""), j.at("host").value("logical_cores", 0),
              j.at("host").value("os", "")};
  return r;
}

}  // namespace porta::cli::bench

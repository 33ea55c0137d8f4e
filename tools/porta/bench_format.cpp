// The output formats of `porta bench`: markdown (for people), CSV, JSON and JSON lines (for
// tools and for --compare).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <porta/error.hpp>

#include "bench_output.hpp"

namespace porta::cli::bench {

namespace {

// Three significant figures in fixed notation (exponents only below 1e-4).
std::string sig3(double v) {
  if (!std::isfinite(v)) return v > 0 ? "inf" : "nan";
  const double a = std::fabs(v);
  if (a == 0) return "0";
  if (a < 1e-4) return fmt::format("{:.2e}", v);
  const int decimals = std::clamp(2 - static_cast<int>(std::floor(std::log10(a))), 0, 6);
  return fmt::format("{:.{}f}", v, decimals);
}

std::string error_text(const std::optional<double>& e) {
  if (!e) return "-";
  if (!std::isfinite(*e)) return "inf";
  return fmt::format("{:.1e}", *e);
}

std::string utilisation_text(const Record& r) {
  std::vector<std::string> parts;
  for (const auto& [key, value] : r.metrics) {
    if (key.find("utiliz") == std::string::npos && key.find("utilis") == std::string::npos)
      continue;
    std::string name = key.substr(0, key.find("_utili"));
    // Utilisations are fractions; a backend reporting percentages is shown as it reports them.
    const double percent = value <= 1.0 ? value * 100 : value;
    parts.push_back(percent < 10 ? fmt::format("{} {:.1f}%", name, percent)
                                 : fmt::format("{} {:.0f}%", name, percent));
  }
  return parts.empty() ? "-" : fmt::format("{}", fmt::join(parts, ", "));
}

std::string escape_cell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += ' ';
    else
      out += c;
  }
  return out;
}

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_number(double v) {
  if (!std::isfinite(v)) return v > 0 ? "inf" : "nan";
  return fmt::format("{}", v);
}

std::string csv_optional(const std::optional<double>& v) { return v ? csv_number(*v) : ""; }

std::string header_text(const std::vector<Record>& records) {
  if (records.empty()) return "No cases ran.\n";
  const Record& f = records.front();
  std::string out = "## porta bench\n\n";
  out += fmt::format("- build: porta {} ({}), {} {}, {}\n", f.build.porta_version,
                     f.build.git_commit, f.build.compiler, f.build.flags, f.build.build_type);
  out += fmt::format("- host: {}, {} logical cores, {}\n", f.host.cpu, f.host.logical_cores,
                     f.host.os);
  std::map<std::string, std::string> devices;
  for (const auto& r : records)
    if (r.status != Status::Skipped) devices.emplace(r.backend, r.device);
  for (const auto& [name, description] : devices)
    out += fmt::format("- {}: {}\n", name, description.empty() ? "-" : description);
  int warmup = 0, max_reps = 0;
  for (const auto& r : records) {
    warmup = std::max(warmup, r.warmup);
    max_reps = std::max(max_reps, r.wall.count);
  }
  out += fmt::format(
      "- wall time of run() on the host: median of up to {} runs after {} warm-up (spread: "
      "min-max); speed-up against the first backend of each case; error: max|test - ref| / "
      "max|ref| against the reference backend; device time: modelled by simulators, measured by "
      "the device's own timers elsewhere (OpenCL events)\n\n",
      max_reps, warmup);
  return out;
}

}  // namespace

Format parse_format(const std::string& name) {
  if (name == "md" || name == "markdown") return Format::Markdown;
  if (name == "csv") return Format::Csv;
  if (name == "json") return Format::Json;
  if (name == "jsonl") return Format::JsonLines;
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown bench format '{}' (formats: md, csv, json, jsonl)", name));
}

std::string to_markdown(const std::vector<Record>& records) {
  std::string out = header_text(records);
  out +=
      "| case | dtype | T | backend | runs | median ms | spread ms | compile ms | first run ms | "
      "speed-up | tokens/s | GFLOP/s | GB/s | device ms | device GFLOP/s | device util | max err | "
      "notes |\n"
      "|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|\n";
  std::map<std::string, double> baseline;  // key -> the first measured backend's median
  std::map<std::string, std::string> skipped;
  for (const auto& r : records) {
    if (r.status == Status::Skipped) {
      skipped.emplace(r.backend, r.message);
      continue;
    }
    if (r.status == Status::Failed) {
      out += fmt::format(
          "| {} | {} | {} | {} | - | - | - | - | - | - | - | - | - | - | - | - | - | failed: "
          "{} |\n",
          r.case_id, r.dtype, r.tokens, r.backend, escape_cell(r.message));
      continue;
    }
    const double base = baseline.emplace(r.key(), r.wall.median).first->second;
    out += fmt::format(
        "| {} | {} | {} | {} | {} | {} | {}-{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} "
        "|\n",
        r.case_id, r.dtype, r.tokens, r.backend, r.wall.count, sig3(r.wall.median),
        sig3(r.wall.min), sig3(r.wall.max), sig3(r.compile_ms), sig3(r.first_run_ms),
        r.wall.median > 0 ? sig3(base / r.wall.median) + "x" : "-", sig3(r.tokens_per_s),
        sig3(r.gflops), sig3(r.gbps), r.device_ms ? sig3(*r.device_ms) : "-",
        r.device_gflops ? sig3(*r.device_gflops) : "-", utilisation_text(r),
        error_text(r.max_error), escape_cell(r.message));
  }

  // Simulated devices side by side on their modelled time, each against the first one.
  std::vector<std::string> simulated;
  std::map<std::string, std::map<std::string, const Record*>> by_key;
  std::vector<std::string> keys;
  for (const auto& r : records) {
    if (r.status != Status::Ok || !r.device_ms || r.device_kind != "simulator") continue;
    if (std::find(simulated.begin(), simulated.end(), r.backend) == simulated.end())
      simulated.push_back(r.backend);
    if (!by_key.count(r.key())) keys.push_back(r.key());
    by_key[r.key()][r.backend] = &r;
  }
  if (!simulated.empty()) {
    out += "\nSimulated devices, modelled device time (not the simulator's wall time):\n\n| case |";
    for (const auto& s : simulated) out += fmt::format(" {} ms | {} TFLOP/s |", s, s);
    for (std::size_t i = 1; i < simulated.size(); ++i)
      out += fmt::format(" {} / {} |", simulated[i], simulated[0]);
    out += "\n|---|";
    for (std::size_t i = 0; i < simulated.size() * 2 + simulated.size() - 1; ++i) out += "--:|";
    out += "\n";
    for (const auto& key : keys) {
      const auto& row = by_key[key];
      out += fmt::format("| {} |", key);
      for (const auto& s : simulated) {
        auto it = row.find(s);
        if (it == row.end())
          out += " - | - |";
        else
          out += fmt::format(
              " {} | {} |", sig3(*it->second->device_ms),
              it->second->device_gflops ? sig3(*it->second->device_gflops * 1e-3) : "-");
      }
      auto first = row.find(simulated[0]);
      for (std::size_t i = 1; i < simulated.size(); ++i) {
        auto it = row.find(simulated[i]);
        if (first == row.end() || it == row.end() || *first->second->device_ms <= 0)
          out += " - |";
        else
          out += fmt::format(" {:.2f} |", *it->second->device_ms / *first->second->device_ms);
      }
      out += "\n";
    }
  }
  if (!skipped.empty()) {
    out += "\nSkipped backends:\n";
    for (const auto& [backend, reason] : skipped) out += fmt::format("- {}: {}\n", backend, reason);
  }
  return out;
}

const std::vector<std::string>& csv_columns() {
  static const std::vector<std::string> columns{
      "key",           "case",          "case_kind",  "dtype",         "tokens",       "backend",
      "device",        "device_kind",   "status",     "repetitions",   "warmup",       "compile_ms",
      "median_ms",     "min_ms",        "max_ms",     "p25_ms",        "p75_ms",       "mean_ms",
      "flops",         "bytes",         "gflops",     "gbps",          "tokens_per_s", "device_ms",
      "device_gflops", "modelled_ops",  "total_ops",  "metrics",       "max_error",    "message",
      "description",   "porta_version", "git_commit", "compiler",      "flags",        "build_type",
      "host_cpu",      "host_cores",    "host_os",    "checked_tokens", "first_run_ms"};
  return columns;
}

std::string to_csv(const std::vector<Record>& records) {
  std::string out = fmt::format("{}\n", fmt::join(csv_columns(), ","));
  for (const auto& r : records) {
    std::vector<std::string> metrics;
    for (const auto& [k, v] : r.metrics) metrics.push_back(fmt::format("{}={}", k, v));
    const bool ok = r.status == Status::Ok;
    const std::vector<std::string> cells{r.key(),
                                         r.case_id,
                                         r.case_kind,
                                         r.dtype,
                                         std::to_string(r.tokens),
                                         r.backend,
                                         r.device,
                                         r.device_kind,
                                         status_name(r.status),
                                         std::to_string(r.wall.count),
                                         std::to_string(r.warmup),
                                         ok ? csv_number(r.compile_ms) : "",
                                         ok ? csv_number(r.wall.median) : "",
                                         ok ? csv_number(r.wall.min) : "",
                                         ok ? csv_number(r.wall.max) : "",
                                         ok ? csv_number(r.wall.p25) : "",
                                         ok ? csv_number(r.wall.p75) : "",
                                         ok ? csv_number(r.wall.mean) : "",
                                         ok ? csv_number(r.flops) : "",
                                         ok ? csv_number(r.bytes) : "",
                                         ok ? csv_number(r.gflops) : "",
                                         ok ? csv_number(r.gbps) : "",
                                         ok ? csv_number(r.tokens_per_s) : "",
                                         csv_optional(r.device_ms),
                                         csv_optional(r.device_gflops),
                                         std::to_string(r.modelled_ops),
                                         std::to_string(r.total_ops),
                                         fmt::format("{}", fmt::join(metrics, ";")),
                                         csv_optional(r.max_error),
                                         r.message,
                                         r.description,
                                         r.build.porta_version,
                                         r.build.git_commit,
                                         r.build.compiler,
                                         r.build.flags,
                                         r.build.build_type,
                                         r.host.cpu,
                                         std::to_string(r.host.logical_cores),
                                         r.host.os,
                                         std::to_string(r.checked_tokens),
                                         ok ? csv_number(r.first_run_ms) : ""};
    std::vector<std::string> quoted;
    for (const auto& c : cells) quoted.push_back(csv_quote(c));
    out += fmt::format("{}\n", fmt::join(quoted, ","));
  }
  return out;
}

std::string to_json_document(const std::vector<Record>& records) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& r : records) list.push_back(to_json(r));
  return nlohmann::json{{"format", "porta-bench"}, {"version", 1}, {"records", list}}.dump(2) +
         "\n";
}

std::string to_json_lines(const std::vector<Record>& records) {
  std::string out;
  for (const auto& r : records) out += to_json(r).dump() + "\n";
  return out;
}

std::string format_records(const std::vector<Record>& records, Format format) {
  switch (format) {
    case Format::Markdown: return to_markdown(records);
    case Format::Csv: return to_csv(records);
    case Format::Json: return to_json_document(records);
    case Format::JsonLines: return to_json_lines(records);
  }
  return {};
}

std::vector<Record> read_records(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error(ErrorCode::NotFound, fmt::format("{}: the file does not exist", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::Io, fmt::format("{}: cannot open the file", path));
  std::stringstream text;
  text << in.rdbuf();
  const std::string content = text.str();
  std::vector<Record> records;
  try {
    // A JSON document, or else JSON lines.
    auto doc = nlohmann::json::parse(content, nullptr, false);
    // A one-line JSONL file is a JSON document too: a record, not a run.
    const bool one_record = !doc.is_discarded() && doc.is_object() && doc.contains("case");
    if (!doc.is_discarded() && !one_record) {
      if (!doc.is_object() || doc.value("format", "") != "porta-bench" ||
          !doc.contains("records") || !doc.at("records").is_array())
        throw Error(ErrorCode::CorruptFile,
                    fmt::format("{}: not a porta bench run (write one with porta bench --format "
                                "json -o FILE)",
                                path));
      for (const auto& j : doc.at("records")) records.push_back(record_from_json(j, path));
      return records;
    }
    std::istringstream lines(content);
    int number = 0;
    for (std::string line; std::getline(lines, line);) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded())
        throw Error(ErrorCode::CorruptFile,
                    fmt::format("{}: line {} is not JSON (expected a porta bench run written with "
                                "--format json or jsonl)",
                                path, number));
      records.push_back(record_from_json(j, fmt::format("{} line {}", path, number)));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::CorruptFile,
                fmt::format("{}: malformed bench record: {}", path, e.what()));
  }
  if (records.empty())
    throw Error(ErrorCode::CorruptFile, fmt::format("{}: holds no bench records", path));
  return records;
}

}  // namespace porta::cli::bench

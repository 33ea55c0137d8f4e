// Device profiles: parsing the JSON files (the embedded ones and users' own), with an error that
// names the file and the field for anything missing, mistyped or out of range.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/error.hpp>
#include <porta/npu_sim.hpp>

#include "embedded_profiles.hpp"

namespace porta::npu_sim {

namespace {

using nlohmann::json;

class FieldReader {
 public:
  FieldReader(const json& root, std::string_view source) : root_(root), source_(source) {}

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw Error(ErrorCode::CorruptFile,
                fmt::format("npu-sim profile {}: field '{}' {}", source_, field, why));
  }

  const json* find(const std::string& path) const {
    const json* node = &root_;
    std::size_t begin = 0;
    while (begin <= path.size()) {
      const auto dot = path.find('.', begin);
      const std::string key =
          path.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
      if (!node->is_object()) fail(path, "is inside something that is not an object");
      auto it = node->find(key);
      if (it == node->end()) return nullptr;
      node = &*it;
      if (dot == std::string::npos) break;
      begin = dot + 1;
    }
    return node;
  }

  // A number > 0 (or >= 0 when `zero_ok`), required unless a default is given.
  double number(const std::string& path, bool zero_ok = false,
                std::optional<double> fallback = std::nullopt) const {
    const json* v = find(path);
    if (v == nullptr) {
      if (fallback) return *fallback;
      fail(path, "is missing");
    }
    if (!v->is_number()) fail(path, fmt::format("must be a number, not {}", v->dump()));
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < 0 || (!zero_ok && x == 0) || x > 1e12)
      fail(path, fmt::format("must be a {} number of at most 1e12, not {}",
                             zero_ok ? "non-negative" : "positive", v->dump()));
    return x;
  }

  int integer(const std::string& path) const {
    const double x = number(path);
    if (x != std::floor(x) || x > 4096)
      fail(path, fmt::format("must be a whole number of at most 4096, not {}", x));
    return static_cast<int>(x);
  }

  std::uint64_t kilobytes(const std::string& path) const {
    const double x = number(path);
    if (x > 1 << 20) fail(path, fmt::format("is {} KB, more than 1 GB of buffer", x));
    return static_cast<std::uint64_t>(x * 1024);
  }

  std::string text(const std::string& path, std::optional<std::string> fallback = {}) const {
    const json* v = find(path);
    if (v == nullptr) {
      if (fallback) return *fallback;
      fail(path, "is missing");
    }
    if (!v->is_string()) fail(path, fmt::format("must be a string, not {}", v->dump()));
    return v->get<std::string>();
  }

 private:
  const json& root_;
  std::string_view source_;
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(ErrorCode::NotFound,
                fmt::format("npu-sim profile file '{}' cannot be opened", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

double DeviceProfile::peak_flops(DType dtype) const {
  const double base = model == ModelKind::Roofline
                          ? roofline_tflops * 1e12
                          : static_cast<double>(cube_cores) * cube_flops_per_cycle * clock_hz();
  switch (dtype) {
    case DType::I8: return base * int8_rate;
    case DType::F32: return base * fp32_rate;
    case DType::F16:
    case DType::BF16:
    case DType::F8E4M3:  // computed at the fp16 rate after dequantisation
    case DType::I32:
    case DType::I64: return base;
  }
  return base;
}

double DeviceProfile::peak_vector_flops(DType dtype) const {
  if (model == ModelKind::Roofline) return peak_flops(dtype);
  const double lanes =
      vector_repeat_bytes / static_cast<double>(std::max<std::size_t>(2, dtype_size(dtype)));
  return static_cast<double>(vector_cores) * lanes / vector_cycles_simple * clock_hz();
}

std::vector<std::string> builtin_profiles() {
  std::vector<std::string> names;
  for (const auto& p : detail::npu_sim::embedded_profiles()) names.emplace_back(p.name);
  return names;
}

DeviceProfile parse_profile(std::string_view json_text, std::string_view source) {
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::parse_error& e) {
    throw Error(ErrorCode::CorruptFile,
                fmt::format("npu-sim profile {} is not valid JSON: {}", source, e.what()));
  }
  if (!root.is_object())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("npu-sim profile {} must be a JSON object", source));
  const FieldReader f(root, source);
  DeviceProfile p;
  p.name = f.text("name");
  if (p.name.empty()) f.fail("name", "is empty");
  p.description = f.text("description", p.name);
  p.source = f.text("source", "user profile");
  const std::string model = f.text("model", "ascend");
  if (model == "ascend")
    p.model = ModelKind::Ascend;
  else if (model == "roofline")
    p.model = ModelKind::Roofline;
  else
    f.fail("model", fmt::format("is '{}'; it must be \"ascend\" or \"roofline\"", model));

  p.hbm_bytes = static_cast<std::uint64_t>(f.number("hbm.gb") * 1e9);
  p.hbm_gbps = f.number("hbm.tbps") * 1000;
  p.launch_overhead_us = f.number("launch_overhead_us", true);
  p.int8_rate = f.number("cube.int8_rate", false, 2.0);
  p.fp32_rate = f.number("cube.fp32_rate", false, 0.25);
  p.l2_bytes = static_cast<std::uint64_t>(f.number("l2_mb", true, 0.0) * 1024 * 1024);
  if (p.model == ModelKind::Roofline) {
    p.roofline_tflops = f.number("roofline_tflops");
    return p;
  }

  p.cube_cores = f.integer("cores.cube");
  p.vector_cores = f.integer("cores.vector");
  p.clock_mhz = f.number("clock_mhz");
  p.l0a_bytes = f.kilobytes("buffers_kb.l0a");
  p.l0b_bytes = f.kilobytes("buffers_kb.l0b");
  p.l0c_bytes = f.kilobytes("buffers_kb.l0c");
  p.l1_bytes = f.kilobytes("buffers_kb.l1");
  p.ub_bytes = f.kilobytes("buffers_kb.ub");
  p.l2_bytes = static_cast<std::uint64_t>(f.number("l2_mb") * 1024 * 1024);
  p.gm_bytes_per_cycle = f.number("bytes_per_cycle.gm");
  p.l2_read_bytes_per_cycle = f.number("bytes_per_cycle.l2_read");
  p.l2_write_bytes_per_cycle = f.number("bytes_per_cycle.l2_write");
  p.mte2_peak_gbps = f.number("measured_gbps.mte2_peak");
  p.mte2_one_burst_gbps = f.number("measured_gbps.mte2_one_burst");
  p.l1_to_l0a_gbps = f.number("measured_gbps.l1_to_l0a");
  p.l1_to_l0b_gbps = f.number("measured_gbps.l1_to_l0b");
  p.l0c_to_gm_gbps = f.number("measured_gbps.l0c_to_gm");
  p.ub_to_gm_gbps = f.number("measured_gbps.ub_to_gm");
  p.burst_bytes = static_cast<std::uint64_t>(f.number("burst_bytes"));
  if (p.mte2_one_burst_gbps >= p.mte2_peak_gbps)
    f.fail("measured_gbps.mte2_one_burst",
           fmt::format("({} GB/s) must be below measured_gbps.mte2_peak ({} GB/s): a single "
                       "burst pays the DMA start latency",
                       p.mte2_one_burst_gbps, p.mte2_peak_gbps));
  p.cube_flops_per_cycle = f.number("cube.flops_per_cycle");
  p.mmad_startup_cycles = f.number("cube.mmad_startup_cycles", true);
  p.vector_repeat_bytes = f.number("vector.repeat_bytes");
  p.vector_cycles_simple = f.number("vector.cycles_simple");
  p.vector_cycles_exp = f.number("vector.cycles_exp");
  p.vector_cycles_div = f.number("vector.cycles_div");
  p.ub_alignment = static_cast<std::uint64_t>(f.number("vector.ub_alignment"));
  // The smallest base tile (16x16 fp16 fractals, double-buffered) must fit, or no GEMM can run.
  if (p.l0a_bytes < 2 * 16 * 16 * 2) f.fail("buffers_kb.l0a", "is too small for one fractal");
  if (p.l0b_bytes < 2 * 16 * 16 * 2) f.fail("buffers_kb.l0b", "is too small for one fractal");
  if (p.l0c_bytes < 16 * 16 * 4) f.fail("buffers_kb.l0c", "is too small for one fractal");
  if (p.l1_bytes < p.l0a_bytes) f.fail("buffers_kb.l1", "must hold at least what L0A holds");
  if (p.ub_bytes < 8 * static_cast<std::uint64_t>(p.vector_repeat_bytes))
    f.fail("buffers_kb.ub", "must hold at least eight vector repeats");
  return p;
}

DeviceProfile load_profile(std::string_view spec) {
  std::string text(spec);
  if (text.empty()) text = "910b2";
  std::string path;
  if (text.rfind("file=", 0) == 0)
    path = text.substr(5);
  else if (text.find('/') != std::string::npos || text.ends_with(".json"))
    path = text;
  if (!path.empty()) return parse_profile(read_file(path), fmt::format("'{}'", path));
  const std::string key = lower(text);
  for (const auto& p : detail::npu_sim::embedded_profiles())
    if (p.name == key) return parse_profile(p.json, fmt::format("'{}' (built in)", p.name));
  throw Error(ErrorCode::NotFound,
              fmt::format("npu-sim has no profile '{}'; the built-in ones are {}, or give a "
                          "profile file as npu-sim:file=PATH (or any path ending in .json)",
                          text, fmt::join(builtin_profiles(), ", ")));
}

std::string profile_to_json(const DeviceProfile& p) {
  json j;
  j["name"] = p.name;
  j["description"] = p.description;
  j["source"] = p.source;
  j["model"] = p.model == ModelKind::Ascend ? "ascend" : "roofline";
  j["hbm"] = {{"gb", static_cast<double>(p.hbm_bytes) / 1e9}, {"tbps", p.hbm_gbps / 1000}};
  j["launch_overhead_us"] = p.launch_overhead_us;
  j["l2_mb"] = static_cast<double>(p.l2_bytes) / (1024.0 * 1024.0);
  j["cube"] = {{"int8_rate", p.int8_rate}, {"fp32_rate", p.fp32_rate}};
  if (p.model == ModelKind::Roofline) {
    j["roofline_tflops"] = p.roofline_tflops;
    return j.dump(2);
  }
  const auto kb = [](std::uint64_t b) { return static_cast<double>(b) / 1024.0; };
  j["cores"] = {{"cube", p.cube_cores}, {"vector", p.vector_cores}};
  j["clock_mhz"] = p.clock_mhz;
  j["buffers_kb"] = {{"l0a", kb(p.l0a_bytes)},
                     {"l0b", kb(p.l0b_bytes)},
                     {"l0c", kb(p.l0c_bytes)},
                     {"l1", kb(p.l1_bytes)},
                     {"ub", kb(p.ub_bytes)}};
  j["bytes_per_cycle"] = {{"gm", p.gm_bytes_per_cycle},
                          {"l2_read", p.l2_read_bytes_per_cycle},
                          {"l2_write", p.l2_write_bytes_per_cycle}};
  j["measured_gbps"] = {{"mte2_peak", p.mte2_peak_gbps}, {"mte2_one_burst", p.mte2_one_burst_gbps},
                        {"l1_to_l0a", p.l1_to_l0a_gbps}, {"l1_to_l0b", p.l1_to_l0b_gbps},
                        {"l0c_to_gm", p.l0c_to_gm_gbps}, {"ub_to_gm", p.ub_to_gm_gbps}};
  j["burst_bytes"] = p.burst_bytes;
  j["cube"]["flops_per_cycle"] = p.cube_flops_per_cycle;
  j["cube"]["mmad_startup_cycles"] = p.mmad_startup_cycles;
  j["vector"] = {{"repeat_bytes", p.vector_repeat_bytes},
                 {"cycles_simple", p.vector_cycles_simple},
                 {"cycles_exp", p.vector_cycles_exp},
                 {"cycles_div", p.vector_cycles_div},
                 {"ub_alignment", p.ub_alignment}};
  return j.dump(2);
}

std::string_view pipe_name(Pipe pipe) noexcept {
  switch (pipe) {
    case Pipe::Mte2: return "MTE2";
    case Pipe::Mte1: return "MTE1";
    case Pipe::Cube: return "Cube";
    case Pipe::FixPipe: return "FixPipe";
    case Pipe::Vector: return "Vector";
    case Pipe::Mte3: return "MTE3";
  }
  return "?";
}

}  // namespace porta::npu_sim

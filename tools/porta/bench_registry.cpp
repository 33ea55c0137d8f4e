// The case registry and the named suites of `porta bench`.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "bench_case.hpp"

namespace porta::cli::bench {

namespace {

// A function-local static, so that registrars in other files may run before this file's statics.
std::vector<CaseFamily>& registry() {
  static std::vector<CaseFamily> families;
  return families;
}

int kind_rank(const std::string& kind) {
  if (kind == "op") return 0;
  if (kind == "layer") return 1;
  return 2;
}

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Fills `count` elements of `out` (in `dtype`) with uniform values in [-scale, scale). Weights of
// billions of elements are made here, so this is a plain loop over a counter-based generator.
template <class Store>
void fill_uniform(std::uint64_t state, std::int64_t count, float scale, Store store) {
  constexpr float kUnit = 1.0f / 8388608.0f;  // 2^-23: 24-bit mantissa -> [0, 2)
  for (std::int64_t i = 0; i < count; ++i) {
    const std::uint64_t bits = splitmix64(state);
    const float hi = static_cast<float>(bits >> 40) * kUnit - 1.0f;
    store(i, hi * scale);
  }
}

}  // namespace

Tensor TensorCache::random(const std::string& name, const Shape& shape, DType dtype, float scale) {
  const std::string key =
      fmt::format("{}|{}|{}|{}", name, shape.to_string(), dtype_name(dtype), scale);
  if (auto it = tensors_.find(key); it != tensors_.end()) return it->second;
  Tensor t = Tensor::zeros(shape, dtype);
  const std::uint64_t state = fnv1a(name) ^ (seed_ * 0x9e3779b97f4a7c15ull);
  const std::int64_t n = t.numel();
  switch (dtype) {
    case DType::F32: {
      float* p = t.data_as<float>();
      fill_uniform(state, n, scale, [p](std::int64_t i, float v) { p[i] = v; });
      break;
    }
    case DType::BF16: {
      auto* p = t.data_as<BFloat16>();
      fill_uniform(state, n, scale,
                   [p](std::int64_t i, float v) { p[i] = BFloat16::from_float(v); });
      break;
    }
    case DType::F16: {
      auto* p = t.data_as<Half>();
      fill_uniform(state, n, scale, [p](std::int64_t i, float v) { p[i] = Half::from_float(v); });
      break;
    }
    case DType::I8:
    case DType::I32:
    case DType::I64:
    case DType::F8E4M3: {
      std::vector<float> values(static_cast<std::size_t>(n));
      fill_uniform(state, n, scale,
                   [&](std::int64_t i, float v) { values[static_cast<std::size_t>(i)] = v; });
      t = Tensor::from_f32(shape, dtype, values);
    }
  }
  tensors_.emplace(key, t);
  return t;
}

Tensor random_input(TensorCache& cache, const std::string& name, const Shape& shape, DType dtype) {
  return cache.random("input." + name, shape, dtype, 1.0f);
}

std::int64_t dim(const CaseConfig& config, const std::string& key) {
  auto it = config.dims.find(key);
  if (it == config.dims.end())
    throw Error(ErrorCode::Internal,
                fmt::format("bench case config '{}' has no dim '{}'", config.name, key));
  return it->second;
}

CaseRegistrar::CaseRegistrar(CaseFamily family) { registry().push_back(std::move(family)); }

std::vector<const CaseFamily*> case_families() {
  std::vector<const CaseFamily*> out;
  for (const auto& f : registry()) out.push_back(&f);
  std::sort(out.begin(), out.end(), [](const CaseFamily* a, const CaseFamily* b) {
    return std::pair(kind_rank(a->kind), a->name) < std::pair(kind_rank(b->kind), b->name);
  });
  return out;
}

const CaseFamily& case_family(std::string_view name) {
  std::vector<std::string> names;
  for (const auto* f : case_families()) {
    if (f->name == name) return *f;
    names.push_back(f->name);
  }
  throw Error(ErrorCode::NotFound, fmt::format("unknown bench case '{}'; the cases are: {}", name,
                                               fmt::join(names, ", ")));
}

std::string CaseSpec::id() const { return fmt::format("{}:{}", family->name, config.name); }

CaseSpec parse_case(std::string_view text) {
  const auto colon = text.find(':');
  const CaseFamily& family = case_family(text.substr(0, colon));
  if (colon == std::string_view::npos) return {&family, family.configs.front()};
  const auto config_name = text.substr(colon + 1);
  std::vector<std::string> names;
  for (const auto& c : family.configs) {
    if (c.name == config_name) return {&family, c};
    names.push_back(c.name);
  }
  if (family.resolve_config)
    if (auto config = family.resolve_config(config_name)) return {&family, *std::move(config)};
  throw Error(ErrorCode::NotFound,
              fmt::format("bench case '{}' has no configuration '{}'; its configurations are: {}",
                          family.name, config_name, fmt::join(names, ", ")));
}

void override_dims(CaseSpec& spec, const Dims& dims) {
  for (const auto& [key, value] : dims) {
    auto it = spec.config.dims.find(key);
    if (it == spec.config.dims.end()) {
      std::vector<std::string> keys;
      for (const auto& [k, v] : spec.config.dims) keys.push_back(k);
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("bench case '{}' has no size '{}'; its sizes are: {}",
                              spec.family->name, key, fmt::join(keys, ", ")));
    }
    if (value <= 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("bench size {}={} must be positive", key, value));
    it->second = value;
  }
}

std::vector<Suite> suites() {
  std::vector<Suite> out;
  // The side-by-side comparison `make demo` prints: a DeepSeek-V2-Lite MoE layer for one decode
  // token and a 512-token prefill chunk, on the host's backends and two simulated chips. Weights
  // are f32: the reference backend (the check) is many times slower with bf16 weights. At T=512
  // the layer is ~70 GFLOP: the reference checks the first 64 tokens (exact, the layer is
  // row-wise), a backend's repetitions stop once 3 s are spent, so a run longer than that is timed
  // once after the first (untimed-in-the-median) run. The reference is not a row: at T=512 it
  // alone would take minutes.
  out.push_back({.name = "demo",
                 .summary = "DeepSeek-V2-Lite MoE layer at T=1 and T=512, host backends and the "
                            "simulated 910B2 and H20",
                 .cases = {"moe_layer:v2-lite"},
                 .backends = {"cpu", "opencl", "npu-sim:910b2", "npu-sim:h20"},
                 .tokens = {1, 512},
                 .dtypes = {"f32"},
                 .repetitions = 5,
                 .max_seconds = 3});
  out.push_back(
      {.name = "ops",
       .summary = "every op case at its default size, decode and prefill token counts",
       .cases = {"matmul", "grouped_matmul", "moe_router", "rms_norm", "softmax", "attention"},
       .backends = {},
       .tokens = {1, 128},
       .dtypes = {"f32"},
       .repetitions = 7,
       .max_seconds = 2});
  out.push_back({.name = "layers",
                 .summary = "MoE layers of several model families",
                 .cases = {"moe_layer:v2-lite", "moe_layer:mixtral-small", "moe_layer:qwen-small"},
                 .backends = {},
                 .tokens = {1, 64},
                 .dtypes = {"bf16"},
                 .repetitions = 5,
                 .max_seconds = 3});
  out.push_back({.name = "models",
                 .summary = "whole models: a random transformer stack of attention and MoE "
                            "blocks, and tiny DeepSeek-V3/V2 checkpoints",
                 .cases = {"model:moe-stack", "checkpoint:deepseek_v3", "checkpoint:deepseek_v2"},
                 .backends = {},
                 .tokens = {1, 64},
                 .dtypes = {"f32"},
                 .repetitions = 5,
                 .max_seconds = 3});
  // Every case at a toy size: a quick smoke run of every family on every backend (seconds).
  out.push_back({.name = "tiny",
                 .summary = "every case family at a toy size, for a smoke run",
                 .cases = {"matmul:tiny", "grouped_matmul:tiny", "moe_router:tiny", "rms_norm:tiny",
                           "softmax:tiny", "attention:tiny", "moe_layer:tiny", "model:tiny"},
                 .backends = {},
                 .tokens = {4},
                 .dtypes = {"f32"},
                 .repetitions = 3,
                 .max_seconds = 1});
  return out;
}

const Suite& suite(std::string_view name) {
  static const std::vector<Suite> all = suites();
  std::vector<std::string> names;
  for (const auto& s : all) {
    if (s.name == name) return s;
    names.push_back(s.name);
  }
  throw Error(ErrorCode::NotFound, fmt::format("unknown bench suite '{}'; the suites are: {}", name,
                                               fmt::join(names, ", ")));
}

}  // namespace porta::cli::bench

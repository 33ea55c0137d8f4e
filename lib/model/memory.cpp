// The memory a run needs, before loading (memory.hpp), and the checks `porta run` makes with it.
#include <porta/model/memory.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include <porta/io.hpp>
#include <porta/model/checkpoint_gen.hpp>

namespace porta::model {

namespace {

std::uint64_t u(std::int64_t v) { return static_cast<std::uint64_t>(std::max<std::int64_t>(v, 0)); }

// "9.22 GB", "35.1 MB", "12.0 kB", "512 B".
std::string gb(std::uint64_t bytes) {
  const auto b = static_cast<double>(bytes);
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.1f} MB", b / 1e6);
  if (b >= 1e3) return fmt::format("{:.1f} kB", b / 1e3);
  return fmt::format("{} B", bytes);
}

}  // namespace

std::string MemoryNeed::describe() const {
  return fmt::format("{} weights + {} KV cache + {} activations = {}", gb(weights), gb(kv_cache),
                     gb(activations), gb(total()));
}

std::uint64_t kv_cache_bytes(const ModelConfig& c, std::int64_t capacity) {
  const std::uint64_t per_position =
      c.mla ? u(c.kv_lora_rank + c.qk_rope_head_dim) : 2 * u(c.num_kv_heads * c.head_dim);
  return u(c.num_layers) * u(capacity) * per_position * 4;
}

std::uint64_t activation_bytes(const ModelConfig& c, std::int64_t tokens, std::int64_t capacity,
                               bool all_logits) {
  const std::uint64_t t = u(tokens), h = u(c.hidden_size), keys = u(capacity) + t;
  // Residual stream, norms, block outputs.
  const std::uint64_t base = 8 * t * h;
  // Attention: projections, the (cache + new) keys and values the op reads, its output.
  std::uint64_t attention = 0;
  if (c.mla) {
    const std::uint64_t r = u(c.kv_lora_rank), rope = u(c.qk_rope_head_dim);
    attention = t * u(c.num_heads) * (u(c.query_head_dim()) + 2 * r + rope + u(c.v_head_dim)) +
                2 * keys * (r + rope);
  } else {
    const std::uint64_t d = u(c.head_dim);
    attention = 2 * t * u(c.num_heads) * d + 4 * keys * u(c.num_kv_heads) * d;
  }
  // MLP: the dense one, or the routed experts' rows (T·top_k of them through gate, up and down)
  // plus the shared expert and the router's scores.
  const std::uint64_t dense = 3 * t * u(c.intermediate_size);
  const std::uint64_t rows = t * u(c.top_k);
  const std::uint64_t moe = c.num_experts == 0
                                ? 0
                                : rows * (2 * h + 3 * u(c.moe_intermediate_size)) +
                                      3 * t * u(c.shared_intermediate_size) + 4 * t * u(c.num_experts);
  const std::uint64_t logits = 2 * (all_logits ? t : 1) * u(c.vocab_size);
  return 4 * (base + attention + std::max(dense, moe) + logits);
}

MemoryNeed estimate_memory(const std::string& dir, const LoadOptions& options,
                           std::int64_t tokens, std::int64_t capacity, bool all_logits) {
  const ModelConfig c = load_config(dir);
  const auto checkpoint = io::Checkpoint::open(dir);
  std::map<std::string, io::TensorEntry> entries;
  for (auto& e : checkpoint.entries()) entries.emplace(e.name, std::move(e));
  MemoryNeed need;
  const auto expected = expected_tensors(c);
  std::set<std::string> expected_names, linear_modules;
  for (const auto& [name, shape] : expected) {
    expected_names.insert(name);
    if (name.ends_with(".weight")) linear_modules.insert(name.substr(0, name.size() - 7));
  }
  // A quantized checkpoint's parameters (scales, zero points, packed data) are mapped too.
  std::set<std::string> quantized_modules;
  for (const auto& [name, e] : entries) {
    const auto dot = name.rfind('.');
    if (expected_names.count(name) || dot == std::string::npos) continue;
    const std::string module = name.substr(0, dot);
    if (linear_modules.count(module) == 0) continue;
    need.weights += e.nbytes;
    quantized_modules.insert(module);
  }
  const auto dequantized_size = [&](const Shape& shape) {
    return u(shape.numel()) * dtype_size(options.weight_dtype.value_or(options.fp8_dtype));
  };
  for (const auto& [name, shape] : expected) {
    const bool quantized = name.ends_with(".weight") &&
                           quantized_modules.count(name.substr(0, name.size() - 7)) != 0;
    // MLA's kv_b_proj is split into its key and value halves (a copy; dequantised if quantized).
    if (name.ends_with("kv_b_proj.weight") && quantized) need.weights += dequantized_size(shape);
    const auto it = entries.find(name);
    if (it == entries.end()) continue;  // packed under another name, or Model::load names it
    const io::TensorEntry& e = it->second;
    need.weights += e.nbytes;  // mapped
    std::uint64_t held = e.nbytes;
    if (quantized && options.dequantize) {
      held = dequantized_size(shape);
      need.weights += held;
    } else if (!quantized && options.weight_dtype && *options.weight_dtype != e.dtype) {
      held = u(e.shape.numel()) * dtype_size(*options.weight_dtype);
      need.weights += held;
    }
    if (name.ends_with("kv_b_proj.weight") && !quantized) need.weights += held;
  }
  need.kv_cache = kv_cache_bytes(c, capacity);
  need.activations = activation_bytes(c, tokens, 0, all_logits);
  need.activations = std::max(need.activations, activation_bytes(c, 1, capacity, false));
  return need;
}

std::uint64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t value = 0;
  std::string unit;
  while (meminfo >> key >> value >> unit)
    if (key == "MemAvailable:") return value * 1024;
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? u(pages) * u(page_size) : 0;
}

void check_memory(const MemoryNeed& need, std::uint64_t limit, const std::string& limit_source) {
  if (need.total() <= limit) return;
  throw Error(ErrorCode::OutOfMemory,
              fmt::format("the model needs {} ({}), more than the {} of {}: not loading it "
                          "(a smaller --capacity or prompt shrinks the KV cache and activations; "
                          "the weights are what the checkpoint holds)",
                          gb(need.total()), need.describe(), gb(limit), limit_source));
}

std::uint64_t parse_bytes(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string suffix = text.substr(i);
  for (auto& ch : suffix) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (suffix.ends_with("IB"))
    suffix.resize(suffix.size() - 2);
  else if (suffix.size() > 1 && suffix.ends_with("B"))
    suffix.resize(suffix.size() - 1);
  else if (suffix == "B")
    suffix.clear();
  const std::string shifts = "KMGT";
  const auto unit = suffix.empty() ? std::string::npos : shifts.find(suffix);
  if (i == 0 || i > 18 || (!suffix.empty() && (suffix.size() != 1 || unit == std::string::npos)))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("'{}' is not a byte count (expected e.g. 12G, 512M or 1000000)", text));
  const std::uint64_t number = std::stoull(text.substr(0, i));
  return suffix.empty() ? number : number << (10 * (unit + 1));
}

std::uint64_t peak_rss_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return u(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace porta::model

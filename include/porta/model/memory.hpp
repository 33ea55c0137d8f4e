// Memory a model run will need, computed before anything is loaded, so that `porta run` can
// refuse a model that does not fit instead of swapping or being killed halfway: the weights as
// they will be held (mapped bytes, plus copies from dtype conversion or FP8 dequantisation), the
// KV cache, and an upper estimate of the activations (the largest layer's live tensors, the
// kernels' scratch and the logits). Also the process's peak resident set, to check the estimate.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <string>

#include <porta/model/config.hpp>
#include <porta/model/model.hpp>

PORTA_API_BEGIN
namespace porta::model {

struct MemoryNeed {
  std::uint64_t weights = 0;      // mapped from the checkpoint, plus converted/dequantised copies
  std::uint64_t kv_cache = 0;     // every layer's cache slots for `capacity` positions, f32
  std::uint64_t activations = 0;  // upper estimate for a forward of `tokens` tokens
  std::uint64_t total() const { return weights + kv_cache + activations; }
  std::string describe() const;  // "9.22 GB weights + 10.1 MB KV cache + 0.20 GB activations = ..."
};

// KV-cache bytes (f32) of `capacity` positions.
std::uint64_t kv_cache_bytes(const ModelConfig& config, std::int64_t capacity);
// Activation bytes of a forward of `tokens` tokens reading a cache of `capacity` positions, the
// logits of all positions or of the last one.
std::uint64_t activation_bytes(const ModelConfig& config, std::int64_t tokens,
                               std::int64_t capacity, bool all_logits);
// The need of running the checkpoint in `dir` (config.json and safetensors headers only: no
// tensor data is read) for a prompt of `tokens` tokens in a cache of `capacity` positions.
MemoryNeed estimate_memory(const std::string& dir, const LoadOptions& options,
                           std::int64_t tokens, std::int64_t capacity, bool all_logits);

// MemAvailable of /proc/meminfo (memory the kernel can give without swapping), or the physical
// memory where that file is absent.
std::uint64_t available_memory();
// Throws porta::Error (OutOfMemory) naming the parts when need.total() exceeds `limit`.
// `limit_source` says where the limit comes from ("--max-memory", "available memory").
void check_memory(const MemoryNeed& need, std::uint64_t limit, const std::string& limit_source);
// "12G", "512M", "64K", "1000" (bytes; K/M/G/T are powers of 1024, an optional trailing B or
// iB is accepted). Throws InvalidArgument naming the text.
std::uint64_t parse_bytes(const std::string& text);
// The process's peak resident set (getrusage ru_maxrss), bytes.
std::uint64_t peak_rss_bytes();

}  // namespace porta::model
PORTA_API_END

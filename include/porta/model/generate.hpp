// Running a loaded Model: a Session holds the compiled executables and the KV cache on the host,
// and runs prefill (many tokens) and decode (one token at a time) on any backend; a Sampler picks
// tokens greedily or by temperature and top-p with a seed; generate() strings them together and
// times each phase.
//
// The first forward() of a session runs the prompt through a graph without cache inputs; every
// later one runs a graph that reads the cache (capacity positions, cache_len of them valid) and
// appends the new rows. Executables are compiled once per token count and reused.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <porta/executable.hpp>
#include <porta/model/model.hpp>

PORTA_API_BEGIN
namespace porta::model {

struct SamplingOptions {
  float temperature = 0.0f;  // 0: greedy (the highest logit, ties to the lower id)
  float top_p = 1.0f;  // nucleus: sample among the fewest tokens whose probability is >= top_p
  std::uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplingOptions options = {});
  // Throws porta::Error when the logits hold NaN (a broken model should not emit tokens).
  std::int32_t sample(std::span<const float> logits);

 private:
  double uniform();  // [0, 1), from a seeded xoshiro256** stream, the same on every platform
  SamplingOptions options_;
  std::uint64_t state_[4] = {};
};

// The greedy choice: the index of the largest value, the lowest index among equals.
std::int32_t argmax(std::span<const float> logits);

struct SessionOptions {
  std::string backend = "reference";   // "cpu", "opencl", "npu-sim:910b2", ...
  std::string fallback = "reference";  // where ops the backend does not support run
  std::int64_t capacity = 0;           // positions the cache holds; 0: max_position_embeddings
  bool profile = true;
  // forward() returns the logits of every position [T, vocab]; false (the default): only the
  // last position's [1, vocab], and the lm_head runs on that row alone.
  bool all_logits = false;
  // The processes an expert-parallel model (LoadOptions::ep_placement) runs on; null: one.
  std::shared_ptr<Communicator> comm;
  // Sum the router's per-expert counts of every MoE layer over the session's runs
  // (Session::expert_load).
  bool record_expert_load = false;
};

class Session {
 public:
  Session(const Model& model, SessionOptions options);
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // Compiles, ahead of time, the executable forward() uses for `tokens` tokens at the current
  // position (so that timing a later forward() measures running only).
  void prepare(std::int64_t tokens, bool with_cache);
  // Runs `ids` at positions position() .. position() + T - 1, appends their keys and values to
  // the cache and returns the logits (f32): [T, vocab] with SessionOptions::all_logits, else
  // the last position's [1, vocab].
  Tensor forward(std::span<const std::int32_t> ids);

  std::int64_t position() const;
  std::int64_t capacity() const;
  void reset();  // forget the cache; the next forward() starts at position 0
  // Keep only the first `position` cached positions (0 <= position <= position()): the next
  // forward() continues from there (a chat turn whose ids diverge from the cache's after them).
  void rewind(std::int64_t position);
  // The last run's profile and its modelled device time (sum of OpProfile::device_us; -1 when
  // the backend does not model one).
  const Profile& last_profile() const;
  // Tokens routed to each expert of each MoE layer so far (SessionOptions::record_expert_load).
  ep::ExpertLoad expert_load() const;
  double last_device_us() const;
  // The cache rows held for layer `layer`, slot `slot` (see Model::cache_slots), [capacity, ...].
  const Tensor& cache(std::int64_t layer, const std::string& slot) const;
  // Where each node of the decode executable runs (empty before the first decode step).
  std::vector<NodePlacement> placement() const;
  // Weight bytes the compiled executables copied (Executable::copied_weight_bytes, summed).
  std::uint64_t copied_weight_bytes() const;
  // Bytes of the executables' activation arenas (Executable::arena_bytes, summed).
  std::uint64_t arena_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct GenerateOptions {
  std::int64_t max_new_tokens = 16;
  SamplingOptions sampling;
  std::optional<std::int32_t> eos_token;  // stop after emitting it
  // Called with each generated token as soon as it is sampled (to stream text as it comes).
  std::function<void(std::int32_t)> on_token;
};

struct GenerateResult {
  std::vector<std::int32_t> tokens;  // the generated ids (not the prompt)
  Tensor prompt_logits;  // f32: [T, vocab] with SessionOptions::all_logits, else [1, vocab]
  double compile_seconds = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  std::int64_t decode_steps = 0;  // forward() calls of one token
  double prefill_device_us = -1;  // modelled device time (npu-sim), -1 when not modelled
  double decode_device_us = -1;
};

// Prefill the prompt, then decode up to max_new_tokens tokens (the first comes from the
// prefill's last logits). The session must be fresh (position 0).
GenerateResult generate(Session& session, std::span<const std::int32_t> prompt,
                        const GenerateOptions& options);

}  // namespace porta::model
PORTA_API_END

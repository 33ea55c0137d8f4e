// Sessions: executables per token count, the host-side KV cache, and generate().
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include <porta/model/generate.hpp>

namespace porta::model {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double device_us(const Profile& profile) {
  double total = 0;
  bool any = false;
  for (const auto& op : profile.ops)
    if (op.device_us >= 0) {
      total += op.device_us;
      any = true;
    }
  return any ? total : -1;
}

}  // namespace

struct Session::Impl {
  Model model;
  SessionOptions options;
  std::int64_t position = 0;
  std::vector<CacheSlot> slots;
  std::map<std::string, Tensor> cache;            // cache_input_name -> [capacity, heads, dim]
  std::map<std::int64_t, Executable> prefill;     // by token count, no cache inputs
  std::map<std::int64_t, Executable> with_cache;  // by token count
  Executable* last = nullptr;
  Profile empty_profile;
  ep::ExpertLoad load;

  Executable& executable(std::int64_t tokens, bool cached) {
    auto& table = cached ? with_cache : prefill;
    auto it = table.find(tokens);
    if (it != table.end()) return it->second;
    const Graph graph = model.build(
        {.tokens = tokens, .cache_capacity = cached ? options.capacity : 0,
                                     .all_logits = options.all_logits,
                                     .expert_counts = options.record_expert_load});
    CompileOptions compile_options;
    compile_options.backend = options.backend;
    compile_options.fallback = options.fallback;
    compile_options.profile = options.profile;
    compile_options.comm = options.comm;
    return table.emplace(tokens, compile(graph, compile_options)).first->second;
  }
};

Session::Session(const Model& model, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = model.config();
  if (options.capacity == 0) options.capacity = c.max_position_embeddings;
  if (options.capacity < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("session capacity must be >= 1, not {}", options.capacity));
  if (c.sliding_window && options.capacity > *c.sliding_window)
    throw Error(ErrorCode::Unsupported,
                fmt::format("the config's sliding_window {} is smaller than the session capacity "
                            "{}: sliding-window attention is not implemented, so cap the "
                            "capacity at the window",
                            *c.sliding_window, options.capacity));
  impl_->model = model;
  impl_->options = std::move(options);
  impl_->slots = model.cache_slots();
  for (std::int64_t l = 0; l < c.num_layers; ++l)
    for (const auto& slot : impl_->slots)
      impl_->cache[cache_input_name(l, slot.name)] =
          Tensor::zeros({impl_->options.capacity, slot.heads, slot.dim}, DType::F32);
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

void Session::prepare(std::int64_t tokens, bool with_cache) {
  impl_->executable(tokens, with_cache);
}

Tensor Session::forward(std::span<const std::int32_t> ids) {
  Impl& s = *impl_;
  const ModelConfig& c = s.model.config();
  const auto t = static_cast<std::int64_t>(ids.size());
  if (t == 0) throw Error(ErrorCode::InvalidArgument, "forward() needs at least one token");
  if (s.position + t > s.options.capacity)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} tokens at position {} exceed the session's capacity of {} "
                            "positions",
                            t, s.position, s.options.capacity));
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= c.vocab_size)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("token id {} (at index {}) is outside the vocabulary [0, {})", ids[i],
                              i, c.vocab_size));
  const bool cached = s.position > 0;
  Executable& exe = s.executable(t, cached);

  std::vector<std::int32_t> positions(static_cast<std::size_t>(t));
  for (std::int64_t i = 0; i < t; ++i)
    positions[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(s.position + i);
  std::map<std::string, Tensor> inputs;
  inputs[kIdsInput] = Tensor::copy_of({t}, DType::I32, ids.data(), ids.size() * 4);
  inputs[kPositionsInput] = Tensor::from_vector<std::int32_t>({t}, positions);
  if (cached) {
    inputs[kCacheLenInput] = Tensor::from_vector<std::int32_t>(
        {1}, std::vector<std::int32_t>{static_cast<std::int32_t>(s.position)});
    for (const auto& [name, tensor] : s.cache) inputs[name] = tensor;
  }
  auto outputs = exe.run(inputs);
  s.last = &exe;

  // Append the new rows at the current position.
  for (std::int64_t l = 0; l < c.num_layers; ++l)
    for (const auto& slot : s.slots) {
      const Tensor& rows = outputs.at(cache_output_name(l, slot.name));
      Tensor& cache = s.cache.at(cache_input_name(l, slot.name));
      const std::size_t row_bytes = static_cast<std::size_t>(slot.heads * slot.dim) * 4;
      if (rows.dtype() != DType::F32 || rows.nbytes() != row_bytes * static_cast<std::size_t>(t))
        throw Error(ErrorCode::Internal, fmt::format("cache rows {} of layer {} are {}", slot.name,
                                                     l, rows.description()));
      std::memcpy(
          static_cast<std::byte*>(cache.data()) + static_cast<std::size_t>(s.position) * row_bytes,
          rows.data(), rows.nbytes());
    }
  s.position += t;
  if (s.options.record_expert_load)
    for (std::int64_t l = 0; l < c.num_layers; ++l) {
      const auto it = outputs.find(fmt::format("layer.{}.expert_counts", l));
      if (it == outputs.end()) continue;
      auto& sum = s.load.layers[l];
      sum.resize(static_cast<std::size_t>(it->second.shape()[0]), 0);
      const auto* counts = it->second.data_as<std::int32_t>();
      for (std::size_t e = 0; e < sum.size(); ++e) sum[e] += counts[e];
    }
  Tensor logits = outputs.at(kLogitsOutput);
  return logits.dtype() == DType::F32 ? logits : logits.to(DType::F32);
}

std::int64_t Session::position() const { return impl_->position; }
std::int64_t Session::capacity() const { return impl_->options.capacity; }
void Session::reset() { impl_->position = 0; }
void Session::rewind(std::int64_t position) {
  if (position < 0 || position > impl_->position)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("cannot rewind a session at position {} to {}", impl_->position,
                            position));
  impl_->position = position;
}
const Profile& Session::last_profile() const {
  return impl_->last ? impl_->last->profile() : impl_->empty_profile;
}
ep::ExpertLoad Session::expert_load() const {
  ep::ExpertLoad load = impl_->load;
  load.num_experts = impl_->model.config().num_experts;
  return load;
}
double Session::last_device_us() const { return device_us(last_profile()); }

std::uint64_t Session::copied_weight_bytes() const {
  std::uint64_t total = 0;
  for (const auto* table : {&impl_->prefill, &impl_->with_cache})
    for (const auto& [tokens, exe] : *table) total += exe.copied_weight_bytes();
  return total;
}

std::uint64_t Session::arena_bytes() const {
  std::uint64_t total = 0;
  for (const auto* table : {&impl_->prefill, &impl_->with_cache})
    for (const auto& [tokens, exe] : *table) total += exe.arena_bytes();
  return total;
}

const Tensor& Session::cache(std::int64_t layer, const std::string& slot) const {
  const auto it = impl_->cache.find(cache_input_name(layer, slot));
  if (it == impl_->cache.end())
    throw Error(ErrorCode::NotFound,
                fmt::format("the session has no cache '{}'", cache_input_name(layer, slot)));
  return it->second;
}

std::vector<NodePlacement> Session::placement() const {
  const auto it = impl_->with_cache.find(1);
  if (it == impl_->with_cache.end()) return {};
  return it->second.placement();
}

GenerateResult generate(Session& session, std::span<const std::int32_t> prompt,
                        const GenerateOptions& options) {
  if (session.position() != 0)
    throw Error(ErrorCode::InvalidArgument, "generate() needs a fresh session (position 0)");
  if (prompt.empty()) throw Error(ErrorCode::InvalidArgument, "the prompt is empty");
  if (options.max_new_tokens < 0)
    throw Error(ErrorCode::InvalidArgument, "max_new_tokens must be >= 0");
  const auto t = static_cast<std::int64_t>(prompt.size());
  if (t + options.max_new_tokens > session.capacity() + 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("a prompt of {} tokens plus {} new ones exceeds the session's "
                            "capacity of {} positions",
                            t, options.max_new_tokens, session.capacity()));
  GenerateResult result;
  Sampler sampler(options.sampling);

  auto start = Clock::now();
  session.prepare(t, false);
  if (options.max_new_tokens > 1) session.prepare(1, true);
  result.compile_seconds = seconds_since(start);

  start = Clock::now();
  result.prompt_logits = session.forward(prompt);
  result.prefill_seconds = seconds_since(start);
  result.prefill_device_us = session.last_device_us();
  if (options.max_new_tokens == 0) return result;

  const auto vocab = result.prompt_logits.shape()[1];
  const float* last =
      result.prompt_logits.data_as<float>() + (result.prompt_logits.shape()[0] - 1) * vocab;
  result.tokens.push_back(sampler.sample({last, static_cast<std::size_t>(vocab)}));
  if (options.on_token) options.on_token(result.tokens.back());

  start = Clock::now();
  double device = 0;
  bool modelled = false;
  while (static_cast<std::int64_t>(result.tokens.size()) < options.max_new_tokens) {
    if (options.eos_token && result.tokens.back() == *options.eos_token) break;
    const std::int32_t next = result.tokens.back();
    const Tensor logits = session.forward({&next, 1});
    ++result.decode_steps;
    const double step_device = session.last_device_us();
    if (step_device >= 0) {
      device += step_device;
      modelled = true;
    }
    result.tokens.push_back(
        sampler.sample({logits.data_as<float>(), static_cast<std::size_t>(vocab)}));
    if (options.on_token) options.on_token(result.tokens.back());
  }
  result.decode_seconds = seconds_since(start);
  result.decode_device_us = modelled ? device : -1;
  return result;
}

}  // namespace porta::model

// `porta chat --model DIR`: an interactive conversation on stdin. Each turn renders the whole
// conversation with the model's chat template, encodes it, rewinds the KV cache to the longest
// prefix it shares with the new ids, and runs only the rest (an answer may re-encode to other ids
// than it was generated as, and templates may rewrite earlier turns). The answer streams out as it
// is generated and stops at the EOS token. /reset forgets the conversation, /quit (or the end of
// stdin) leaves.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>

#include <porta/device.hpp>
#include <porta/model/generate.hpp>
#include <porta/model/gguf.hpp>
#include <porta/tokenizer.hpp>

#include "commands.hpp"
#include "text_io.hpp"

namespace porta::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct ChatOptions {
  std::string model_dir;
  std::string backend = "reference";
  std::string system;
  std::int64_t max_new_tokens = 256;
  std::int64_t capacity = 0;
  float temperature = 0;
  float top_p = 1;
  std::uint64_t seed = 0;
  std::string gguf_activations = "ggml_q8";
};

class Conversation {
 public:
  Conversation(const ChatOptions& o, const Tokenizer& tokenizer, const model::Model& model,
               std::int64_t capacity)
      : o_(o),
        tokenizer_(tokenizer),
        session_(model, {.backend = o.backend, .fallback = "reference", .capacity = capacity}),
        sampler_({.temperature = o.temperature, .top_p = o.top_p, .seed = o.seed}) {
    reset();
  }

  void reset() {
    messages_.clear();
    if (!o_.system.empty()) messages_.push_back({"system", o_.system});
    session_.reset();
    cached_.clear();
  }

  void turn(const std::string& user) {
    messages_.push_back({"user", user});
    const std::vector<std::int32_t> ids =
        tokenizer_.encode(tokenizer_.apply_chat_template(messages_, true), false);
    // Reuse the longest common prefix of the cache's ids and the new ones; run at least one id.
    const auto common = std::mismatch(cached_.begin(), cached_.end(), ids.begin(), ids.end());
    const std::size_t reuse =
        std::min(static_cast<std::size_t>(common.first - cached_.begin()), ids.size() - 1);
    session_.rewind(static_cast<std::int64_t>(reuse));
    cached_.resize(reuse);
    const auto needed = static_cast<std::int64_t>(ids.size()) + o_.max_new_tokens;
    if (needed > session_.capacity()) {
      messages_.pop_back();
      fmt::print("porta: this turn needs {} positions but the KV cache holds {}; /reset to start "
                 "over, or pass a larger --capacity\n",
                 needed, session_.capacity());
      return;
    }
    const std::span<const std::int32_t> fresh(ids.data() + reuse, ids.size() - reuse);
    const auto start = Clock::now();
    Tensor logits = session_.forward(fresh);
    cached_.insert(cached_.end(), fresh.begin(), fresh.end());
    const auto vocab = static_cast<std::size_t>(logits.shape()[1]);
    // The last position's row: forward() returns [1, vocab] unless the session keeps all logits.
    const float* row =
        logits.data_as<float>() + static_cast<std::size_t>(logits.shape()[0] - 1) * vocab;
    std::int32_t next = sampler_.sample({row, vocab});

    TextStreamer out(tokenizer_);
    std::vector<std::int32_t> answer;
    const auto eos = tokenizer_.eos_id();
    bool stopped = false;
    for (std::int64_t k = 0; k < o_.max_new_tokens; ++k) {
      if (eos && next == *eos) {
        stopped = true;
        break;
      }
      answer.push_back(next);
      out.push(next);
      if (k + 1 == o_.max_new_tokens) break;
      logits = session_.forward({&next, 1});
      cached_.push_back(next);
      next = sampler_.sample({logits.data_as<float>(), vocab});
    }
    out.finish();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    fmt::print("\n[{} tokens{}, {:.2f} s; prompt {} ids, {} reused from the cache]\n",
               answer.size(), stopped ? " until EOS" : "", seconds, ids.size(), reuse);
    messages_.push_back({"assistant", tokenizer_.decode(answer, true)});
  }

 private:
  const ChatOptions& o_;
  const Tokenizer& tokenizer_;
  model::Session session_;
  model::Sampler sampler_;
  std::vector<ChatMessage> messages_;
  std::vector<std::int32_t> cached_;  // the ids whose keys and values the cache holds
};

}  // namespace

Command add_chat_command(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  app.add_option("--model", o->model_dir,
                 "Checkpoint directory (config.json, safetensors, tokenizer.json with a "
                 "chat_template in tokenizer_config.json)")
      ->required();
  app.add_option("--backend", o->backend, "cpu, opencl, npu-sim:910b2, reference")
      ->capture_default_str();
  app.add_option("--system", o->system, "A system message opening the conversation");
  app.add_option("--max-new-tokens", o->max_new_tokens, "Most tokens per answer")
      ->capture_default_str();
  app.add_option("--capacity", o->capacity,
                 "KV-cache positions for the whole conversation (default: the model's "
                 "max_position_embeddings, at most 4096)");
  app.add_option("--temperature", o->temperature, "0 for greedy decoding")->capture_default_str();
  app.add_option("--top-p", o->top_p, "Nucleus sampling threshold")->capture_default_str();
  app.add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  add_gguf_activations_option(app, o->gguf_activations);
  return [o] {
    if (o->max_new_tokens < 1) throw Error(ErrorCode::InvalidArgument, "--max-new-tokens must be >= 1");
    const Tokenizer tokenizer = Tokenizer::load(o->model_dir);
    if (!tokenizer.has_chat_template())
      throw Error(ErrorCode::NotFound,
                  fmt::format("'{}' has no chat_template in tokenizer_config.json", o->model_dir));
    const DeviceInfo device = device_info(o->backend);
    if (!device.available)
      throw Error(ErrorCode::Unsupported, fmt::format("backend '{}' is unavailable: {}",
                                                      o->backend, device.unavailable_reason));
    const model::Model model = model::is_gguf_file(o->model_dir)
                                   ? model::load_gguf(o->model_dir,
                                                      {.activations = parse_activation_quant(
                                                           o->gguf_activations)})
                                   : model::Model::load(o->model_dir);
    const std::int64_t capacity =
        o->capacity > 0 ? o->capacity
                        : std::min<std::int64_t>(model.config().max_position_embeddings, 4096);
    if (tokenizer.vocab_size() > model.config().vocab_size)
      fmt::print("porta: warning: the tokenizer has {} ids, the model's vocabulary {}\n",
                 tokenizer.vocab_size(), model.config().vocab_size);
    Conversation conversation(*o, tokenizer, model, capacity);
    fmt::print("model: {} on {}; {} KV-cache positions. /reset starts over, /quit leaves.\n",
               model.config().model_type, o->backend, capacity);
    std::string line;
    for (;;) {
      fmt::print("> ");
      std::fflush(stdout);
      if (!std::getline(std::cin, line)) {
        fmt::print("\n");
        break;
      }
      if (line == "/quit") break;
      if (line == "/reset") {
        conversation.reset();
        fmt::print("(the conversation and the KV cache are reset)\n");
        continue;
      }
      if (line.empty()) continue;
      conversation.turn(line);
    }
    return 0;
  };
}

}  // namespace porta::cli

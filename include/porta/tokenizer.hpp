// Text in, text out: a Hugging Face tokenizer read from a model directory's tokenizer.json and
// tokenizer_config.json, with the semantics of Hugging Face's `tokenizers` library (BPE, byte-level
// and Metaspace/byte-fallback; normalizers, pre-tokenizers, added tokens, post-processors and
// decoders), a streaming decoder for printing generated tokens as they come, and the model's chat
// template rendered by a Jinja subset (see docs/tokenizer.md for what is supported).
//
// Every malformed file or unsupported component is a porta::Error naming the JSON field or the
// template construct involved.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

PORTA_API_BEGIN
namespace porta {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json; when `dir` is a GGUF
  // file, the tokenizer it carries (from_gguf).
  static Tokenizer load(const std::string& dir);
  // The tokenizer.ggml.* metadata of a GGUF file (byte-level "gpt2" and SentencePiece "llama"
  // vocabularies; see docs/gguf.md).
  static Tokenizer from_gguf(const std::string& path);
  // The same from the files' text; `config_json` may be empty. `origin` names the source in
  // error messages.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {},
                             std::string_view origin = "tokenizer.json");

  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // `text` must be valid UTF-8. add_special_tokens applies the post-processor (e.g. a BOS).
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Invalid UTF-8 produced by the tokens is replaced by U+FFFD, as Hugging Face does.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(std::int32_t id) const;
  bool is_special(std::int32_t id) const;
  // One past the largest id (model vocabulary and added tokens).
  std::int64_t vocab_size() const;

  std::optional<std::int32_t> bos_id() const;
  std::optional<std::int32_t> eos_id() const;
  std::string bos_token() const;  // empty when there is none
  std::string eos_token() const;

  bool has_chat_template() const;
  std::string chat_template() const;
  // Renders the chat template with bos_token, eos_token, messages and add_generation_prompt.
  std::string apply_chat_template(std::span<const ChatMessage> messages,
                                  bool add_generation_prompt) const;
  // The same with messages as a JSON array (tool calls, reasoning_content, ...) and optional
  // extra template variables as a JSON object (e.g. {"enable_thinking": false}).
  std::string apply_chat_template_json(std::string_view messages_json, bool add_generation_prompt,
                                       std::string_view extra_variables_json = {}) const;

  // Raw bytes of the decoding before invalid UTF-8 is replaced (for the streaming decoder).
  std::string decode_bytes(std::span<const std::int32_t> ids, bool skip_special_tokens) const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns generated ids into text as they arrive: push() returns the text that is complete so far
// and never splits a UTF-8 character (bytes of a character spread over several byte tokens are
// held until the character is whole); finish() returns what is left, invalid bytes as U+FFFD.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = true);
  std::string push(std::int32_t id);
  std::string finish();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::vector<std::int32_t> ids_;  // context token(s) + tokens not yet emitted
  std::size_t emitted_bytes_ = 0;  // bytes of decode_bytes(ids_) already returned
};

}  // namespace porta
PORTA_API_END

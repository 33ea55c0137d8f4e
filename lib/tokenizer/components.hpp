// The stages of a Hugging Face tokenizer pipeline as tokenizer.json declares them, each built from
// its JSON object by a factory that rejects unknown types and malformed fields by path:
//   normalizer -> pre-tokenizer -> model (BPE) -> post-processor;  decoder for the way back.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "json_fields.hpp"

namespace porta::tok {

// The stretches of text the pre-tokenizers have cut out so far: byte ranges of one buffer, so
// that a split only adds ranges and never copies text (stages that change the text, ByteLevel and
// Metaspace, write a new buffer). at_start: the piece begins at offset 0 of the original text
// (Metaspace's prepend_scheme "first" looks at that).
struct Pieces {
  struct Span {
    std::uint32_t begin = 0, end = 0;
    bool at_start = false;
  };
  std::string text;
  std::vector<Span> spans;

  std::string_view view(const Span& s) const {
    return std::string_view(text).substr(s.begin, s.end - s.begin);
  }
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` with their finer split.
  virtual void split(Pieces& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Hugging Face's decode_chain: token strings in, token strings out, joined by the caller.
  // With raw_bytes, bytes that do not form valid UTF-8 are kept as they are instead of becoming
  // U+FFFD (the streaming decoder waits for the rest of a character).
  virtual void decode_chain(std::vector<std::string>& tokens, bool raw_bytes) const = 0;
};

// Special tokens the post-processor adds around a sequence.
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<std::int32_t>& ids) const = 0;
};

// Factories; `path` is the field's location for error messages. A null JSON value gives nullptr.
std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& path);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& path);
std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& path);
std::unique_ptr<PostProcessor> make_post_processor(const json& j, const std::string& path);
// A post-processor adding `prefix` before and `suffix` after the ids (transformers' Llama
// tokenizers rebuild theirs from add_bos_token / add_eos_token this way).
std::unique_ptr<PostProcessor> make_affix_processor(std::vector<std::int32_t> prefix,
                                                    std::vector<std::int32_t> suffix);

}  // namespace porta::tok

namespace porta::tok {

class Regex;
// A {"String": s} or {"Regex": r} pattern object (Split, Replace).
std::unique_ptr<Regex> make_pattern(const json& j, const std::string& path);
// `text` with every match of `pattern` replaced by `content`.
std::string replace_all(const Regex& pattern, const std::string& text, const std::string& content);

}  // namespace porta::tok

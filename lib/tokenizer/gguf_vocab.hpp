// What GGUF's tokenizer metadata means in tokenizer.json terms, shared by the two directions
// (a GGUF's tokenizer.ggml.* into a porta Tokenizer, a Hugging Face tokenizer into GGUF keys).
//
// GGUF names its pre-tokenizer (`tokenizer.ggml.pre`) instead of storing it; each name stands for
// the normalizer and pre-tokenizer of the model family llama.cpp gave it to, written here as the
// tokenizer.json components of that family.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "json_fields.hpp"

namespace porta::tok {

// llama.cpp's token types (tokenizer.ggml.token_type).
enum class GgufTokenType : std::int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

struct GgufPreTokenizer {
  std::vector<std::string> names;  // the first is the one written on export
  json normalizer;                 // null when none
  json pre_tokenizer;
  bool ignore_merges = false;  // a word that is a token stays whole (llama3)
};

// The byte-level (model "gpt2") pre-tokenizers porta knows.
const std::vector<GgufPreTokenizer>& gguf_pre_tokenizers();
// The entry for `name`; NotFound naming the name and listing the known ones.
const GgufPreTokenizer& gguf_pre_tokenizer(std::string_view name);
// The entry whose splitting (regexes, byte-level regex) equals `pre_tokenizer`'s, or nullptr.
const GgufPreTokenizer* match_gguf_pre_tokenizer(const json& pre_tokenizer);

}  // namespace porta::tok

// tokenizer.ggml.* -> TokenizerMetadata: the keys llama.cpp's gguf-py writes for a model's
// tokenizer, type-checked and cross-checked (one type and score per token, ids in range).
#include <porta/gguf.hpp>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::gguf {

namespace {

[[noreturn]] void bad(const GgufFile& f, const std::string& key, const std::string& why) {
  throw Error(ErrorCode::CorruptFile,
              fmt::format("'{}': metadata key '{}' {}", f.path(), key, why));
}

const Value* array_of(const GgufFile& f, const std::string& key,
                      std::initializer_list<ValueType> element_types) {
  const Value* v = f.find(key);
  if (v == nullptr) return nullptr;
  if (v->type != ValueType::Array) bad(f, key, fmt::format("is {}, not an array", value_type_name(v->type)));
  for (ValueType t : element_types)
    if (v->element_type == t) return v;
  bad(f, key, fmt::format("is an array of {}, not of {}", value_type_name(v->element_type),
                          value_type_name(*element_types.begin())));
}

}  // namespace

std::optional<TokenizerMetadata> tokenizer_metadata(const GgufFile& f) {
  const auto model = f.get_string_or("tokenizer.ggml.model");
  if (!model) return std::nullopt;
  TokenizerMetadata t;
  t.model = *model;
  t.pre = f.get_string_or("tokenizer.ggml.pre").value_or("");
  t.chat_template = f.get_string_or("tokenizer.chat_template").value_or("");

  const Value* tokens = array_of(f, "tokenizer.ggml.tokens", {ValueType::String});
  if (tokens == nullptr) bad(f, "tokenizer.ggml.tokens", "is missing");
  for (const Value& v : tokens->array) t.tokens.push_back(v.string);
  const auto n = t.tokens.size();

  if (const Value* types = array_of(f, "tokenizer.ggml.token_type", {ValueType::I32, ValueType::U32})) {
    if (types->array.size() != n)
      bad(f, "tokenizer.ggml.token_type", fmt::format("has {} entries for {} tokens", types->array.size(), n));
    for (const Value& v : types->array)
      t.token_types.push_back(static_cast<std::int32_t>(
          v.type == ValueType::I32 ? v.integer : static_cast<std::int64_t>(v.unsigned_integer)));
  }
  if (const Value* scores = array_of(f, "tokenizer.ggml.scores", {ValueType::F32})) {
    if (scores->array.size() != n)
      bad(f, "tokenizer.ggml.scores", fmt::format("has {} entries for {} tokens", scores->array.size(), n));
    for (const Value& v : scores->array) t.scores.push_back(static_cast<float>(v.real));
  }
  if (const Value* merges = array_of(f, "tokenizer.ggml.merges", {ValueType::String}))
    for (const Value& v : merges->array) t.merges.push_back(v.string);

  auto id = [&](const char* key) -> std::optional<std::int64_t> {
    const auto v = f.get_int_or(key);
    if (v && (*v < 0 || static_cast<std::uint64_t>(*v) >= n))
      bad(f, key, fmt::format("is {}, outside the {} tokens", *v, n));
    return v;
  };
  t.bos_id = id("tokenizer.ggml.bos_token_id");
  t.eos_id = id("tokenizer.ggml.eos_token_id");
  t.unknown_id = id("tokenizer.ggml.unknown_token_id");
  t.padding_id = id("tokenizer.ggml.padding_token_id");
  t.eot_id = id("tokenizer.ggml.eot_token_id");
  t.add_bos = f.get_bool_or("tokenizer.ggml.add_bos_token");
  t.add_eos = f.get_bool_or("tokenizer.ggml.add_eos_token");
  t.add_space_prefix = f.get_bool_or("tokenizer.ggml.add_space_prefix");
  return t;
}

}  // namespace porta::gguf

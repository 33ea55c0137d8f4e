// A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) as GGUF tokenizer metadata,
// the keys llama.cpp's converter writes: byte-level BPE as model "gpt2" with the pre-tokenizer's
// GGUF name, SentencePiece-style BPE (Metaspace) as model "llama" with scores that rank merges
// in the file's merge order. Merges are always written, so the GGUF tokenizes as the source does.
#include <porta/gguf.hpp>
#include <porta/tokenizer.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "gguf_vocab.hpp"
#include "tokenizer_json.hpp"

namespace porta::gguf {

namespace {

using tok::GgufTokenType;
using tok::json;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::NotFound, fmt::format("cannot open '{}'", path.string()));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

json read_json(const std::filesystem::path& path) {
  try {
    return json::parse(read_text(path));
  } catch (const json::exception& e) {
    throw Error(ErrorCode::CorruptFile, fmt::format("'{}': {}", path.string(), e.what()));
  }
}

bool mentions(const json& j, std::string_view type) {
  if (j.is_object()) {
    if (j.value("type", "") == type) return true;
    for (const auto& [k, v] : j.items())
      if (mentions(v, type)) return true;
  } else if (j.is_array()) {
    for (const json& v : j)
      if (mentions(v, type)) return true;
  }
  return false;
}

std::string config_token(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return (*it)["content"].get<std::string>();
  return {};
}

}  // namespace

std::vector<std::pair<std::string, Value>> tokenizer_metadata_from_hf(const std::string& dir,
                                                                      std::int64_t vocab_size) {
  const std::filesystem::path base(dir);
  const std::string origin = (base / "tokenizer.json").string();
  // The vocabulary and merges straight into tables (most of the file), the rest as a tree.
  tok::BpeTables tables;
  json j;
  try {
    j = tok::parse_tokenizer_json(read_text(base / "tokenizer.json"), tables);
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("'{}': {}", origin, e.what()));
  }
  const json config = std::filesystem::exists(base / "tokenizer_config.json")
                          ? read_json(base / "tokenizer_config.json")
                          : json::object();
  auto bad = [&](const std::string& why) {
    throw Error(ErrorCode::Unsupported, fmt::format("'{}': {}", origin, why));
  };
  if (!j.is_object() || !j.contains("model") || j["model"].value("type", "") != "BPE")
    bad("only BPE tokenizers can be written as GGUF");
  const json& model = j["model"];
  const json pre = j.value("pre_tokenizer", json());
  const bool byte_level =
      mentions(pre, "ByteLevel") || mentions(j.value("decoder", json()), "ByteLevel");

  std::vector<std::string> tokens;
  std::vector<GgufTokenType> types;
  // Ids no token has are unused "[PADn]" entries, as llama.cpp's converter writes them.
  auto pad_to = [&](std::size_t count) {
    for (std::size_t k = tokens.size(); k < count; ++k) {
      tokens.push_back(fmt::format("[PAD{}]", k));
      types.push_back(GgufTokenType::Unused);
    }
  };
  auto place = [&](std::int64_t id, const std::string& text, GgufTokenType type) {
    if (id < 0 || id > INT32_MAX) bad(fmt::format("token '{}' has id {}", text, id));
    const auto at = static_cast<std::size_t>(id);
    pad_to(at + 1);
    tokens[at] = text;
    types[at] = type;
  };
  const bool byte_fallback = model.value("byte_fallback", false);
  for (const auto& [text, id] : tables.vocab) {
    const bool is_byte =
        byte_fallback && text.size() == 6 && text.starts_with("<0x") && text.back() == '>';
    place(id, text, is_byte ? GgufTokenType::Byte : GgufTokenType::Normal);
  }
  for (const json& a : j.value("added_tokens", json::array()))
    place(a.at("id").get<std::int64_t>(), a.at("content").get<std::string>(),
          a.value("special", false) ? GgufTokenType::Control : GgufTokenType::UserDefined);
  if (vocab_size > 0) {
    if (tokens.size() > static_cast<std::size_t>(vocab_size))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("tokenizer in '{}' has {} ids, more than the model's vocab_size {}",
                              dir, tokens.size(), vocab_size));
    pad_to(static_cast<std::size_t>(vocab_size));
  }
  const auto unk = model.value("unk_token", json());
  std::optional<std::int64_t> unk_id;
  if (unk.is_string())
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == unk.get<std::string>()) {
        types[i] = GgufTokenType::Unknown;
        unk_id = static_cast<std::int64_t>(i);
        break;
      }

  std::vector<std::string> merges;
  for (const auto& [left, right] : tables.merges) {
    std::string joined = left + " " + right;
    if (std::count(joined.begin(), joined.end(), ' ') != 1)
      bad(fmt::format("merge '{}' has a token with a space, which GGUF cannot store", joined));
    merges.push_back(std::move(joined));
  }

  std::vector<std::pair<std::string, Value>> out;
  std::vector<Value> type_values, scores;
  for (GgufTokenType t : types) type_values.push_back(Value::i32(static_cast<std::int32_t>(t)));
  if (byte_level) {
    const tok::GgufPreTokenizer* p = tok::match_gguf_pre_tokenizer(pre);
    if (p == nullptr)
      bad("its pre-tokenizer is none of those GGUF names that porta knows (gpt-2, llama-bpe, "
          "qwen2, deepseek-v3)");
    out.emplace_back("tokenizer.ggml.model", Value::str("gpt2"));
    out.emplace_back("tokenizer.ggml.pre", Value::str(p->names.front()));
  } else {
    if (!mentions(pre, "Metaspace"))
      bad("a BPE tokenizer that is neither byte-level nor Metaspace (SentencePiece)");
    out.emplace_back("tokenizer.ggml.model", Value::str("llama"));
    out.emplace_back("tokenizer.ggml.pre", Value::str("default"));
    for (std::size_t i = 0; i < tokens.size(); ++i)
      scores.push_back(Value::f32(-static_cast<float>(i)));
  }
  out.emplace_back("tokenizer.ggml.tokens", Value::strings(tokens));
  if (!scores.empty())
    out.emplace_back("tokenizer.ggml.scores", Value::array_of(ValueType::F32, scores));
  out.emplace_back("tokenizer.ggml.token_type", Value::array_of(ValueType::I32, type_values));
  out.emplace_back("tokenizer.ggml.merges", Value::strings(merges));

  // The special ids and whether they are added: what the tokenizer itself does, as loaded.
  const Tokenizer hf = Tokenizer::load(dir);
  auto id_key = [&](const char* key, std::optional<std::int32_t> id) {
    if (id) out.emplace_back(key, Value::u32(static_cast<std::uint32_t>(*id)));
  };
  id_key("tokenizer.ggml.bos_token_id", hf.bos_id());
  id_key("tokenizer.ggml.eos_token_id", hf.eos_id());
  if (unk_id) id_key("tokenizer.ggml.unknown_token_id", static_cast<std::int32_t>(*unk_id));
  if (const std::string pad = config_token(config, "pad_token"); !pad.empty())
    id_key("tokenizer.ggml.padding_token_id", hf.token_to_id(pad));
  const auto plain = hf.encode("a", false), with = hf.encode("a", true);
  const bool add_bos = with.size() > plain.size() && hf.bos_id() && with.front() == *hf.bos_id();
  const bool add_eos = with.size() > plain.size() && hf.eos_id() && with.back() == *hf.eos_id();
  out.emplace_back("tokenizer.ggml.add_bos_token", Value::boolean_value(add_bos));
  out.emplace_back("tokenizer.ggml.add_eos_token", Value::boolean_value(add_eos));
  if (!byte_level) {
    const bool prefix =
        !pre.is_object() || pre.value("type", "") != "Metaspace" ||
        (pre.value("prepend_scheme", "first") != "never" && pre.value("add_prefix_space", true));
    out.emplace_back("tokenizer.ggml.add_space_prefix", Value::boolean_value(prefix));
  }
  if (hf.has_chat_template())
    out.emplace_back("tokenizer.chat_template", Value::str(hf.chat_template()));
  return out;
}

}  // namespace porta::gguf

// A GGUF file's tokenizer (tokenizer.ggml.*) as a porta Tokenizer: the metadata is written out as
// the tokenizer.json and tokenizer_config.json a Hugging Face model of that kind would carry, and
// read by the same code as those files, so both sources share one set of semantics.
//
// model "gpt2": byte-level BPE; merges from tokenizer.ggml.merges; the pre-tokenizer from the
//   name in tokenizer.ggml.pre (gguf_vocab.cpp).
// model "llama": SentencePiece BPE over the whole text, spaces as U+2581, a U+2581 put before the
//   text unless tokenizer.ggml.add_space_prefix is false, <0xXX> byte tokens as byte fallback.
//   Merges from tokenizer.ggml.merges when the file has them, else derived from the scores the
//   way SentencePiece merges: a pair whose concatenation is a token ranks by that token's score.
// Control and unknown tokens become special added tokens, user-defined ones plain added tokens.
#include <porta/gguf.hpp>
#include <porta/tokenizer.hpp>

#include <algorithm>
#include <unordered_map>

#include "gguf_vocab.hpp"

namespace porta {

namespace {

using tok::GgufTokenType;
using tok::json;

const char* const kSpace = "\xE2\x96\x81";  // ▁

GgufTokenType type_of(const gguf::TokenizerMetadata& m, std::size_t id) {
  return m.token_types.empty() ? GgufTokenType::Normal
                               : static_cast<GgufTokenType>(m.token_types[id]);
}

// SentencePiece's merge order from the scores: every split of a token into two tokens is a merge,
// ranked by the token's score (higher first), ties by the token's id, then the left part's length.
json merges_from_scores(const gguf::TokenizerMetadata& m, const std::string& origin) {
  if (m.scores.empty())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("{}: a llama tokenizer needs tokenizer.ggml.merges or "
                            "tokenizer.ggml.scores",
                            origin));
  std::unordered_map<std::string_view, std::int32_t> ids;
  for (std::size_t i = 0; i < m.tokens.size(); ++i)
    if (type_of(m, i) == GgufTokenType::Normal || type_of(m, i) == GgufTokenType::UserDefined)
      ids.emplace(m.tokens[i], static_cast<std::int32_t>(i));
  struct Merge {
    float score;
    std::int32_t id;
    std::size_t left;
  };
  std::vector<Merge> merges;
  for (const auto& [token, id] : ids)
    for (std::size_t cut = 1; cut < token.size(); ++cut)
      if (ids.contains(token.substr(0, cut)) && ids.contains(token.substr(cut)))
        merges.push_back({m.scores[static_cast<std::size_t>(id)], id, cut});
  std::sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.id != b.id) return a.id < b.id;
    return a.left < b.left;
  });
  json out = json::array();
  for (const Merge& g : merges) {
    const std::string& t = m.tokens[static_cast<std::size_t>(g.id)];
    out.push_back(json::array({t.substr(0, g.left), t.substr(g.left)}));
  }
  return out;
}

json added_tokens(const gguf::TokenizerMetadata& m) {
  json out = json::array();
  for (std::size_t i = 0; i < m.tokens.size(); ++i) {
    const GgufTokenType t = type_of(m, i);
    const bool special = t == GgufTokenType::Control || t == GgufTokenType::Unknown;
    if (!special && t != GgufTokenType::UserDefined) continue;
    out.push_back({{"id", i},
                   {"content", m.tokens[i]},
                   {"single_word", false},
                   {"lstrip", false},
                   {"rstrip", false},
                   {"normalized", false},
                   {"special", special}});
  }
  return out;
}

json merges_as_json(const gguf::TokenizerMetadata& m, const std::string& origin) {
  json out = json::array();
  for (std::size_t i = 0; i < m.merges.size(); ++i) {
    const std::string& s = m.merges[i];
    const std::size_t space = s.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == s.size())
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("{}: tokenizer.ggml.merges[{}] '{}' is not two tokens separated by "
                              "a space",
                              origin, i, s));
    out.push_back(json::array({s.substr(0, space), s.substr(space + 1)}));
  }
  return out;
}

std::pair<json, json> hf_files(const gguf::TokenizerMetadata& m, const std::string& origin) {
  json vocab = json::object();
  for (std::size_t i = m.tokens.size(); i-- > 0;) vocab[m.tokens[i]] = i;  // first id wins
  json model = {{"type", "BPE"},        {"dropout", nullptr},     {"unk_token", nullptr},
                {"fuse_unk", false},    {"byte_fallback", false}, {"ignore_merges", false},
                {"vocab", std::move(vocab)}};
  json tokenizer = {{"version", "1.0"}, {"added_tokens", added_tokens(m)}};
  if (m.model == "gpt2") {
    if (m.merges.empty())
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("{}: a gpt2 (byte-level BPE) tokenizer needs tokenizer.ggml.merges",
                              origin));
    const std::string pre = m.pre.empty() ? "default" : m.pre;
    const tok::GgufPreTokenizer* p = nullptr;
    try {
      p = &tok::gguf_pre_tokenizer(pre);
    } catch (const Error& e) {
      throw Error(ErrorCode::Unsupported, fmt::format("{}: tokenizer.ggml.pre: {}", origin, e.what()));
    }
    model["merges"] = merges_as_json(m, origin);
    model["ignore_merges"] = p->ignore_merges;
    tokenizer["normalizer"] = p->normalizer;
    tokenizer["pre_tokenizer"] = p->pre_tokenizer;
    tokenizer["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                            {"trim_offsets", false}, {"use_regex", false}};
  } else if (m.model == "llama") {
    model["merges"] = m.merges.empty() ? merges_from_scores(m, origin) : merges_as_json(m, origin);
    bool bytes = false;
    for (std::size_t i = 0; i < m.tokens.size(); ++i)
      bytes = bytes || type_of(m, i) == GgufTokenType::Byte;
    model["byte_fallback"] = bytes;
    model["fuse_unk"] = true;
    if (m.unknown_id) model["unk_token"] = m.tokens[static_cast<std::size_t>(*m.unknown_id)];
    const bool prefix = m.add_space_prefix.value_or(true);
    tokenizer["normalizer"] = nullptr;
    tokenizer["pre_tokenizer"] = {{"type", "Metaspace"},
                                  {"replacement", kSpace},
                                  {"prepend_scheme", prefix ? "first" : "never"},
                                  {"split", false}};
    json decoders = json::array({{{"type", "Replace"},
                                  {"pattern", {{"String", kSpace}}},
                                  {"content", " "}},
                                 {{"type", "ByteFallback"}},
                                 {{"type", "Fuse"}}});
    if (prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    tokenizer["decoder"] = {{"type", "Sequence"}, {"decoders", std::move(decoders)}};
  } else {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: tokenizer.ggml.model '{}' is not supported (porta reads gpt2 "
                            "and llama tokenizers)",
                            origin, m.model));
  }
  tokenizer["model"] = std::move(model);

  auto token = [&](const std::optional<std::int64_t>& id) -> json {
    return id ? json(m.tokens[static_cast<std::size_t>(*id)]) : json();
  };
  // llama.cpp adds a BOS by default to SentencePiece vocabularies only.
  const bool add_bos = m.add_bos.value_or(m.model == "llama");
  json config = {{"tokenizer_class", "LlamaTokenizerFast"},
                 {"bos_token", token(m.bos_id)},
                 {"eos_token", token(m.eos_id)},
                 {"add_bos_token", add_bos && m.bos_id.has_value()},
                 {"add_eos_token", m.add_eos.value_or(false) && m.eos_id.has_value()},
                 {"clean_up_tokenization_spaces", false}};
  if (!m.chat_template.empty()) config["chat_template"] = m.chat_template;
  return {std::move(tokenizer), std::move(config)};
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const std::string& path) {
  const gguf::GgufFile file = gguf::GgufFile::open(path);
  const auto metadata = gguf::tokenizer_metadata(file);
  if (!metadata)
    throw Error(ErrorCode::NotFound,
                fmt::format("'{}' carries no tokenizer (no tokenizer.ggml.model)", path));
  const auto [tokenizer, config] = hf_files(*metadata, path);
  return from_json(tokenizer.dump(), config.dump(), path);
}

}  // namespace porta

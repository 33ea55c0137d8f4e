// porta::Tokenizer: loading tokenizer.json + tokenizer_config.json, encode and decode.
#include <porta/tokenizer.hpp>

#include <porta/model/gguf.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "added_vocab.hpp"
#include "bpe.hpp"
#include "chat_template.hpp"
#include "components.hpp"
#include "tokenizer_json.hpp"
#include "utf8.hpp"

namespace porta {

using tok::json;

struct Tokenizer::Impl {
  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::Bpe> model;
  std::unique_ptr<tok::PostProcessor> post_processor;
  std::unique_ptr<tok::Decoder> decoder;
  tok::AddedTokenMatcher raw_added, normalized_added;
  std::unordered_map<std::int32_t, tok::AddedToken> added_by_id;
  tok::Vocab added_by_content;
  std::string bos, eos;
  std::optional<std::int32_t> bos_id, eos_id;
  std::string chat_template;
  bool clean_up_spaces = false;
  std::int64_t vocab_size = 0;

  std::optional<std::int32_t> id_of(std::string_view token) const {
    if (const auto it = added_by_content.find(token); it != added_by_content.end())
      return it->second;
    return model->token_to_id(token);
  }

  void encode_plain(std::string_view text, bool at_start, std::vector<std::int32_t>& ids) const {
    std::string normalized(text);
    if (normalizer) normalizer->normalize(normalized);
    if (normalized_added.empty()) {
      encode_pieces(std::move(normalized), {{0, 0, at_start}}, ids);
      return;
    }
    for (const tok::Segment& s : normalized_added.split(normalized)) {
      if (s.token >= 0)
        ids.push_back(s.token);
      else
        encode_pieces(normalized.substr(s.begin, s.end - s.begin), {{0, 0, at_start && s.begin == 0}},
                      ids);
    }
  }

  // Pre-tokenizes `text` (one piece) and runs the model on each piece.
  void encode_pieces(std::string text, std::vector<tok::Pieces::Span> spans,
                     std::vector<std::int32_t>& ids) const {
    if (text.empty()) return;
    if (text.size() > UINT32_MAX)
      throw Error(ErrorCode::InvalidArgument, "encode: a text of 4 GiB or more");
    tok::Pieces pieces{std::move(text), std::move(spans)};
    pieces.spans[0].end = static_cast<std::uint32_t>(pieces.text.size());
    if (pre_tokenizer) pre_tokenizer->split(pieces);
    for (const auto& span : pieces.spans) model->encode_word(pieces.view(span), ids);
  }

  std::string decode(std::span<const std::int32_t> ids, bool skip_special, bool raw) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const std::int32_t id : ids) {
      if (const auto it = added_by_id.find(id); it != added_by_id.end()) {
        if (!(skip_special && it->second.special)) tokens.push_back(it->second.content);
        continue;
      }
      const std::string* t = model->id_to_token(id);
      if (t == nullptr)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("decode: token id {} is not in the vocabulary (size {})", id,
                                vocab_size));
      tokens.push_back(*t);
    }
    std::string out;
    if (decoder) {
      decoder->decode_chain(tokens, raw);
      for (const std::string& t : tokens) out += t;
    } else {
      for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    }
    return out;
  }
};

namespace {

json parse_json(std::string_view text, std::string_view origin) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(ErrorCode::CorruptFile, fmt::format("{}: not valid JSON: {}", origin, e.what()));
  }
}

// Chat messages keep their key order: tojson in a template prints them in that order.
nlohmann::ordered_json parse_ordered(std::string_view text, std::string_view origin) {
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::ordered_json::parse_error& e) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: not valid JSON: {}", origin, e.what()));
  }
}

// A special token of tokenizer_config.json: a string, an AddedToken object, or null.
std::string config_token(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return tok::string_field(*it, "content", key);
  tok::bad_field(key, "expected a string, an object with \"content\", or null");
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::NotFound, fmt::format("cannot open '{}'", path.string()));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// transformers' Qwen, DeepSeek, ... tokenizers keep cleanup off; where a config turns it on,
// this is its clean_up_tokenization rule.
std::string clean_up_spaces(std::string s) {
  static const std::pair<std::string_view, std::string_view> rules[] = {
      {" .", "."},   {" ?", "?"},   {" !", "!"},     {" ,", ","},   {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : rules) {
    std::size_t at = 0;
    while ((at = s.find(from, at)) != std::string::npos) {
      s.replace(at, from.size(), to);
      at += to.size();
    }
  }
  return s;
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& dir) {
  const std::filesystem::path base(dir);
  if (model::is_gguf_file(dir)) return from_gguf(dir);
  const auto tokenizer_path = base / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path))
    throw Error(ErrorCode::NotFound,
                fmt::format("'{}' has no tokenizer.json (porta reads Hugging Face tokenizers)",
                            dir));
  const auto config_path = base / "tokenizer_config.json";
  const std::string config =
      std::filesystem::exists(config_path) ? read_file(config_path) : std::string();
  return from_json(read_file(tokenizer_path), config, tokenizer_path.string());
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json,
                               std::string_view origin) {
  auto impl = std::make_unique<Impl>();
  try {
    tok::BpeTables tables;
    const json j = tok::parse_tokenizer_json(tokenizer_json, tables);
    if (!j.is_object()) tok::bad_field("(top level)", "expected a JSON object");
    impl->model =
        std::make_unique<tok::Bpe>(tok::required(j, "model", ""), std::move(tables), "model");
    impl->normalizer = tok::make_normalizer(j.value("normalizer", json()), "normalizer");
    impl->pre_tokenizer = tok::make_pre_tokenizer(j.value("pre_tokenizer", json()), "pre_tokenizer");
    impl->post_processor =
        tok::make_post_processor(j.value("post_processor", json()), "post_processor");
    impl->decoder = tok::make_decoder(j.value("decoder", json()), "decoder");
    impl->vocab_size = impl->model->id_end();
    if (const auto added = j.find("added_tokens"); added != j.end() && !added->is_null()) {
      if (!added->is_array()) tok::bad_field("added_tokens", "expected an array");
      for (std::size_t i = 0; i < added->size(); ++i) {
        tok::AddedToken t =
            tok::parse_added_token((*added)[i], fmt::format("added_tokens[{}]", i));
        (t.normalized && impl->normalizer ? impl->normalized_added : impl->raw_added).add(t);
        impl->added_by_content.emplace(t.content, t.id);
        impl->vocab_size = std::max<std::int64_t>(impl->vocab_size, t.id + 1);
        impl->added_by_id.emplace(t.id, std::move(t));
      }
    }
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("{}: {}", origin, e.what()));
  }

  if (config_json.empty()) return Tokenizer(std::move(impl));
  const std::string config_origin = "tokenizer_config.json";
  const json config = parse_json(config_json, config_origin);
  try {
    if (!config.is_object()) tok::bad_field("(top level)", "expected a JSON object");
    impl->bos = config_token(config, "bos_token");
    impl->eos = config_token(config, "eos_token");
    for (auto [name, id] : {std::pair{&impl->bos, &impl->bos_id}, {&impl->eos, &impl->eos_id}}) {
      if (name->empty()) continue;
      *id = impl->id_of(*name);
      if (!*id)
        tok::bad_field(name == &impl->bos ? "bos_token" : "eos_token",
                       fmt::format("'{}' is not a token of tokenizer.json", *name));
    }
    if (const auto t = config.find("chat_template"); t != config.end() && !t->is_null()) {
      if (t->is_string()) {
        impl->chat_template = t->get<std::string>();
      } else if (t->is_array()) {
        // Named templates: transformers uses the one called "default".
        for (std::size_t i = 0; i < t->size(); ++i)
          if (tok::string_field((*t)[i], "name", fmt::format("chat_template[{}]", i)) == "default")
            impl->chat_template =
                tok::string_field((*t)[i], "template", fmt::format("chat_template[{}]", i));
      } else {
        tok::bad_field("chat_template", "expected a string or a list of named templates");
      }
    }
    impl->clean_up_spaces = tok::bool_or(config, "clean_up_tokenization_spaces", "", false);
    // transformers' Llama tokenizers rebuild the post-processor from add_bos_token and
    // add_eos_token (DeepSeek-V3 ships a ByteLevel one and relies on this for its BOS).
    const std::string cls = tok::string_or(config, "tokenizer_class", "", "");
    if ((cls == "LlamaTokenizerFast" || cls == "LlamaTokenizer") &&
        (config.contains("add_bos_token") || config.contains("add_eos_token"))) {
      std::vector<std::int32_t> prefix, suffix;
      if (tok::bool_or(config, "add_bos_token", "", true)) {
        if (!impl->bos_id) tok::bad_field("add_bos_token", "is true but there is no bos_token");
        prefix.push_back(*impl->bos_id);
      }
      if (tok::bool_or(config, "add_eos_token", "", false)) {
        if (!impl->eos_id) tok::bad_field("add_eos_token", "is true but there is no eos_token");
        suffix.push_back(*impl->eos_id);
      }
      impl->post_processor = tok::make_affix_processor(std::move(prefix), std::move(suffix));
    }
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("{}: {}", config_origin, e.what()));
  }
  return Tokenizer(std::move(impl));
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (const std::size_t bad = tok::find_invalid_utf8(text); bad != std::string_view::npos)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("encode: the text is not valid UTF-8 (byte {})", bad));
  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const tok::Segment& s : impl_->raw_added.split(text)) {
    if (s.token >= 0)
      ids.push_back(s.token);
    else
      impl_->encode_plain(text.substr(s.begin, s.end - s.begin), s.begin == 0, ids);
  }
  if (add_special_tokens && impl_->post_processor) impl_->post_processor->process(ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens) const {
  std::string text = tok::utf8_lossy(impl_->decode(ids, skip_special_tokens, false));
  return impl_->clean_up_spaces ? clean_up_spaces(std::move(text)) : text;
}

std::string Tokenizer::decode_bytes(std::span<const std::int32_t> ids,
                                    bool skip_special_tokens) const {
  return impl_->decode(ids, skip_special_tokens, true);
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->id_of(token);
}

std::optional<std::string> Tokenizer::id_to_token(std::int32_t id) const {
  if (const auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end())
    return it->second.content;
  if (const std::string* t = impl_->model->id_to_token(id)) return *t;
  return std::nullopt;
}

bool Tokenizer::is_special(std::int32_t id) const {
  const auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && it->second.special;
}

std::int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
std::optional<std::int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<std::int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }
std::string Tokenizer::bos_token() const { return impl_->bos; }
std::string Tokenizer::eos_token() const { return impl_->eos; }
bool Tokenizer::has_chat_template() const { return !impl_->chat_template.empty(); }
std::string Tokenizer::chat_template() const { return impl_->chat_template; }

std::string Tokenizer::apply_chat_template(std::span<const ChatMessage> messages,
                                           bool add_generation_prompt) const {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  return apply_chat_template_json(list.dump(), add_generation_prompt);
}

std::string Tokenizer::apply_chat_template_json(std::string_view messages_json,
                                                bool add_generation_prompt,
                                                std::string_view extra_variables_json) const {
  if (impl_->chat_template.empty())
    throw Error(ErrorCode::NotFound, "the tokenizer has no chat_template (tokenizer_config.json)");
  const auto messages = parse_ordered(messages_json, "chat messages");
  if (!messages.is_array())
    throw Error(ErrorCode::InvalidArgument, "chat messages: expected a JSON array");
  auto variables = extra_variables_json.empty()
                       ? nlohmann::ordered_json::object()
                       : parse_ordered(extra_variables_json, "chat template variables");
  if (!variables.is_object())
    throw Error(ErrorCode::InvalidArgument, "chat template variables: expected a JSON object");
  variables["messages"] = messages;
  variables["bos_token"] = impl_->bos;
  variables["eos_token"] = impl_->eos;
  variables["add_generation_prompt"] = add_generation_prompt;
  return tok::ChatTemplate(impl_->chat_template).render(variables);
}

}  // namespace porta

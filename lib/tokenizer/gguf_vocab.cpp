// The pre-tokenizer names of GGUF files and the tokenizer.json components they stand for. The
// patterns are those of the families' published tokenizer.json files.
#include "gguf_vocab.hpp"

namespace porta::tok {

namespace {

json split(std::string_view regex) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", std::string(regex)}}},
          {"behavior", "Isolated"},
          {"invert", false}};
}

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", false},
          {"use_regex", use_regex}};
}

json sequence(std::initializer_list<json> parts) {
  json list = json::array();
  for (const json& p : parts) list.push_back(p);
  return {{"type", "Sequence"}, {"pretokenizers", std::move(list)}};
}

// What a pre-tokenizer splits on, in order: the regexes of its Splits and whether ByteLevel
// applies GPT-2's (offsets and prefix-space flags do not change the split).
void signature(const json& j, std::vector<std::string>& out) {
  if (!j.is_object()) return;
  const std::string type = j.value("type", "");
  if (type == "Sequence" && j.contains("pretokenizers") && j["pretokenizers"].is_array()) {
    for (const json& p : j["pretokenizers"]) signature(p, out);
  } else if (type == "Split" && j.contains("pattern") && j["pattern"].is_object()) {
    const json& p = j["pattern"];
    out.push_back(p.contains("Regex") ? "regex:" + p["Regex"].dump() : "string:" + p.dump());
    out.push_back("behavior:" + j.value("behavior", "") +
                  (j.value("invert", false) ? ",inverted" : ""));
  } else if (type == "ByteLevel") {
    out.push_back(j.value("use_regex", true) ? "bytelevel:gpt2" : "bytelevel");
  } else {
    out.push_back("other:" + j.dump());
  }
}

}  // namespace

const std::vector<GgufPreTokenizer>& gguf_pre_tokenizers() {
  static const std::vector<GgufPreTokenizer> table = [] {
    std::vector<GgufPreTokenizer> t;
    t.push_back({{"gpt-2", "default", "gpt2"}, json(), byte_level(true), false});
    t.push_back({{"llama-bpe", "llama3"},
                 json(),
                 sequence({split(R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|)"
                                 R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
                           byte_level(false)}),
                 true});
    t.push_back({{"qwen2"},
                 json{{"type", "NFC"}},
                 sequence({split(R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|)"
                                 R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
                           byte_level(false)}),
                 false});
    t.push_back(
        {{"deepseek-v3"},
         json(),
         sequence({split(R"(\p{N}{1,3})"),
                   split("[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+"),
                   split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|"
                         "[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|"
                         "\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
                   byte_level(false)}),
         false});
    return t;
  }();
  return table;
}

const GgufPreTokenizer& gguf_pre_tokenizer(std::string_view name) {
  std::string known;
  for (const GgufPreTokenizer& p : gguf_pre_tokenizers())
    for (const std::string& n : p.names) {
      if (n == name) return p;
      known += (known.empty() ? "" : ", ") + n;
    }
  throw Error(ErrorCode::NotFound,
              fmt::format("pre-tokenizer '{}' is not one porta knows (known: {})", name, known));
}

const GgufPreTokenizer* match_gguf_pre_tokenizer(const json& pre_tokenizer) {
  std::vector<std::string> wanted;
  signature(pre_tokenizer, wanted);
  for (const GgufPreTokenizer& p : gguf_pre_tokenizers()) {
    std::vector<std::string> have;
    signature(p.pre_tokenizer, have);
    if (have == wanted) return &p;
  }
  return nullptr;
}

}  // namespace porta::tok

// Tokenizers written by the tests, small enough to work out by hand: a Mixtral-style one
// (Prepend + Replace normalizer, BPE with byte_fallback and fuse_unk, the Replace / ByteFallback /
// Fuse / Strip decoder, a TemplateProcessing BOS), the same with the legacy Metaspace pre-tokenizer
// and decoder, and a GPT-2-style byte-level one. Expected ids follow from the merge ranks.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/tokenizer.hpp>

#include "tokenizer/tokenizer_test_support.hpp"

namespace porta::test::tokenizer_tiny_tokenizer_tests {
namespace {

using nlohmann::json;
using Ids = std::vector<std::int32_t>;

const std::string kSpace = "\xE2\x96\x81";  // ▁

json added(int id, const std::string& content) {
  return {{"id", id},         {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

// ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, ▁ 259, h 260, e 261, l 262, o 263,
// ▁h 264, ll 265, ▁he 266, llo 267, ▁hello 268, w 269, r 270, d 271.
json mixtral_style(bool byte_fallback = true, bool fuse_unk = true) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  const std::vector<std::string> rest = {kSpace,       "h",  "e",    "l", "o",   kSpace + "h",
                                         "ll",         kSpace + "he", "llo", kSpace + "hello",
                                         "w",          "r",  "d"};
  for (std::size_t k = 0; k < rest.size(); ++k) vocab[rest[k]] = 259 + static_cast<int>(k);
  return {
      {"version", "1.0"},
      {"added_tokens", {added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", kSpace}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"fuse_unk", fuse_unk},
        {"byte_fallback", byte_fallback},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges",
         {kSpace + " h", "l l", kSpace + "h e", "ll o", kSpace + "he llo"}}}}};
}

const std::string kMixtralConfig = R"({"bos_token": "<s>", "eos_token": "</s>",
  "tokenizer_class": "LlamaTokenizer", "add_bos_token": true, "add_eos_token": false})";

TEST_CASE("a Mixtral-style tokenizer: Prepend/Replace, byte fallback, BOS", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::from_json(mixtral_style().dump(), kMixtralConfig);
  CHECK(tok.vocab_size() == 272);
  CHECK(tok.encode("hello") == Ids{1, 268});
  CHECK(tok.encode("hello world") == Ids{1, 268, 259, 269, 263, 270, 262, 271});
  CHECK(tok.encode("hello world", false) == Ids{268, 259, 269, 263, 270, 262, 271});
  // é is not in the vocabulary: its two UTF-8 bytes 0xC3 0xA9 become <0xC3> <0xA9>.
  CHECK(tok.encode("hé", false) == Ids{264, 3 + 0xC3, 3 + 0xA9});
  CHECK(tok.decode(Ids{264, 3 + 0xC3, 3 + 0xA9}) == "hé");
  // A lone continuation byte is not UTF-8: ByteFallback gives one U+FFFD per byte.
  CHECK(tok.decode(Ids{264, 3 + 0xA9, 3 + 0xA9}) == "h\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(tok.decode(Ids{1, 268, 259, 269, 263, 270, 262, 271}, true) == "hello world");
  CHECK(tok.decode(Ids{1, 268}, false) == "<s> hello");
  // Added tokens are cut out first; the Prepend normalizer then applies to each stretch.
  CHECK(tok.encode("hi</s>", false) == Ids{264, 3 + 'i', 2});
  CHECK(tok.encode("</s>ho", false) == Ids{2, 264, 263});
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.token_to_id(kSpace + "hello") == 268);
  CHECK(tok.id_to_token(3 + 0x41) == "<0x41>");
}

TEST_CASE("unknown characters become <unk>, fused or not", "[tokenizer]") {
  const Tokenizer fused = Tokenizer::from_json(mixtral_style(false, true).dump());
  CHECK(fused.encode("h€€", false) == Ids{264, 0});
  const Tokenizer unfused = Tokenizer::from_json(mixtral_style(false, false).dump());
  CHECK(unfused.encode("h€€", false) == Ids{264, 0, 0});
  // tokenizer.json's own TemplateProcessing adds the BOS, config or not.
  CHECK(unfused.encode("hello", true) == Ids{1, 268});
}

TEST_CASE("the legacy Metaspace pre-tokenizer and decoder", "[tokenizer]") {
  json j = mixtral_style();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"},
                        {"replacement", kSpace},
                        {"prepend_scheme", "first"},
                        {"split", true}};
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "first"}};
  const Tokenizer tok = Tokenizer::from_json(j.dump());
  CHECK(tok.encode("hello world", false) == Ids{268, 259, 269, 263, 270, 262, 271});
  // "first": only the stretch at the start of the text gets the ▁; after </s> there is none.
  CHECK(tok.encode("</s>hello", false) == Ids{2, 260, 261, 267});
  CHECK(tok.decode(Ids{268, 259, 269}) == "hello w");
  CHECK(tok.decode(Ids{260, 268}) == "h hello");
  j["pre_tokenizer"]["prepend_scheme"] = "always";
  CHECK(Tokenizer::from_json(j.dump()).encode("</s>hello", false) == Ids{2, 268});
}

// GPT-2's byte-to-character map, written from its definition: printable Latin-1 bytes stand for
// themselves, the other 68 take U+0100 onwards in byte order.
std::string byte_char(int b) {
  int next = 256;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    const int c = printable ? x : next++;
    if (x == b) {
      std::string s;
      if (c < 0x80) {
        s += static_cast<char>(c);
      } else {
        s += static_cast<char>(0xC0 | (c >> 6));
        s += static_cast<char>(0x80 | (c & 0x3F));
      }
      return s;
    }
  }
  return "";
}

// ids: byte b -> b; Ġt 256, he 257, Ġthe 258; <|end|> 259 (special).
json byte_level_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::string g = byte_char(' ');
  vocab[g + "t"] = 256;
  vocab["he"] = 257;
  vocab[g + "the"] = 258;
  return {{"added_tokens", {added(259, "<|end|>")}},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer",
           {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"post_processor", {{"type", "ByteLevel"}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            {"merges", json::array({json::array({g, "t"}), json::array({"h", "e"}),
                                    json::array({g + "t", "he"})})}}}};
}

TEST_CASE("a byte-level tokenizer: GPT-2 regex, NFC, raw bytes", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::from_json(byte_level_tokenizer().dump());
  CHECK(tok.encode(" the", false) == Ids{258});
  CHECK(tok.encode("the the", false) == Ids{'t', 257, 258});
  // NFC composes e + U+0301 into é (0xC3 0xA9) before the bytes are taken.
  CHECK(tok.encode("e\xCC\x81", false) == Ids{0xC3, 0xA9});
  CHECK(tok.encode("the<|end|>", false) == Ids{'t', 257, 259});
  CHECK(tok.decode(Ids{'t', 257, 258, 259}) == "the the<|end|>");
  CHECK(tok.decode(Ids{'t', 257, 259}, true) == "the");
  CHECK(tok.decode(Ids{0xC3}) == "\xEF\xBF\xBD");
  CHECK(tok.encode("\n\t ", false) == Ids{'\n', '\t', ' '});
}

TEST_CASE("the streaming decoder holds a character until all its bytes arrived", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::from_json(byte_level_tokenizer().dump());
  StreamDecoder stream(tok);
  CHECK(stream.push('t') == "t");
  CHECK(stream.push(0xE2).empty());  // € is E2 82 AC
  CHECK(stream.push(0x82).empty());
  CHECK(stream.push(0xAC) == "€");
  CHECK(stream.push(258) == " the");
  CHECK(stream.push(259).empty());  // special tokens are skipped by default
  CHECK(stream.push(0xC3).empty());
  CHECK(stream.finish() == "\xEF\xBF\xBD");  // an unfinished character at the end

  const Tokenizer mixtral = Tokenizer::from_json(mixtral_style().dump());
  StreamDecoder words(mixtral);
  std::string text;
  for (const std::int32_t id : mixtral.encode("hello wé hello", false)) text += words.push(id);
  text += words.finish();
  CHECK(text == "hello wé hello");
}

TEST_CASE("added tokens honour lstrip, rstrip and single_word", "[tokenizer]") {
  json j = byte_level_tokenizer();
  j["added_tokens"] = {{{"id", 259}, {"content", "<|end|>"}, {"lstrip", true}, {"rstrip", true},
                        {"special", true}, {"normalized", false}, {"single_word", false}},
                       {{"id", 260}, {"content", "he"}, {"single_word", true},
                        {"special", false}, {"normalized", false}}};
  const Tokenizer tok = Tokenizer::from_json(j.dump());
  CHECK(tok.encode("t  <|end|> t", false) == Ids{'t', 259, 't'});
  // "he" alone is the added token; inside "the" it is not a word of its own.
  CHECK(tok.encode("he", false) == Ids{260});
  CHECK(tok.encode("the", false) == Ids{'t', 257});
  CHECK(tok.vocab_size() == 261);
}

}  // namespace
}  // namespace porta::test::tokenizer_tiny_tokenizer_tests

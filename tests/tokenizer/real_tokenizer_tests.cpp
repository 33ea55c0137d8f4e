// The real DeepSeek-V3 and Qwen3 tokenizers against cases.jsonl, whose expected ids come from an
// independent implementation (transformers.js): every text encodes to exactly those ids and
// decodes back; DeepSeek-V3's chat renderings match byte for byte.
#include <chrono>

#include <porta/tokenizer.hpp>

#include "tokenizer/tokenizer_test_support.hpp"

namespace porta::test::tokenizer_real_tokenizer_tests {
namespace {

void check_text_cases(const std::string& name, std::size_t expected_cases) {
  const std::string dir = tokenizer_data_dir(name);
  if (dir.empty()) return;
  const Tokenizer tok = Tokenizer::load(dir);
  std::size_t checked = 0;
  for (const auto& c : read_cases(dir)) {
    if (!c.contains("text")) continue;
    const std::string text = c["text"];
    const auto expected = c["ids"].get<std::vector<std::int32_t>>();
    INFO(name << " text: " << text);
    CHECK(tok.encode(text, false) == expected);
    CHECK(tok.decode(expected) == c["decoded"].get<std::string>());
    ++checked;
  }
  CHECK(checked == expected_cases);
}

TEST_CASE("DeepSeek-V3's tokenizer encodes and decodes every case exactly", "[tokenizer]") {
  check_text_cases("deepseek_v3", 29);
}

TEST_CASE("Qwen3's tokenizer encodes and decodes every case exactly", "[tokenizer]") {
  check_text_cases("qwen3", 29);
}

TEST_CASE("DeepSeek-V3's chat template renders the cases byte for byte", "[tokenizer]") {
  const std::string dir = tokenizer_data_dir("deepseek_v3");
  if (dir.empty()) return;
  const Tokenizer tok = Tokenizer::load(dir);
  std::size_t checked = 0;
  for (const auto& c : read_cases(dir)) {
    if (!c.contains("chat")) continue;
    const std::string rendered =
        tok.apply_chat_template_json(c["chat"].dump(), c["add_generation_prompt"].get<bool>());
    CHECK(rendered == c["rendered"].get<std::string>());
    CHECK(tok.encode(rendered, false) == c["ids"].get<std::vector<std::int32_t>>());
    ++checked;
  }
  CHECK(checked == 2);
}

TEST_CASE("the real tokenizers know their special tokens", "[tokenizer]") {
  const std::string ds = tokenizer_data_dir("deepseek_v3");
  if (!ds.empty()) {
    const Tokenizer tok = Tokenizer::load(ds);
    CHECK(tok.vocab_size() == 128815);
    CHECK(tok.bos_id() == 0);
    CHECK(tok.eos_id() == 1);
    CHECK(tok.bos_token() == "<｜begin▁of▁sentence｜>");
    CHECK(tok.token_to_id("<｜User｜>") == 128803);
    CHECK(tok.id_to_token(128804) == "<｜Assistant｜>");
    CHECK(tok.is_special(0));
    CHECK_FALSE(tok.is_special(19923));
    // transformers' LlamaTokenizerFast adds the BOS (add_bos_token) when asked for special tokens.
    CHECK(tok.encode("Hello, world!", true) == std::vector<std::int32_t>{0, 19923, 14, 2058, 3});
    CHECK(tok.decode(std::vector<std::int32_t>{0, 19923, 14, 2058, 3, 1}, true) == "Hello, world!");
  }
  const std::string qwen = tokenizer_data_dir("qwen3");
  if (!qwen.empty()) {
    const Tokenizer tok = Tokenizer::load(qwen);
    CHECK(tok.vocab_size() == 151669);
    CHECK_FALSE(tok.bos_id().has_value());
    CHECK(tok.eos_id() == 151645);
    CHECK(tok.encode("<|im_start|>user", true) == tok.encode("<|im_start|>user", false));
    CHECK(tok.encode("<|im_start|>", false) == std::vector<std::int32_t>{151644});
  }
}

TEST_CASE("the streaming decoder rebuilds the real cases without splitting a character",
          "[tokenizer]") {
  for (const std::string name : {"deepseek_v3", "qwen3"}) {
    const std::string dir = tokenizer_data_dir(name);
    if (dir.empty()) continue;
    const Tokenizer tok = Tokenizer::load(dir);
    for (const auto& c : read_cases(dir)) {
      if (!c.contains("text")) continue;
      StreamDecoder stream(tok, false);
      std::string text;
      for (const std::int32_t id : c["ids"].get<std::vector<std::int32_t>>()) {
        const std::string piece = stream.push(id);
        // Each piece is whole UTF-8 on its own: no U+FFFD from a split character.
        CHECK(piece.find("\xEF\xBF\xBD") == std::string::npos);
        text += piece;
      }
      text += stream.finish();
      CHECK(text == c["decoded"].get<std::string>());
    }
  }
}

}  // namespace
}  // namespace porta::test::tokenizer_real_tokenizer_tests

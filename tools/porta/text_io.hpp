// Text prompts and streamed text output for `porta run --prompt` and `porta chat`: encoding a
// prompt with the model directory's tokenizer, and printing generated tokens as text as soon as
// their characters are complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <porta/tokenizer.hpp>

namespace porta::cli {

// `text` encoded with DIR's tokenizer (with its BOS); with `chat_template`, first wrapped as one
// user message in the model's chat template.
std::vector<std::int32_t> encode_text_prompt(const Tokenizer& tokenizer, const std::string& text,
                                             bool chat_template);

// Prints each token's text to stdout as it completes (flushing), and keeps the whole text.
class TextStreamer {
 public:
  explicit TextStreamer(const Tokenizer& tokenizer) : decoder_(tokenizer) {}
  void push(std::int32_t id);
  void finish();
  const std::string& text() const { return text_; }

 private:
  void emit(const std::string& piece);
  StreamDecoder decoder_;
  std::string text_;
};

// `s` with newlines, tabs and other control characters escaped, in double quotes.
std::string quoted(const std::string& s);

}  // namespace porta::cli

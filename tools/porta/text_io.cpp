// Text prompts and streamed output shared by `porta run`, `porta chat` and `porta tokenize`.
#include "text_io.hpp"

#include <cstdio>

#include <fmt/format.h>

namespace porta::cli {

std::vector<std::int32_t> encode_text_prompt(const Tokenizer& tokenizer, const std::string& text,
                                             bool chat_template) {
  if (!chat_template) return tokenizer.encode(text, true);
  const ChatMessage message{"user", text};
  // The template writes the BOS itself, as transformers' apply_chat_template assumes.
  return tokenizer.encode(tokenizer.apply_chat_template({&message, 1}, true), false);
}

void TextStreamer::push(std::int32_t id) { emit(decoder_.push(id)); }

void TextStreamer::finish() { emit(decoder_.finish()); }

void TextStreamer::emit(const std::string& piece) {
  if (piece.empty()) return;
  text_ += piece;
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  return out + "\"";
}

}  // namespace porta::cli

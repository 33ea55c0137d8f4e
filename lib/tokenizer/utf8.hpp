// UTF-8 helpers the tokenizer needs on hot paths (no allocation, no locale).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace porta::tok {

// Length of the UTF-8 sequence a lead byte starts (1 for a stray continuation byte, so that
// loops always advance).
inline std::size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i past it.
inline char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  const std::size_t n = std::min(utf8_length(b0), s.size() - i);
  char32_t c = n == 1 ? b0 : (n == 2 ? b0 & 0x1F : (n == 3 ? b0 & 0x0F : b0 & 0x07));
  for (std::size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return c;
}

void append_utf8(std::string& out, char32_t c);

// The byte offset of the first invalid sequence, or npos when `s` is valid UTF-8.
std::size_t find_invalid_utf8(std::string_view s);

// Bytes at the end of `s` that start a UTF-8 sequence not yet complete (0 when none).
std::size_t incomplete_utf8_tail(std::string_view s);

// `s` with every invalid sequence replaced by U+FFFD, as Rust's from_utf8_lossy does.
std::string utf8_lossy(std::string_view s);

// Unicode general category tests through utf8proc.
bool is_whitespace(char32_t c);
bool is_alphanumeric(char32_t c);

}  // namespace porta::tok

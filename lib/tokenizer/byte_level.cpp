// The byte-level alphabet tables, built once.
#include "byte_level.hpp"

#include "utf8.hpp"

namespace porta::tok {

const ByteLevelTables& byte_level_tables() {
  static const ByteLevelTables tables = [] {
    ByteLevelTables t;
    t.char_to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const int c = printable ? b : next++;
      append_utf8(t.byte_to_utf8[static_cast<std::size_t>(b)], static_cast<char32_t>(c));
      t.char_to_byte[static_cast<std::size_t>(c)] = b;
    }
    return t;
  }();
  return tables;
}

std::string byte_level_encode(std::string_view bytes) {
  const auto& t = byte_level_tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char ch : bytes) out.append(t.byte_to_utf8[static_cast<unsigned char>(ch)]);
  return out;
}

bool byte_level_decode(std::string_view text, std::string& out) {
  const auto& t = byte_level_tables();
  const std::size_t mark = out.size();
  std::size_t i = 0;
  while (i < text.size()) {
    const char32_t c = next_code_point(text, i);
    if (c >= t.char_to_byte.size() || t.char_to_byte[c] < 0) {
      out.resize(mark);
      return false;
    }
    out.push_back(static_cast<char>(t.char_to_byte[c]));
  }
  return true;
}

}  // namespace porta::tok

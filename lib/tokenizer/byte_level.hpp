// GPT-2's byte-level alphabet: each of the 256 byte values is shown as a printable Unicode
// character (the printable Latin-1 bytes as themselves, the rest as U+0100 onwards), so that
// BPE vocabularies can spell any byte sequence as text.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace porta::tok {

struct ByteLevelTables {
  std::array<std::string, 256> byte_to_utf8;  // byte -> the UTF-8 of its character
  std::array<int, 0x180> char_to_byte;        // code point -> byte, -1 when not in the alphabet
};

const ByteLevelTables& byte_level_tables();

// Every byte of `bytes` as its alphabet character.
std::string byte_level_encode(std::string_view bytes);
// The inverse; false (and `out` unchanged) when a character is not in the alphabet.
bool byte_level_decode(std::string_view text, std::string& out);

}  // namespace porta::tok

// Reading tokenizer.json in one streaming (SAX) pass: the BPE vocabulary and merges, which are
// most of the file (128k + 127k entries for DeepSeek-V3), go straight into flat tables; the rest
// becomes an ordinary JSON tree. A DOM of the whole file costs several times more to build and
// to free than the tokenizer's own tables.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "json_fields.hpp"

namespace porta::tok {

struct BpeTables {
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  bool has_vocab = false, has_merges = false;
};

// The tree of `text` without model.vocab and model.merges, which land in `tables`. Throws
// porta::Error (CorruptFile) naming the field for malformed JSON or a malformed entry.
json parse_tokenizer_json(std::string_view text, BpeTables& tables);

}  // namespace porta::tok

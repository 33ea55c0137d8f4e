// How Split-style pre-tokenizers turn matches into pieces (Hugging Face's SplitDelimiterBehavior).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace porta::tok {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Parses "Removed", "Isolated", ...; throws naming `path` otherwise.
SplitBehavior parse_split_behavior(std::string_view name, std::string_view path);

struct Span {
  std::size_t begin = 0, end = 0;
  bool is_match = false;
};

// The pieces of a text covered by `spans` (consecutive, covering it all) under `behavior`,
// empty pieces dropped.
std::vector<Span> apply_split_behavior(const std::vector<Span>& spans, SplitBehavior behavior);

}  // namespace porta::tok

// The five split behaviours, as tokenizers' NormalizedString::split defines them.
#include "split.hpp"

#include <algorithm>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::tok {

SplitBehavior parse_split_behavior(std::string_view name, std::string_view path) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  throw Error(ErrorCode::CorruptFile,
              fmt::format("{}: unknown split behavior '{}' (expected Removed, Isolated, "
                          "MergedWithPrevious, MergedWithNext or Contiguous)",
                          path, name));
}

std::vector<Span> apply_split_behavior(const std::vector<Span>& spans, SplitBehavior behavior) {
  std::vector<Span> out;
  out.reserve(spans.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      out = spans;
      break;
    case SplitBehavior::Removed:
      for (const Span& s : spans)
        if (!s.is_match) out.push_back(s);
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty())
          out.back().end = s.end;
        else
          out.push_back(s);
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty())
          out.back().begin = it->begin;
        else
          out.push_back(*it);
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::Contiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty())
          out.back().end = s.end;
        else
          out.push_back(s);
        previous_match = s.is_match;
      }
      break;
  }
  std::erase_if(out, [](const Span& s) { return s.begin == s.end; });
  return out;
}

}  // namespace porta::tok

// A compiled PCRE2 pattern (UTF + UCP, JIT when available) with the operations porta needs: every
// non-overlapping match, left to right (the tokenizer), and an anchored match (the module patterns
// of quantized checkpoints' configs, which are Python regexes).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace porta::tok {

class Regex {
 public:
  // Throws porta::Error (CorruptFile) naming `field` and PCRE2's message when it does not compile.
  Regex(std::string_view pattern, std::string_view field);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(begin, end) for every match in `text` (valid UTF-8), empty ones included.
  void for_each_match(std::string_view text,
                      const std::function<void(std::size_t, std::size_t)>& on_match) const;
  // The same matches appended to `out` as (begin, end) pairs (no call per match).
  void find_all(std::string_view text,
                std::vector<std::pair<std::size_t, std::size_t>>& out) const;

  // Whether a match starts at the beginning of `text` (Python's re.match; it need not reach the end).
  bool matches_at_start(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::string field_;
  void* code_ = nullptr;  // pcre2_code_8
  bool jit_ = false;
};

// `text` escaped so that PCRE2 matches it literally.
std::string regex_escape(std::string_view text);

}  // namespace porta::tok

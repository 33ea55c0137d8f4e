// PCRE2 behind porta::tok::Regex. Hugging Face's tokenizers use Oniguruma; with PCRE2_UTF and
// PCRE2_UCP, \s, \w, \d and \p{..} follow Unicode properties the same way for the patterns
// tokenizer.json files carry.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.hpp"

#include <pcre2.h>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::tok {

namespace {

// One JIT stack and match block per thread, reused across calls: a tokenizer matches millions
// of times and each allocation would cost more than the match.
struct ThreadMatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  ThreadMatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~ThreadMatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};

ThreadMatchState& match_state() {
  thread_local ThreadMatchState state;
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

Regex::Regex(std::string_view pattern, std::string_view field)
    : pattern_(pattern), field_(field) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()), pattern_.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (code == nullptr)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("{}: the regex '{}' does not compile at offset {}: {}", field_,
                            pattern_, offset, pcre2_message(error)));
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view text,
                     std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  ThreadMatchState& state = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  PCRE2_SIZE start = 0;
  while (start <= text.size()) {
    const int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), start, 0, state.data,
                                          state.context)
                        : pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                                      state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: matching the regex '{}' failed: {}", field_, pattern_,
                              pcre2_message(rc)));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
    const std::size_t begin = ovector[0], end = ovector[1];
    out.emplace_back(begin, end);
    if (end > begin) {
      start = end;
    } else {
      // An empty match: step over one character so that the scan moves on.
      if (end >= text.size()) return;
      start = end + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
        ++start;
    }
  }
}

bool Regex::matches_at_start(std::string_view text) const {
  ThreadMatchState& state = match_state();
  // PCRE2_ANCHORED at match time runs the interpreter rather than the JIT code: these patterns
  // are matched a few thousand times per checkpoint, not millions.
  const int rc = pcre2_match(static_cast<pcre2_code*>(code_),
                             reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                             PCRE2_ANCHORED, state.data, state.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: matching the regex '{}' failed: {}", field_, pattern_,
                            pcre2_message(rc)));
  return true;
}

void Regex::for_each_match(std::string_view text,
                           const std::function<void(std::size_t, std::size_t)>& on_match) const {
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  find_all(text, matches);
  for (const auto& [begin, end] : matches) on_match(begin, end);
}

std::string regex_escape(std::string_view text) {
  std::string out = "\\Q";
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t e = text.find("\\E", i);
    if (e == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, e - i));
    out.append("\\E\\\\E\\Q");
    i = e + 2;
  }
  out.append("\\E");
  return out;
}

}  // namespace porta::tok

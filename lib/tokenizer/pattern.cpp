// The pattern objects Split and Replace share: a literal string or a regex.
#include <string>

#include "components.hpp"
#include "regex.hpp"

namespace porta::tok {

std::unique_ptr<Regex> make_pattern(const json& j, const std::string& path) {
  if (!j.is_object() || j.size() != 1)
    bad_field(path, "expected {\"String\": ...} or {\"Regex\": ...}");
  if (j.contains("String")) {
    const json& s = j["String"];
    if (!s.is_string()) bad_field(path + ".String", "expected a string");
    return std::make_unique<Regex>(regex_escape(s.get<std::string>()), path + ".String");
  }
  if (j.contains("Regex")) {
    const json& r = j["Regex"];
    if (!r.is_string()) bad_field(path + ".Regex", "expected a string");
    return std::make_unique<Regex>(r.get<std::string>(), path + ".Regex");
  }
  bad_field(path, fmt::format("unknown pattern kind '{}' (expected String or Regex)",
                              j.begin().key()));
}

std::string replace_all(const Regex& pattern, const std::string& text, const std::string& content) {
  std::string out;
  std::size_t last = 0;
  pattern.for_each_match(text, [&](std::size_t begin, std::size_t end) {
    if (end == begin) return;  // Hugging Face's replace skips empty matches
    out.append(text, last, begin - last);
    out.append(content);
    last = end;
  });
  out.append(text, last, std::string::npos);
  return out;
}

}  // namespace porta::tok

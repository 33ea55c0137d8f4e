// Pre-tokenizers: Split, ByteLevel, Digits, Metaspace, Whitespace, WhitespaceSplit and Sequence.

#include "byte_level.hpp"
#include "components.hpp"
#include "regex.hpp"
#include "split.hpp"
#include "utf8.hpp"

namespace porta::tok {

namespace {

// GPT-2's pattern, which ByteLevel applies when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Match spans of one piece, relative to it; reused across pieces.
thread_local std::vector<Span> t_spans;

// Splits every piece at the spans `find` reports (matches and the gaps between them, covering
// the piece): only ranges change, the text stays where it is.
template <class Find>
void split_pieces(Pieces& pieces, SplitBehavior behavior, bool invert, Find&& find) {
  std::vector<Pieces::Span> out;
  out.reserve(pieces.spans.size() * 2);
  for (const Pieces::Span& piece : pieces.spans) {
    std::vector<Span>& spans = t_spans;
    spans.clear();
    find(pieces.view(piece), spans);
    if (invert)
      for (Span& s : spans) s.is_match = !s.is_match;
    for (const Span& s : apply_split_behavior(spans, behavior))
      out.push_back({piece.begin + static_cast<std::uint32_t>(s.begin),
                     piece.begin + static_cast<std::uint32_t>(s.end),
                     piece.at_start && s.begin == 0});
  }
  pieces.spans = std::move(out);
}

// Rewrites every piece's text into a new buffer: write(piece, span, out) appends its new text.
template <class Write>
void rewrite_pieces(Pieces& pieces, Write&& write) {
  std::string text;
  text.reserve(pieces.text.size() + pieces.text.size() / 2 + 16);
  for (Pieces::Span& piece : pieces.spans) {
    const auto begin = static_cast<std::uint32_t>(text.size());
    write(pieces.view(piece), piece, text);
    piece.begin = begin;
    piece.end = static_cast<std::uint32_t>(text.size());
  }
  pieces.text = std::move(text);
}

// Spans of matches and the gaps between them, covering the text.
void regex_spans(const Regex& re, std::string_view text, std::vector<Span>& spans) {
  thread_local std::vector<std::pair<std::size_t, std::size_t>> matches;
  matches.clear();
  re.find_all(text, matches);
  std::size_t last = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > last) spans.push_back({last, begin, false});
    spans.push_back({begin, end, true});
    last = end;
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
}

class Split final : public PreTokenizer {
 public:
  Split(std::unique_ptr<Regex> pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void split(Pieces& pieces) const override {
    split_pieces(pieces, behavior_, invert_, [this](std::string_view text, std::vector<Span>& s) {
      regex_spans(*pattern_, text, s);
    });
  }

 private:
  std::unique_ptr<Regex> pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern, "ByteLevel");
  }
  void split(Pieces& pieces) const override {
    if (add_prefix_space_)
      rewrite_pieces(pieces, [](std::string_view piece, const Pieces::Span&, std::string& out) {
        if (piece.empty() || piece[0] != ' ') out.push_back(' ');
        out.append(piece);
      });
    if (regex_)
      split_pieces(pieces, SplitBehavior::Isolated, false,
                   [this](std::string_view text, std::vector<Span>& s) {
                     regex_spans(*regex_, text, s);
                   });
    const auto& table = byte_level_tables().byte_to_utf8;
    rewrite_pieces(pieces, [&table](std::string_view piece, const Pieces::Span&, std::string& out) {
      for (const char c : piece) out.append(table[static_cast<unsigned char>(c)]);
    });
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class Digits final : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void split(Pieces& pieces) const override {
    split_pieces(pieces, individual_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false,
                 [](std::string_view text, std::vector<Span>& s) {
                   std::size_t i = 0;
                   while (i < text.size()) {
                     const std::size_t begin = i;
                     const char32_t c = next_code_point(text, i);
                     s.push_back({begin, i, c >= '0' && c <= '9'});
                   }
                 });
  }

 private:
  bool individual_;
};

enum class PrependScheme { Always, First, Never };

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void split(Pieces& pieces) const override {
    rewrite_pieces(pieces, [this](std::string_view piece, const Pieces::Span& span,
                                  std::string& out) {
      const bool starts = piece.starts_with(' ') || piece.starts_with(replacement_);
      if (!starts && (scheme_ == PrependScheme::Always ||
                      (scheme_ == PrependScheme::First && span.at_start)))
        out.append(replacement_);
      for (const char c : piece) {
        if (c == ' ')
          out.append(replacement_);
        else
          out.push_back(c);
      }
    });
    if (!split_) return;
    split_pieces(pieces, SplitBehavior::MergedWithNext, false,
                 [this](std::string_view text, std::vector<Span>& s) {
                   std::size_t last = 0, at = 0;
                   while ((at = text.find(replacement_, last)) != std::string_view::npos) {
                     if (at > last) s.push_back({last, at, false});
                     s.push_back({at, at + replacement_.size(), true});
                     last = at + replacement_.size();
                   }
                   if (last < text.size()) s.push_back({last, text.size(), false});
                 });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

// Whitespace keeps the \w+ and [^\w\s]+ runs; WhitespaceSplit cuts at whitespace.
class RegexKeep final : public PreTokenizer {
 public:
  RegexKeep(std::string_view pattern, SplitBehavior behavior, bool invert, std::string_view name)
      : regex_(pattern, name), behavior_(behavior), invert_(invert) {}
  void split(Pieces& pieces) const override {
    split_pieces(pieces, behavior_, invert_, [this](std::string_view text, std::vector<Span>& s) {
      regex_spans(regex_, text, s);
    });
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void split(Pieces& pieces) const override {
    for (const auto& p : parts_) p->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, path);
  if (type == "Split")
    return std::make_unique<Split>(
        make_pattern(required(j, "pattern", path), path + ".pattern"),
        parse_split_behavior(string_field(j, "behavior", path), path + ".behavior"),
        bool_or(j, "invert", path, false));
  if (type == "ByteLevel")
    return std::make_unique<ByteLevel>(bool_or(j, "add_prefix_space", path, true),
                                       bool_or(j, "use_regex", path, true));
  if (type == "Digits")
    return std::make_unique<Digits>(bool_or(j, "individual_digits", path, false));
  if (type == "Metaspace") {
    std::string replacement = string_or(j, "replacement", path, "\xE2\x96\x81");
    if (replacement.empty() || utf8_length(static_cast<unsigned char>(replacement[0])) !=
                                   replacement.size())
      bad_field(path + ".replacement", "expected a single character");
    PrependScheme scheme = bool_or(j, "add_prefix_space", path, true) ? PrependScheme::Always
                                                                       : PrependScheme::Never;
    const std::string name = string_or(j, "prepend_scheme", path, "");
    if (name == "always")
      scheme = PrependScheme::Always;
    else if (name == "first")
      scheme = PrependScheme::First;
    else if (name == "never")
      scheme = PrependScheme::Never;
    else if (!name.empty())
      bad_field(path + ".prepend_scheme",
                fmt::format("unknown scheme '{}' (expected always, first or never)", name));
    return std::make_unique<Metaspace>(std::move(replacement), scheme,
                                       bool_or(j, "split", path, true));
  }
  if (type == "Whitespace")
    return std::make_unique<RegexKeep>(R"(\w+|[^\w\s]+)", SplitBehavior::Removed, true, path);
  if (type == "WhitespaceSplit")
    return std::make_unique<RegexKeep>(R"(\s+)", SplitBehavior::Removed, false, path);
  if (type == "Sequence") {
    const json& list = required(j, "pretokenizers", path);
    if (!list.is_array()) bad_field(path + ".pretokenizers", "expected an array");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (auto p = make_pre_tokenizer(list[i], fmt::format("{}.pretokenizers[{}]", path, i)))
        parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  bad_field(path + ".type",
            fmt::format("unsupported pre-tokenizer '{}' (supported: Split, ByteLevel, Digits, "
                        "Metaspace, Whitespace, WhitespaceSplit, Sequence)",
                        type));
}

}  // namespace porta::tok

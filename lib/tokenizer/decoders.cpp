// Decoders: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace and Sequence.
#include "byte_level.hpp"
#include "components.hpp"
#include "regex.hpp"
#include "utf8.hpp"

namespace porta::tok {

namespace {

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool) const override {
    // A token with a character outside the byte alphabet (an added token such as
    // "<｜User｜>") is taken as its own UTF-8, as Hugging Face does.
    for (std::string& t : tokens) {
      std::string bytes;
      if (byte_level_decode(t, bytes)) t = std::move(bytes);
    }
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens, bool) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      std::size_t at = 0, found = 0;
      while ((found = t.find(replacement_, at)) != std::string::npos) {
        out.append(t, at, found - at);
        if (!(i == 0 && strip_first_)) out.push_back(' ');
        at = found + replacement_.size();
      }
      out.append(t, at, std::string::npos);
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

// "<0x41>" -> 0x41, or -1.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = t[static_cast<std::size_t>(k)];
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                         : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool raw_bytes) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (raw_bytes || find_invalid_utf8(pending) == std::string::npos) {
        out.push_back(pending);
      } else {
        for (std::size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& t : tokens) {
      const int b = byte_token(t);
      if (b >= 0) {
        pending.push_back(static_cast<char>(b));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, std::size_t start, std::size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens, bool) const override {
    for (std::string& t : tokens) {
      std::size_t begin = 0, end = t.size();
      for (std::size_t k = 0; k < start_ && t.compare(begin, content_.size(), content_) == 0 &&
                              begin + content_.size() <= end;
           ++k)
        begin += content_.size();
      for (std::size_t k = 0; k < stop_ && end >= begin + content_.size() &&
                              t.compare(end - content_.size(), content_.size(), content_) == 0;
           ++k)
        end -= content_.size();
      t = t.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  std::size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens, bool) const override {
    for (std::string& t : tokens) {
      // Byte tokens of a split character are not valid UTF-8 and PCRE2 must not see them.
      if (find_invalid_utf8(t) == std::string::npos) t = replace_all(*pattern_, t, content_);
    }
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens, bool raw_bytes) const override {
    for (const auto& p : parts_) p->decode_chain(tokens, raw_bytes);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

std::size_t count_field(const json& j, const char* key, const std::string& path) {
  const std::int64_t n = int_or(j, key, path, 0);
  if (n < 0) bad_field(join_path(path, key), "expected a count >= 0");
  return static_cast<std::size_t>(n);
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, path);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    bool strip_first = bool_or(j, "add_prefix_space", path, true);
    const std::string scheme = string_or(j, "prepend_scheme", path, "");
    if (!scheme.empty()) strip_first = scheme != "never";
    return std::make_unique<MetaspaceDecoder>(string_or(j, "replacement", path, "\xE2\x96\x81"),
                                              strip_first);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(string_field(j, "content", path),
                                          count_field(j, "start", path),
                                          count_field(j, "stop", path));
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(
        make_pattern(required(j, "pattern", path), path + ".pattern"),
        string_field(j, "content", path));
  if (type == "Sequence") {
    const json& list = required(j, "decoders", path);
    if (!list.is_array()) bad_field(path + ".decoders", "expected an array");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (auto d = make_decoder(list[i], fmt::format("{}.decoders[{}]", path, i)))
        parts.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  bad_field(path + ".type", fmt::format("unsupported decoder '{}' (supported: ByteLevel, "
                                        "Metaspace, ByteFallback, Fuse, Strip, Replace, Sequence)",
                                        type));
}

}  // namespace porta::tok

// Added-token matching.
#include "added_vocab.hpp"

#include <algorithm>

#include "utf8.hpp"

namespace porta::tok {

AddedToken parse_added_token(const json& j, const std::string& path) {
  AddedToken t;
  t.content = string_field(j, "content", path);
  if (t.content.empty()) bad_field(path + ".content", "an added token cannot be empty");
  t.id = token_id(required(j, "id", path), path + ".id");
  t.special = bool_or(j, "special", path, false);
  t.lstrip = bool_or(j, "lstrip", path, false);
  t.rstrip = bool_or(j, "rstrip", path, false);
  t.single_word = bool_or(j, "single_word", path, false);
  t.normalized = bool_or(j, "normalized", path, !t.special);
  return t;
}

std::int32_t AddedTokenMatcher::child(std::int32_t node, unsigned char byte) const {
  if (node == 0 && root_ready_) return root_[byte];
  for (const auto& [b, next] : nodes_[static_cast<std::size_t>(node)].children)
    if (b == byte) return next;
  return -1;
}

void AddedTokenMatcher::add(const AddedToken& token) {
  root_ready_ = false;
  std::int32_t node = 0;
  for (const char ch : token.content) {
    const auto byte = static_cast<unsigned char>(ch);
    std::int32_t next = child(node, byte);
    if (next < 0) {
      next = static_cast<std::int32_t>(nodes_.size());
      nodes_[static_cast<std::size_t>(node)].children.emplace_back(byte, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  // The first token with a given content wins, as in Hugging Face's vocabulary.
  if (nodes_[static_cast<std::size_t>(node)].token < 0) {
    nodes_[static_cast<std::size_t>(node)].token = static_cast<std::int32_t>(tokens_.size());
    tokens_.push_back(token);
  }
  root_.fill(-1);
  for (const auto& [b, next] : nodes_[0].children) root_[b] = next;
  root_ready_ = true;
}

namespace {

bool word_char_before(std::string_view text, std::size_t at) {
  if (at == 0) return false;
  std::size_t start = at - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  const char32_t c = next_code_point(text, start);
  return is_alphanumeric(c) || c == '_';
}

bool word_char_at(std::string_view text, std::size_t at) {
  if (at >= text.size()) return false;
  const char32_t c = next_code_point(text, at);
  return is_alphanumeric(c) || c == '_';
}

}  // namespace

std::pair<std::size_t, std::int32_t> AddedTokenMatcher::match_at(std::string_view text,
                                                                 std::size_t at) const {
  // Terminals along the path, longest last; the longest acceptable one wins.
  std::int32_t found[8];
  std::size_t ends[8];
  int count = 0;
  std::int32_t node = 0;
  for (std::size_t i = at; i < text.size(); ++i) {
    node = child(node, static_cast<unsigned char>(text[i]));
    if (node < 0) break;
    const std::int32_t t = nodes_[static_cast<std::size_t>(node)].token;
    if (t >= 0) {
      if (count == 8) {
        std::move(found + 1, found + 8, found);
        std::move(ends + 1, ends + 8, ends);
        --count;
      }
      found[count] = t;
      ends[count++] = i + 1;
    }
  }
  for (int k = count - 1; k >= 0; --k) {
    const AddedToken& t = tokens_[static_cast<std::size_t>(found[k])];
    if (t.single_word && (word_char_before(text, at) || word_char_at(text, ends[k]))) continue;
    return {ends[k], found[k]};
  }
  return {0, -1};
}

std::vector<Segment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Segment> out;
  if (tokens_.empty()) {
    if (!text.empty()) out.push_back({0, text.size(), -1});
    return out;
  }
  std::size_t plain = 0;  // start of the pending plain stretch
  std::size_t i = 0;
  while (i < text.size()) {
    if (root_[static_cast<unsigned char>(text[i])] < 0) {
      ++i;
      continue;
    }
    const auto [end0, index] = match_at(text, i);
    if (index < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[static_cast<std::size_t>(index)];
    std::size_t begin = i, end = end0;
    if (t.lstrip) {
      while (begin > plain) {
        std::size_t start = begin - 1;
        while (start > plain && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        std::size_t k = start;
        if (!is_whitespace(next_code_point(text, k))) break;
        begin = start;
      }
    }
    if (t.rstrip) {
      while (end < text.size()) {
        std::size_t k = end;
        if (!is_whitespace(next_code_point(text, k))) break;
        end = k;
      }
    }
    if (begin > plain) out.push_back({plain, begin, -1});
    out.push_back({begin, end, t.id});
    plain = i = end;
  }
  if (plain < text.size()) out.push_back({plain, text.size(), -1});
  return out;
}

}  // namespace porta::tok

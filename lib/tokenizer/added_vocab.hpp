// Added tokens (tokenizer.json "added_tokens"): matched in the text before the model sees it,
// leftmost and longest first, with the lstrip / rstrip / single_word / normalized options of
// Hugging Face's AddedVocabulary. Matching walks a byte trie of the tokens' contents.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "json_fields.hpp"

namespace porta::tok {

struct AddedToken {
  std::string content;
  std::int32_t id = -1;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false;
  bool normalized = false;
};

AddedToken parse_added_token(const json& j, const std::string& path);

// A stretch of text, or one added token.
struct Segment {
  std::size_t begin = 0, end = 0;  // byte range of the text (the token's range, strips included)
  std::int32_t token = -1;         // the added token's id, or -1 for plain text
};

class AddedTokenMatcher {
 public:
  void add(const AddedToken& token);
  bool empty() const { return tokens_.empty(); }
  // Cuts `text` into plain stretches and added tokens.
  std::vector<Segment> split(std::string_view text) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, std::int32_t>> children;
    std::int32_t token = -1;  // index into tokens_
  };
  std::int32_t child(std::int32_t node, unsigned char byte) const;
  // The end of the longest acceptable token starting at `at` and its index, or {0, -1}.
  std::pair<std::size_t, std::int32_t> match_at(std::string_view text, std::size_t at) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_ = std::vector<Node>(1);
  std::array<std::int32_t, 256> root_{};
  bool root_ready_ = false;
};

}  // namespace porta::tok

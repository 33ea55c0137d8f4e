// The BPE model of tokenizer.json: a vocabulary, ranked merges, and the options Hugging Face's
// BPE defines (unk_token, fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix,
// end_of_word_suffix). Words are merged lowest rank first (leftmost among equal ranks) with a
// heap over a linked list of symbols; merges are found in an open-addressing map keyed on the
// pair of ids; finished words are cached.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "json_fields.hpp"
#include "string_table.hpp"
#include "tokenizer_json.hpp"

namespace porta::tok {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

using Vocab = std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>>;

// (left id, right id) -> (rank, merged id), open addressing with linear probing.
class PairMap {
 public:
  struct Merge {
    std::int32_t rank = -1;
    std::int32_t id = -1;
  };
  void reserve(std::size_t n);
  // False when the pair is already there (a duplicate merge keeps its first, lowest rank).
  bool insert(std::int32_t left, std::int32_t right, Merge merge);
  const Merge* find(std::int32_t left, std::int32_t right) const {
    const std::uint64_t key = pack(left, right);
    for (std::size_t i = slot(key);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.key == key) return &e.merge;
      if (e.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};
  struct Entry {
    std::uint64_t key = kEmpty;
    Merge merge;
  };
  static std::uint64_t pack(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }
  std::size_t slot(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_) & mask_;
  }
  std::vector<Entry> entries_ = std::vector<Entry>(1);
  std::size_t mask_ = 0;
  int shift_ = 63;
};

class Bpe {
 public:
  // `model` holds the options, `tables` the vocabulary and merges; `path` is "model" for error
  // messages.
  Bpe(const json& model, BpeTables tables, const std::string& path);

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<std::int32_t>& out) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(std::int32_t id) const;
  std::int64_t id_end() const { return static_cast<std::int64_t>(tokens_.size()); }

 private:
  void merge_word(std::string_view word, std::vector<std::int32_t>& out) const;
  std::int32_t symbol_id(std::string_view text) const;

  StringTable vocab_;
  std::vector<std::string> tokens_;  // id -> token ("" where no token has that id)
  std::vector<std::int32_t> char_ids_;  // code point < 0x800 -> id (-1: not a token)
  PairMap merges_;
  std::optional<std::int32_t> unk_;
  std::string prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;

  mutable std::mutex cache_mutex_;
  mutable WordCache cache_{1 << 16};
};

}  // namespace porta::tok

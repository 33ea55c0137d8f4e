// Flat hash tables for the tokenizer's hot lookups: StringTable maps token strings to ids (the
// vocabulary: one arena of bytes, open addressing, no node per entry), WordCache maps finished
// words to their ids. Both hash with a multiply-xorshift over 8-byte loads, which for the short
// keys of a vocabulary is several times cheaper than std::hash's Murmur and node chasing.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace porta::tok {

inline std::uint64_t hash_bytes(std::string_view s) {
  std::uint64_t h = 0x9E3779B97F4A7C15ULL ^ (s.size() * 0xFF51AFD7ED558CCDULL);
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
  }
  if (i < s.size()) {
    std::uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
  }
  h ^= h >> 32;
  h *= 0x9E3779B97F4A7C15ULL;
  return h ^ (h >> 29);
}

class StringTable {
 public:
  void reserve(std::size_t n);
  // Adds `key` -> `id` unless `key` is there; returns the id stored for `key`.
  std::int32_t insert(std::string_view key, std::int32_t id);
  // -1 when absent.
  std::int32_t find(std::string_view key) const {
    if (slots_.empty()) return -1;
    const std::uint64_t h = hash_bytes(key);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.hash == static_cast<std::uint32_t>(h) && s.length == key.size() &&
          std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
        return s.id;
    }
  }
  std::size_t size() const { return count_; }
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.id >= 0) f(std::string_view(arena_.data() + s.offset, s.length), s.id);
  }

 private:
  struct Slot {
    std::uint32_t offset = 0, length = 0, hash = 0;
    std::int32_t id = -1;
  };
  void grow();
  std::string arena_;
  std::vector<Slot> slots_;
  std::size_t mask_ = 0, count_ = 0;
};

// Words already merged, with their ids; stops admitting words once full (most text repeats a
// small set of words, and a bounded cache keeps memory bounded for adversarial input).
class WordCache {
 public:
  explicit WordCache(std::size_t capacity_words);
  // Appends the ids of `word` to `out` and returns true when cached.
  bool lookup(std::string_view word, std::vector<std::int32_t>& out) const;
  void store(std::string_view word, const std::int32_t* ids, std::size_t n);

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t key_offset = 0, key_length = 0;
    std::uint32_t ids_offset = 0, ids_length = 0;
    bool used = false;
  };
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<std::int32_t> ids_;
  std::size_t mask_ = 0, count_ = 0, capacity_ = 0;
};

}  // namespace porta::tok

// StringTable and WordCache.
#include "string_table.hpp"

#include <bit>

namespace porta::tok {

void StringTable::reserve(std::size_t n) {
  arena_.reserve(n * 8);
  while (slots_.size() < n * 2) grow();
}

void StringTable::grow() {
  const std::size_t capacity = slots_.empty() ? 16 : slots_.size() * 2;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    const std::uint64_t h = hash_bytes(std::string_view(arena_.data() + s.offset, s.length));
    std::size_t i = h & mask_;
    while (slots_[i].id >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

std::int32_t StringTable::insert(std::string_view key, std::int32_t id) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  const std::uint64_t h = hash_bytes(key);
  std::size_t i = h & mask_;
  for (;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.id < 0) break;
    if (s.hash == static_cast<std::uint32_t>(h) && s.length == key.size() &&
        std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
      return s.id;
  }
  slots_[i] = {static_cast<std::uint32_t>(arena_.size()), static_cast<std::uint32_t>(key.size()),
               static_cast<std::uint32_t>(h), id};
  arena_.append(key);
  ++count_;
  return id;
}

WordCache::WordCache(std::size_t capacity_words)
    : slots_(std::bit_ceil(capacity_words * 2)), capacity_(capacity_words) {
  mask_ = slots_.size() - 1;
}

bool WordCache::lookup(std::string_view word, std::vector<std::int32_t>& out) const {
  const std::uint64_t h = hash_bytes(word);
  for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (!s.used) return false;
    if (s.hash == h && s.key_length == word.size() &&
        std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0) {
      out.insert(out.end(), ids_.begin() + s.ids_offset,
                 ids_.begin() + s.ids_offset + s.ids_length);
      return true;
    }
  }
}

void WordCache::store(std::string_view word, const std::int32_t* ids, std::size_t n) {
  if (count_ >= capacity_) return;
  const std::uint64_t h = hash_bytes(word);
  std::size_t i = h & mask_;
  for (; slots_[i].used; i = (i + 1) & mask_)
    if (slots_[i].hash == h && slots_[i].key_length == word.size() &&
        std::memcmp(keys_.data() + slots_[i].key_offset, word.data(), word.size()) == 0)
      return;
  slots_[i] = {h,
               static_cast<std::uint32_t>(keys_.size()),
               static_cast<std::uint32_t>(word.size()),
               static_cast<std::uint32_t>(ids_.size()),
               static_cast<std::uint32_t>(n),
               true};
  keys_.append(word);
  ids_.insert(ids_.end(), ids, ids + n);
  ++count_;
}

}  // namespace porta::tok

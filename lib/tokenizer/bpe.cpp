// BPE: loading vocab + merges, and merging a word.
#include "bpe.hpp"

#include <algorithm>
#include <bit>

#include "utf8.hpp"

namespace porta::tok {

namespace {

constexpr std::size_t kCacheMaxWord = 256;

}  // namespace

void PairMap::reserve(std::size_t n) {
  const std::size_t capacity = std::bit_ceil(std::max<std::size_t>(16, n * 2));
  entries_.assign(capacity, Entry{});
  mask_ = capacity - 1;
  shift_ = 64 - std::countr_zero(capacity);
}

bool PairMap::insert(std::int32_t left, std::int32_t right, Merge merge) {
  const std::uint64_t key = pack(left, right);
  for (std::size_t i = slot(key);; i = (i + 1) & mask_) {
    Entry& e = entries_[i];
    if (e.key == key) return false;
    if (e.key == kEmpty) {
      e.key = key;
      e.merge = merge;
      return true;
    }
  }
}

Bpe::Bpe(const json& model, BpeTables tables, const std::string& path) {
  const std::string type = string_or(model, "type", path, "BPE");
  if (type != "BPE")
    bad_field(path + ".type",
              fmt::format("unsupported model '{}' (porta supports BPE models)", type));
  if (const auto d = model.find("dropout"); d != model.end() && !d->is_null()) {
    if (!d->is_number()) bad_field(path + ".dropout", "expected a number or null");
    if (d->get<double>() > 0)
      bad_field(path + ".dropout", "BPE dropout is a training-time option porta does not apply");
  }
  if (!tables.has_vocab) bad_field(path + ".vocab", "missing");
  if (!tables.has_merges) bad_field(path + ".merges", "missing");
  prefix_ = string_or(model, "continuing_subword_prefix", path, "");
  suffix_ = string_or(model, "end_of_word_suffix", path, "");
  fuse_unk_ = bool_or(model, "fuse_unk", path, false);
  byte_fallback_ = bool_or(model, "byte_fallback", path, false);
  ignore_merges_ = bool_or(model, "ignore_merges", path, false);

  vocab_.reserve(tables.vocab.size());
  std::int32_t max_id = -1;
  for (const auto& [token, id] : tables.vocab) max_id = std::max(max_id, id);
  tokens_.resize(static_cast<std::size_t>(max_id + 1));
  char_ids_.assign(0x800, -1);
  for (auto& [token, id] : tables.vocab) {
    if (vocab_.insert(token, id) != id) continue;  // a duplicate token keeps its first id
    std::size_t i = 0;
    const char32_t c = token.empty() ? 0 : next_code_point(token, i);
    if (!token.empty() && i == token.size() && c < 0x800) char_ids_[c] = id;
    tokens_[static_cast<std::size_t>(id)] = std::move(token);
  }

  if (const auto unk = model.find("unk_token"); unk != model.end() && !unk->is_null()) {
    if (!unk->is_string()) bad_field(path + ".unk_token", "expected a string or null");
    const std::int32_t id = vocab_.find(unk->get<std::string>());
    if (id < 0)
      bad_field(path + ".unk_token",
                fmt::format("'{}' is not in the vocabulary", unk->get<std::string>()));
    unk_ = id;
  }

  merges_.reserve(tables.merges.size());
  std::string merged;
  for (std::size_t rank = 0; rank < tables.merges.size(); ++rank) {
    const auto& [left, right] = tables.merges[rank];
    const std::int32_t l = vocab_.find(left), r = vocab_.find(right);
    if (l < 0 || r < 0)
      bad_field(fmt::format("{}.merges[{}]", path, rank),
                fmt::format("'{}' is not in the vocabulary", l < 0 ? left : right));
    merged.assign(left);
    merged.append(right, right.starts_with(prefix_) ? prefix_.size() : 0, std::string::npos);
    const std::int32_t out = vocab_.find(merged);
    if (out < 0)
      bad_field(fmt::format("{}.merges[{}]", path, rank),
                fmt::format("the merged token '{}' is not in the vocabulary", merged));
    merges_.insert(l, r, {static_cast<std::int32_t>(rank), out});
  }
}

std::optional<std::int32_t> Bpe::token_to_id(std::string_view token) const {
  const std::int32_t id = vocab_.find(token);
  if (id < 0) return std::nullopt;
  return id;
}

const std::string* Bpe::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size()) return nullptr;
  const std::string& t = tokens_[static_cast<std::size_t>(id)];
  return t.empty() ? nullptr : &t;
}

std::int32_t Bpe::symbol_id(std::string_view text) const { return vocab_.find(text); }

void Bpe::encode_word(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() <= kCacheMaxWord) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.lookup(word, out)) return;
  }
  const std::size_t mark = out.size();
  merge_word(word, out);
  if (word.size() <= kCacheMaxWord) {
    std::lock_guard lock(cache_mutex_);
    cache_.store(word, out.data() + mark, out.size() - mark);
  }
}

void Bpe::merge_word(std::string_view word, std::vector<std::int32_t>& out) const {
  if (ignore_merges_ && prefix_.empty() && suffix_.empty()) {
    if (const std::int32_t id = vocab_.find(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  struct Symbol {
    std::int32_t id;
    std::int32_t prev, next;
  };
  // Reused across calls: a word's merge should not cost two allocations.
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  const bool plain = prefix_.empty() && suffix_.empty();
  bool last_unk = false;
  std::string buffer;
  auto push = [&](std::int32_t id) {
    const auto n = static_cast<std::int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1});
  };
  std::size_t i = 0;
  while (i < word.size()) {
    const std::size_t begin = i;
    const char32_t c = next_code_point(word, i);
    std::int32_t id = -1;
    if (plain && c < 0x800) {
      id = char_ids_[c];
    } else {
      buffer.clear();
      if (begin > 0) buffer.append(prefix_);
      buffer.append(word.substr(begin, i - begin));
      if (i == word.size()) buffer.append(suffix_);
      id = symbol_id(buffer);
    }
    if (id >= 0) {
      push(id);
      last_unk = false;
      continue;
    }
    if (byte_fallback_) {
      std::int32_t bytes[4];
      bool all = true;
      for (std::size_t k = begin; k < i; ++k) {
        const std::string name =
            fmt::format("<0x{:02X}>", static_cast<unsigned char>(word[k]));
        bytes[k - begin] = symbol_id(name);
        all &= bytes[k - begin] >= 0;
      }
      if (all) {
        for (std::size_t k = begin; k < i; ++k) push(bytes[k - begin]);
        last_unk = false;
        continue;
      }
    }
    if (unk_) {
      if (!(fuse_unk_ && last_unk)) push(*unk_);
      last_unk = true;
    }
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    std::int32_t rank, pos, left, right, id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  thread_local std::vector<Candidate> queue;  // a min-heap on (rank, position)
  queue.clear();
  auto consider = [&](std::int32_t pos) {
    if (pos < 0) return;
    const std::int32_t next = symbols[static_cast<std::size_t>(pos)].next;
    if (next < 0) return;
    const std::int32_t l = symbols[static_cast<std::size_t>(pos)].id;
    const std::int32_t r = symbols[static_cast<std::size_t>(next)].id;
    if (const PairMap::Merge* m = merges_.find(l, r)) {
      queue.push_back({m->rank, pos, l, r, m->id});
      std::push_heap(queue.begin(), queue.end(), std::greater<>());
    }
  };
  for (std::size_t k = 0; k + 1 < symbols.size(); ++k) consider(static_cast<std::int32_t>(k));
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), std::greater<>());
    const Candidate c = queue.back();
    queue.pop_back();
    Symbol& left = symbols[static_cast<std::size_t>(c.pos)];
    // Stale entries: the left symbol was merged away (id -1) or changed, or its neighbour did.
    if (left.id != c.left || left.next < 0) continue;
    Symbol& right = symbols[static_cast<std::size_t>(left.next)];
    if (right.id != c.right) continue;
    left.id = c.id;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = c.pos;
    consider(left.prev);
    consider(c.pos);
  }
  for (std::int32_t k = 0; k >= 0; k = symbols[static_cast<std::size_t>(k)].next)
    out.push_back(symbols[static_cast<std::size_t>(k)].id);
}

}  // namespace porta::tok

// StreamDecoder: decodes a sliding window (the last emitted token as context plus the new ones)
// and returns only the bytes past what was already returned, holding back an unfinished UTF-8
// character. The context token keeps decoders that treat the first token specially (Metaspace
// strips its leading space) consistent between the window and its prefix.
#include <porta/tokenizer.hpp>

#include "utf8.hpp"

namespace porta {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(std::int32_t id) {
  ids_.push_back(id);
  const std::string text = tokenizer_->decode_bytes(ids_, skip_special_);
  if (text.size() <= emitted_bytes_) return {};
  const std::string_view fresh = std::string_view(text).substr(emitted_bytes_);
  const std::size_t hold = tok::incomplete_utf8_tail(fresh);
  std::string out(fresh.substr(0, fresh.size() - hold));
  emitted_bytes_ += out.size();
  if (hold == 0) {
    ids_.erase(ids_.begin(), ids_.end() - 1);
    emitted_bytes_ = tokenizer_->decode_bytes(ids_, skip_special_).size();
  }
  return tok::utf8_lossy(out);
}

std::string StreamDecoder::finish() {
  const std::string text = tokenizer_->decode_bytes(ids_, skip_special_);
  std::string rest = text.size() > emitted_bytes_ ? text.substr(emitted_bytes_) : std::string();
  ids_.clear();
  emitted_bytes_ = 0;
  return tok::utf8_lossy(rest);
}

}  // namespace porta

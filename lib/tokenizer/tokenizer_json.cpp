// The SAX handler behind parse_tokenizer_json.
#include "tokenizer_json.hpp"

namespace porta::tok {

namespace {

class Handler final : public nlohmann::json_sax<json> {
 public:
  explicit Handler(BpeTables& tables) : tables_(tables) {}
  json root;

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(v); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == Mode::Vocab && stack_.size() == mode_depth_) return vocab_id(v);
    return value(v);
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::Vocab && stack_.size() == mode_depth_)
      return vocab_id(static_cast<std::int64_t>(std::min<number_unsigned_t>(v, INT64_MAX)));
    return value(v);
  }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool binary(binary_t&) override { return value(json()); }
  bool string(string_t& s) override {
    if (mode_ == Mode::Merges) {
      if (stack_.size() == mode_depth_) {  // "a b"
        const std::size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          bad_field(merge_path(), fmt::format("'{}' is not two tokens separated by one space", s));
        tables_.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
        return true;
      }
      if (stack_.size() == mode_depth_ + 1 && pair_.size() < 3) {  // ["a", "b"]
        pair_.push_back(std::move(s));
        return true;
      }
      bad_field(merge_path(), "expected \"a b\" or [\"a\", \"b\"]");
    }
    if (mode_ == Mode::Vocab) bad_field(vocab_path(), "expected a token id (an integer)");
    return value(std::move(s));
  }
  bool start_object(std::size_t) override {
    if (mode_ == Mode::Merges) bad_field(merge_path(), "expected \"a b\" or [\"a\", \"b\"]");
    if (mode_ == Mode::Vocab) bad_field(vocab_path(), "expected a token id (an integer)");
    if (at_model_field("vocab")) {
      mode_ = Mode::Vocab;
      tables_.has_vocab = true;
      mode_depth_ = stack_.size() + 1;
      stack_.push_back(nullptr);
      return true;
    }
    if (at_model_field("merges")) bad_field("model.merges", "expected an array");
    return open(json::object());
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::Vocab && stack_.size() == mode_depth_) mode_ = Mode::None;
    close();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::Vocab) bad_field(vocab_path(), "expected a token id (an integer)");
    if (mode_ == Mode::Merges) {
      if (stack_.size() != mode_depth_) bad_field(merge_path(), "expected \"a b\" or [\"a\", \"b\"]");
      pair_.clear();
      stack_.push_back(nullptr);
      return true;
    }
    if (at_model_field("merges")) {
      mode_ = Mode::Merges;
      tables_.has_merges = true;
      mode_depth_ = stack_.size() + 1;
      stack_.push_back(nullptr);
      return true;
    }
    if (at_model_field("vocab")) bad_field("model.vocab", "expected an object of token: id");
    return open(json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::Merges) {
      if (stack_.size() == mode_depth_ + 1) {
        if (pair_.size() != 2) bad_field(merge_path(), "expected \"a b\" or [\"a\", \"b\"]");
        tables_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      } else {
        mode_ = Mode::None;
      }
    }
    close();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& e) override {
    throw Error(ErrorCode::CorruptFile,
                fmt::format("not valid JSON at byte {}: {}", position, e.what()));
  }

 private:
  enum class Mode { None, Vocab, Merges };

  // The container about to be opened is root.model.<name>.
  bool at_model_field(std::string_view name) const {
    return stack_.size() == 2 && stack_[1] != nullptr && model_level_ && key_ == name;
  }
  std::string merge_path() const { return fmt::format("model.merges[{}]", tables_.merges.size()); }
  std::string vocab_path() const { return fmt::format("model.vocab[\"{}\"]", key_); }

  bool vocab_id(std::int64_t v) {
    if (v < 0 || v > INT32_MAX) bad_field(vocab_path(), "expected a token id (a non-negative integer)");
    tables_.vocab.emplace_back(std::move(key_), static_cast<std::int32_t>(v));
    return true;
  }

  json* place(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json* parent = stack_.back();
    if (parent->is_object()) {
      json& slot = (*parent)[key_];
      slot = std::move(v);
      return &slot;
    }
    parent->push_back(std::move(v));
    return &parent->back();
  }
  bool value(json v) {
    if (mode_ == Mode::Merges) bad_field(merge_path(), "expected \"a b\" or [\"a\", \"b\"]");
    if (mode_ == Mode::Vocab) bad_field(vocab_path(), "expected a token id (an integer)");
    place(std::move(v));
    return true;
  }
  bool open(json v) {
    const bool entering_model = stack_.size() == 1 && key_ == "model" && v.is_object();
    stack_.push_back(place(std::move(v)));
    if (stack_.size() == 2) model_level_ = entering_model;
    return true;
  }
  void close() { stack_.pop_back(); }

  BpeTables& tables_;
  std::vector<json*> stack_;  // open containers (nullptr: one diverted into the tables)
  std::string key_;
  Mode mode_ = Mode::None;
  std::size_t mode_depth_ = 0;
  bool model_level_ = false;
  std::vector<std::string> pair_;
};

}  // namespace

json parse_tokenizer_json(std::string_view text, BpeTables& tables) {
  Handler handler(tables);
  json::sax_parse(text.begin(), text.end(), &handler);
  return std::move(handler.root);
}

}  // namespace porta::tok

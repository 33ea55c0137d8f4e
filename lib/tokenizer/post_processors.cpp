// Post-processors: TemplateProcessing (single sequences), ByteLevel (ids unchanged),
// RobertaProcessing / BertProcessing, and Sequence.
#include "components.hpp"

namespace porta::tok {

namespace {

class Affix final : public PostProcessor {
 public:
  Affix(std::vector<std::int32_t> prefix, std::vector<std::int32_t> suffix)
      : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}
  void process(std::vector<std::int32_t>& ids) const override {
    ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
    ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  }

 private:
  std::vector<std::int32_t> prefix_, suffix_;
};

class Sequence final : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> parts)
      : parts_(std::move(parts)) {}
  void process(std::vector<std::int32_t>& ids) const override {
    for (const auto& p : parts_) p->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

class Identity final : public PostProcessor {
 public:
  void process(std::vector<std::int32_t>&) const override {}
};

std::unique_ptr<PostProcessor> template_processing(const json& j, const std::string& path) {
  const json& single = required(j, "single", path);
  if (!single.is_array()) bad_field(path + ".single", "expected an array");
  const json& specials = required(j, "special_tokens", path);
  std::vector<std::int32_t> prefix, suffix;
  bool seen_sequence = false;
  for (std::size_t i = 0; i < single.size(); ++i) {
    const std::string item_path = fmt::format("{}.single[{}]", path, i);
    const json& item = single[i];
    if (item.is_object() && item.contains("Sequence")) {
      if (seen_sequence) bad_field(item_path, "a single-sequence template has one Sequence");
      seen_sequence = true;
      continue;
    }
    if (!item.is_object() || !item.contains("SpecialToken"))
      bad_field(item_path, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    const std::string name = string_field(item["SpecialToken"], "id", item_path + ".SpecialToken");
    const auto it = specials.find(name);
    if (it == specials.end())
      bad_field(path + ".special_tokens", fmt::format("'{}' is not defined", name));
    const std::string special_path = fmt::format("{}.special_tokens[\"{}\"]", path, name);
    const json& ids = required(*it, "ids", special_path);
    if (!ids.is_array()) bad_field(special_path + ".ids", "expected an array of ids");
    for (std::size_t k = 0; k < ids.size(); ++k)
      (seen_sequence ? suffix : prefix)
          .push_back(token_id(ids[k], fmt::format("{}.ids[{}]", special_path, k)));
  }
  if (!seen_sequence) bad_field(path + ".single", "the template has no Sequence item");
  return std::make_unique<Affix>(std::move(prefix), std::move(suffix));
}

std::int32_t pair_id(const json& j, const char* key, const std::string& path) {
  const json& pair = required(j, key, path);
  if (!pair.is_array() || pair.size() != 2)
    bad_field(join_path(path, key), "expected [token, id]");
  return token_id(pair[1], join_path(path, key) + "[1]");
}

}  // namespace

std::unique_ptr<PostProcessor> make_affix_processor(std::vector<std::int32_t> prefix,
                                                    std::vector<std::int32_t> suffix) {
  return std::make_unique<Affix>(std::move(prefix), std::move(suffix));
}

std::unique_ptr<PostProcessor> make_post_processor(const json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, path);
  if (type == "TemplateProcessing") return template_processing(j, path);
  if (type == "ByteLevel") return std::make_unique<Identity>();
  if (type == "RobertaProcessing" || type == "BertProcessing")
    return std::make_unique<Affix>(std::vector<std::int32_t>{pair_id(j, "cls", path)},
                                   std::vector<std::int32_t>{pair_id(j, "sep", path)});
  if (type == "Sequence") {
    const json& list = required(j, "processors", path);
    if (!list.is_array()) bad_field(path + ".processors", "expected an array");
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (auto p = make_post_processor(list[i], fmt::format("{}.processors[{}]", path, i)))
        parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  bad_field(path + ".type",
            fmt::format("unsupported post-processor '{}' (supported: TemplateProcessing, "
                        "ByteLevel, RobertaProcessing, BertProcessing, Sequence)",
                        type));
}

}  // namespace porta::tok

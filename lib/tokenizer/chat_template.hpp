// Chat templates: a renderer for the subset of Jinja2 that Hugging Face models' chat_template
// strings use (DeepSeek-V2/V3/R1, Qwen2/2.5/3, Mixtral): text, {{ expressions }}, {% if / elif /
// else / for / set / break / continue %}, comments, whitespace control with '-' and the
// trim_blocks + lstrip_blocks settings transformers renders with. See docs/tokenizer.md for the
// expressions, filters, tests and methods. Anything else is a porta::Error naming the construct
// and its line.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace porta::tok {

namespace jinja {
struct Node;
}

class ChatTemplate {
 public:
  explicit ChatTemplate(std::string_view source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  // `variables` is a JSON object: messages, bos_token, add_generation_prompt, ...
  std::string render(const nlohmann::ordered_json& variables) const;

 private:
  std::shared_ptr<const jinja::Node> root_;
};

}  // namespace porta::tok

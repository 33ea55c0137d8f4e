// `porta tokenize --model DIR TEXT`: the ids and pieces the model's tokenizer makes of a text, for
// checking a tokenizer against another implementation.
#include <fmt/format.h>

#include <porta/tokenizer.hpp>

#include "commands.hpp"
#include "text_io.hpp"

namespace porta::cli {

Command add_tokenize_command(CLI::App& app) {
  struct Options {
    std::string model_dir;
    std::string text;
    bool no_special = false;
    bool chat_template = false;
  };
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model_dir, "Directory with tokenizer.json (+ tokenizer_config.json)")
      ->required();
  app.add_option("text", o->text, "The text to tokenize")->required();
  app.add_flag("--no-special", o->no_special, "Do not add the BOS/EOS the post-processor adds");
  app.add_flag("--chat-template", o->chat_template,
               "Wrap the text as one user message in the chat template first");
  return [o] {
    const Tokenizer tokenizer = Tokenizer::load(o->model_dir);
    std::vector<std::int32_t> ids;
    if (o->chat_template) {
      const std::string rendered = tokenizer.apply_chat_template(
          std::vector<ChatMessage>{{"user", o->text}}, true);
      fmt::print("rendered: {}\n", quoted(rendered));
      ids = tokenizer.encode(rendered, false);
    } else {
      ids = tokenizer.encode(o->text, !o->no_special);
    }
    fmt::print("ids: {}\n", fmt::join(ids, " "));
    fmt::print("tokens: {}\n", ids.size());
    for (const std::int32_t id : ids)
      fmt::print("{:>8}  {:<24} {}{}\n", id, quoted(tokenizer.id_to_token(id).value_or("?")),
                 quoted(tokenizer.decode(std::vector<std::int32_t>{id})),
                 tokenizer.is_special(id) ? "  (special)" : "");
    return 0;
  };
}

}  // namespace porta::cli

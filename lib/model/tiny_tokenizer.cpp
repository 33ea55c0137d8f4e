// The tiny checkpoints' tokenizer: a small BPE vocabulary trained here, deterministically, on a
// fixed text (most frequent pair first, ties to the smaller pair), written in tokenizer.json form.
#include <porta/model/tiny_tokenizer.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/error.hpp>

namespace porta::model {

namespace {

using json = nlohmann::ordered_json;

const char* const kSpace = "\xE2\x96\x81";  // ▁, SentencePiece's word boundary

constexpr const char* kCorpus =
    "The model routes each token to a few of its experts and adds their outputs. "
    "A mixture of experts model is large, but each token only reads the weights of the experts "
    "it is sent to. The router scores every expert and keeps the top ones. "
    "Hello! How are you today? I am fine, thank you. What is the weather like in Paris? "
    "It is sunny and warm, with a light wind from the west. "
    "The quick brown fox jumps over the lazy dog. "
    "Tokens are the pieces of text that the model reads and writes. "
    "This is a tiny test model: its answers are random, but the text around them is not. "
    "When the conversation goes on, the model keeps what it has seen in its cache. "
    "Please write a short story about a robot that learns to paint in the city at night.";

const char* const kChatTemplate =
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('unknown role ' + message['role']) }}{% endif %}"
    "{% endfor %}";

json added(int id, const std::string& content, bool special) {
  return {{"id", id},         {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find(' ', at);
    if (end == std::string::npos) end = text.size();
    if (end > at) words.push_back(kSpace + text.substr(at, end - at));
    at = end + 1;
  }
  return words;
}

}  // namespace

void write_tiny_tokenizer(const std::string& dir, std::int64_t vocab_size) {
  if (vocab_size < 128)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("the tiny tokenizer needs a vocabulary of at least 128, not {}",
                            vocab_size));
  json vocab = json::object();
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "[INST]", "[/INST]", kSpace, "\n",
                                     "\t"};
  for (char c = '!'; c <= '~'; ++c) tokens.emplace_back(1, c);
  std::map<std::string, int> known;
  for (const auto& t : tokens) known.emplace(t, static_cast<int>(known.size()));

  // Words as symbol sequences with their counts.
  std::map<std::vector<std::string>, int> words;
  for (const std::string& w : words_of(kCorpus)) {
    std::vector<std::string> symbols = {kSpace};
    for (std::size_t k = std::string(kSpace).size(); k < w.size(); ++k)
      symbols.emplace_back(1, w[k]);
    ++words[symbols];
  }
  json merges = json::array();
  while (static_cast<std::int64_t>(tokens.size()) < vocab_size) {
    std::map<std::pair<std::string, std::string>, int> pairs;
    for (const auto& [symbols, count] : words)
      for (std::size_t k = 0; k + 1 < symbols.size(); ++k)
        pairs[{symbols[k], symbols[k + 1]}] += count;
    std::pair<std::string, std::string> best;
    int best_count = 0;
    for (const auto& [pair, count] : pairs)  // map order: ties go to the smaller pair
      if (count > best_count && !known.contains(pair.first + pair.second)) {
        best = pair;
        best_count = count;
      }
    if (best_count == 0) break;
    const std::string merged = best.first + best.second;
    known.emplace(merged, static_cast<int>(tokens.size()));
    tokens.push_back(merged);
    merges.push_back(best.first + " " + best.second);
    std::map<std::vector<std::string>, int> next;
    for (const auto& [symbols, count] : words) {
      std::vector<std::string> out;
      for (std::size_t k = 0; k < symbols.size(); ++k) {
        if (k + 1 < symbols.size() && symbols[k] == best.first && symbols[k + 1] == best.second) {
          out.push_back(merged);
          ++k;
        } else {
          out.push_back(symbols[k]);
        }
      }
      next[out] += count;
    }
    words = std::move(next);
  }
  // The text ran out of pairs before the vocabulary filled: pad with unused placeholders so that
  // every id the model can emit decodes.
  for (int k = 0; static_cast<std::int64_t>(tokens.size()) < vocab_size; ++k)
    tokens.push_back(fmt::format("<unused{}>", k));
  for (std::size_t id = 0; id < tokens.size(); ++id) vocab[tokens[id]] = id;

  const json metaspace = {{"type", "Metaspace"},
                          {"replacement", kSpace},
                          {"prepend_scheme", "first"},
                          {"split", true}};
  const json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true),
        added(3, "[INST]", false), added(4, "[/INST]", false)}},
      {"normalizer", nullptr},
      {"pre_tokenizer", metaspace},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "first"}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}}};
  const json config = {{"add_bos_token", true},
                       {"add_eos_token", false},
                       {"bos_token", "<s>"},
                       {"eos_token", "</s>"},
                       {"unk_token", "<unk>"},
                       {"clean_up_tokenization_spaces", false},
                       {"model_max_length", 4096},
                       {"tokenizer_class", "LlamaTokenizer"},
                       {"chat_template", kChatTemplate}};
  std::filesystem::create_directories(dir);
  for (const auto& [name, content] :
       {std::pair{"tokenizer.json", &tokenizer}, {"tokenizer_config.json", &config}}) {
    const auto path = std::filesystem::path(dir) / name;
    std::ofstream out(path);
    out << content->dump(1) << '\n';
    if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write '{}'", path.string()));
  }
}

}  // namespace porta::model

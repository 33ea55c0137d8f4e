// `porta gen-checkpoint` writes a tokenizer that fits the tiny model; `porta run --prompt`,
// `porta chat` (fed on stdin) and `porta tokenize` work on it, checked against the library's own
// encode/decode; broken tokenizer files are errors naming the field.
#ifdef PORTA_CLI_PATH

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include <porta/model/config.hpp>
#include <porta/tokenizer.hpp>

#include "tools/cli_support.hpp"
#include "tokenizer/tokenizer_test_support.hpp"

namespace porta::test::tokenizer_cli_text_tests {
namespace {

// The counts of each turn's "[N tokens ...; prompt P ids, R reused from the cache]" line.
struct TurnStats {
  unsigned long tokens = 0, prompt = 0, reused = 0;
};

std::vector<TurnStats> turn_stats(const std::string& output) {
  std::vector<TurnStats> out;
  const std::string end = " reused from the cache]";
  for (auto at = output.find(end); at != std::string::npos; at = output.find(end, at + 1)) {
    const auto open = output.rfind('[', at);
    const auto prompt = output.find("; prompt ", open);
    REQUIRE(open != std::string::npos);
    REQUIRE(prompt < at);
    TurnStats t;
    REQUIRE(std::sscanf(output.c_str() + open, "[%lu tokens", &t.tokens) == 1);
    REQUIRE(std::sscanf(output.c_str() + prompt, "; prompt %lu ids, %lu", &t.prompt, &t.reused) == 2);
    out.push_back(t);
  }
  return out;
}

std::vector<std::int32_t> parse_ids(const std::string& line) {
  std::vector<std::int32_t> ids;
  std::istringstream in(line);
  std::int32_t id = 0;
  while (in >> id) ids.push_back(id);
  return ids;
}

// Runs porta with `input` on stdin.
CliResult run_porta_with_input(const std::string& args, const std::string& input) {
  const auto file = std::filesystem::path(PORTA_TEST_TMPDIR) / "tokenizer" / "chat_input.txt";
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << input;
  return run_porta(args + " < " + file.string());
}

std::string tiny_checkpoint(const std::string& name, const std::string& kind) {
  const std::string dir = write_tokenizer_dir(name, "{}");
  const CliResult gen = run_porta("gen-checkpoint --kind " + kind + " --seed 2 --out " + dir);
  INFO(gen.output);
  REQUIRE(gen.exit_code == 0);
  return dir;
}

TEST_CASE("gen-checkpoint writes a tokenizer that fits the tiny model", "[tokenizer]") {
  for (const std::string kind : {"deepseek_v3", "mixtral", "qwen3_moe"}) {
    const std::string dir = tiny_checkpoint("gen_" + kind, kind);
    std::ifstream config_file(std::filesystem::path(dir) / "config.json");
    const std::string config_text((std::istreambuf_iterator<char>(config_file)), {});
    const model::ModelConfig config = model::parse_config(config_text, kind);
    const Tokenizer tok = Tokenizer::load(dir);
    CHECK(tok.vocab_size() == config.vocab_size);
    CHECK(tok.bos_id() == 1);
    CHECK(tok.eos_id() == 2);
    CHECK(tok.has_chat_template());
    const std::string text = "Hello! How are you today? The experts route 42 tokens.";
    const auto ids = tok.encode(text);
    CHECK(ids.front() == 1);
    CHECK(ids.size() < text.size() / 2);  // the learned merges do compress English
    CHECK(tok.decode(ids, true) == text);
    const std::vector<ChatMessage> chat = {{"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}};
    CHECK(tok.apply_chat_template(chat, true) == "<s>[INST] Hi [/INST]Hello.</s>[INST] Bye [/INST]");
  }
}

TEST_CASE("porta run --prompt encodes the text and streams the generated text", "[tokenizer]") {
  const std::string dir = tiny_checkpoint("run_prompt", "deepseek_v3");
  const Tokenizer tok = Tokenizer::load(dir);
  const std::string text = "The model routes each token to a few experts.";
  const CliResult run = run_porta("run --model " + dir + " --backend reference --prompt \"" +
                                  text + "\" --max-new-tokens 8");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(parse_ids(line_after(run.output, "prompt")) == tok.encode(text));
  auto generated = parse_ids(line_after(run.output, "tokens"));
  REQUIRE(!generated.empty());
  if (generated.back() == *tok.eos_id()) generated.pop_back();
  CHECK(line_after(run.output, "text") == tok.decode(generated, true));
  // The same ids given as --prompt-ids generate the same tokens.
  std::string ids_arg;
  for (const auto id : tok.encode(text)) {
    if (!ids_arg.empty()) ids_arg += ',';
    ids_arg += std::to_string(id);
  }
  const CliResult by_ids = run_porta("run --model " + dir +
                                     " --backend reference --max-new-tokens 8 --prompt-ids " + ids_arg);
  CHECK(line_after(by_ids.output, "tokens") == line_after(run.output, "tokens"));
  CHECK(line_after(by_ids.output, "text") == "(none)");

  const CliResult templated = run_porta("run --model " + dir +
                                        " --backend reference --max-new-tokens 2 --chat-template "
                                        "--prompt Hi");
  CHECK(parse_ids(line_after(templated.output, "prompt")) ==
        tok.encode("<s>[INST] Hi [/INST]", false));

  const CliResult both = run_porta("run --model " + dir + " --prompt hi --prompt-ids 1");
  CHECK(both.exit_code == 2);
  const CliResult neither = run_porta("run --model " + dir);
  CHECK(neither.exit_code == 1);
  CHECK_THAT(neither.output, Catch::Contains("--prompt"));
}

TEST_CASE("porta chat keeps the conversation and the KV cache across turns", "[tokenizer]") {
  const std::string dir = tiny_checkpoint("chat", "mixtral");
  const Tokenizer tok = Tokenizer::load(dir);
  const CliResult chat =
      run_porta_with_input("chat --model " + dir + " --max-new-tokens 5",
                           "Hello there\nWhat is the weather like?\n/reset\nHello there\n/quit\n");
  INFO(chat.output);
  REQUIRE(chat.exit_code == 0);
  const std::vector<TurnStats> stats = turn_stats(chat.output);
  REQUIRE(stats.size() == 3);
  const auto first_prompt = tok.encode("<s>[INST] Hello there [/INST]", false);
  CHECK(stats[0].prompt == first_prompt.size());
  CHECK(stats[0].reused == 0);
  // Turn two runs only what the cache does not hold yet: at least turn one's prompt is reused
  // (and the answer's ids as far as they re-encode the same; the last answer token was sampled
  // but never run).
  const auto answer_tokens = stats[0].tokens;
  CHECK(stats[1].reused >= first_prompt.size());
  CHECK(stats[1].reused < first_prompt.size() + answer_tokens);
  CHECK_THAT(chat.output, Catch::Contains("(the conversation and the KV cache are reset)"));
  CHECK(stats[2].reused == 0);
  CHECK(stats[2].prompt == stats[0].prompt);

  // The first answer is what `porta run` generates for the same templated prompt.
  const CliResult run = run_porta("run --model " + dir +
                                  " --backend reference --max-new-tokens 5 --chat-template "
                                  "--prompt \"Hello there\"");
  REQUIRE(chat.output.find("> ") != std::string::npos);
  CHECK(rest_of_line_after(chat.output, "> ") == line_after(run.output, "text"));

  const CliResult no_input = run_porta_with_input("chat --model " + dir, "");
  CHECK(no_input.exit_code == 0);
}

TEST_CASE("porta tokenize shows ids and pieces", "[tokenizer]") {
  const std::string dir = tiny_checkpoint("tokenize", "qwen3_moe");
  const CliResult out = run_porta("tokenize --model " + dir + " \"Hello, you\"");
  INFO(out.output);
  REQUIRE(out.exit_code == 0);
  CHECK(parse_ids(line_after(out.output, "ids")) == Tokenizer::load(dir).encode("Hello, you"));
  CHECK_THAT(out.output, Catch::Contains("\"<s>\"") && Catch::Contains("(special)"));
  const std::string real = tokenizer_data_dir("deepseek_v3");
  if (!real.empty()) {
    const CliResult ds = run_porta("tokenize --model " + real + " \"Hello, world!\"");
    CHECK(line_after(ds.output, "ids") == "0 19923 14 2058 3");
  }
}

TEST_CASE("a broken tokenizer.json makes porta run --prompt fail naming the field",
          "[tokenizer]") {
  const std::string dir = tiny_checkpoint("broken", "mixtral");
  const auto path = std::filesystem::path(dir) / "tokenizer.json";
  std::ifstream in(path);
  auto j = nlohmann::json::parse(in);
  in.close();
  j["pre_tokenizer"]["type"] = "Whitespaceish";
  std::ofstream(path) << j.dump();
  const CliResult run = run_porta("run --model " + dir + " --prompt hi");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Catch::Contains("pre_tokenizer.type") &&
                             Catch::Contains("Whitespaceish") && Catch::Contains("tokenizer.json"));
  std::filesystem::remove(path);
  const CliResult missing = run_porta("chat --model " + dir);
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.output, Catch::Contains("no tokenizer.json"));
}

}  // namespace
}  // namespace porta::test::tokenizer_cli_text_tests

#endif  // PORTA_CLI_PATH

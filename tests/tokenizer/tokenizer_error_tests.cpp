// Malformed tokenizer files and bad input are porta::Errors whose message names the field or the
// value at fault, never a crash or a silent wrong answer.
#include <filesystem>

#include <nlohmann/json.hpp>

#include <porta/error.hpp>
#include <porta/tokenizer.hpp>

#include "tokenizer/tokenizer_test_support.hpp"

namespace porta::test::tokenizer_error_tests {
namespace {

using nlohmann::json;

json minimal() {
  return {{"model",
           {{"type", "BPE"},
            {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}},
            {"merges", {"a b"}}}},
          {"pre_tokenizer", nullptr},
          {"decoder", nullptr}};
}

// The error from loading `j`, whose message must contain every one of `parts`.
void expect_error(const std::string& text, std::initializer_list<const char*> parts,
                  const std::string& config = "") {
  try {
    (void)Tokenizer::from_json(text, config);
    FAIL("no error for: " << text.substr(0, 200));
  } catch (const Error& e) {
    INFO(e.what());
    for (const char* p : parts) CHECK_THAT(e.what(), Catch::Contains(p));
  }
}

TEST_CASE("a minimal tokenizer works, so the broken ones below fail for their fault only",
          "[tokenizer]") {
  const Tokenizer tok = Tokenizer::from_json(minimal().dump());
  CHECK(tok.encode("abba", false) == std::vector<std::int32_t>{2, 1, 0});
  CHECK(tok.decode(std::vector<std::int32_t>{2, 1}) == "ab b");  // no decoder: joined by spaces
}

TEST_CASE("malformed tokenizer.json files name the field at fault", "[tokenizer]") {
  json j = minimal();
  j.erase("model");
  expect_error(j.dump(), {"model", "missing"});

  j = minimal();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Bert"}}}}};
  expect_error(j.dump(), {"pre_tokenizer.pretokenizers[0].type", "unsupported pre-tokenizer 'Bert'"});

  j = minimal();
  j["model"]["merges"] = {"a b", "ab"};
  expect_error(j.dump(), {"model.merges[1]", "two tokens"});
  j["model"]["merges"] = {"a b", json::array({"a"})};
  expect_error(j.dump(), {"model.merges[1]"});
  j["model"]["merges"] = {"a x"};
  expect_error(j.dump(), {"model.merges[0]", "'x' is not in the vocabulary"});
  j["model"]["merges"] = {"b a"};
  expect_error(j.dump(), {"model.merges[0]", "merged token 'ba'"});

  j = minimal();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}},
                        {"behavior", "Isolated"}, {"invert", false}};
  expect_error(j.dump(), {"pre_tokenizer.pattern.Regex", "(unclosed", "does not compile"});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
  expect_error(j.dump(), {"pre_tokenizer.behavior", "Sideways"});

  j = minimal();
  j["model"]["vocab"] = {{"a", "zero"}};
  expect_error(j.dump(), {"model.vocab[\"a\"]", "token id"});
  j["model"]["vocab"] = json::array();
  expect_error(j.dump(), {"model.vocab", "expected an object"});
  j = minimal();
  j["model"]["type"] = "Unigram";
  expect_error(j.dump(), {"model.type", "Unigram"});
  j = minimal();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error(j.dump(), {"normalizer.type", "BertNormalizer"});
  j = minimal();
  j["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "WordPiece"}}}}};
  expect_error(j.dump(), {"decoder.decoders[0].type", "WordPiece"});
  j = minimal();
  j["added_tokens"] = {{{"content", "<s>"}}};
  expect_error(j.dump(), {"added_tokens[0].id", "missing"});
  j = minimal();
  j["model"]["unk_token"] = "<unk>";
  expect_error(j.dump(), {"model.unk_token", "<unk>"});

  expect_error("{\"model\": ", {"not valid JSON"});
  expect_error(minimal().dump(), {"tokenizer_config.json", "bos_token", "<s>"},
               R"({"bos_token": "<s>"})");
}

TEST_CASE("bad input to encode, decode and load is an error naming it", "[tokenizer]") {
  const Tokenizer tok = Tokenizer::from_json(minimal().dump());
  CHECK_THROWS_WITH(tok.encode("a\xFF" "b"), Catch::Contains("not valid UTF-8 (byte 1)"));
  CHECK_THROWS_WITH(tok.decode(std::vector<std::int32_t>{0, 7}), Catch::Contains("token id 7"));
  const std::string dir = write_tokenizer_dir("empty", "{}");
  std::filesystem::remove(std::filesystem::path(dir) / "tokenizer.json");
  CHECK_THROWS_WITH(Tokenizer::load(dir), Catch::Contains(dir) && Catch::Contains("tokenizer.json"));
  CHECK_THROWS_WITH(tok.apply_chat_template({}, true), Catch::Contains("no chat_template"));
}

}  // namespace
}  // namespace porta::test::tokenizer_error_tests

// The tokenizer inside a GGUF (tokenizer.ggml.*): a Hugging Face tokenizer written as GGUF keys
// and read back tokenizes exactly as the tokenizer.json did (the tiny model's SentencePiece-style
// BPE, and the real DeepSeek-V3 and Qwen3 byte-level ones against transformers.js's ids); a
// vocabulary without merges follows SentencePiece's score order (a scalar greedy merger written
// here); malformed or unsupported metadata is a porta::Error naming the key.
#include <catch2/catch.hpp>

#include <map>
#include <optional>

#include <porta/error.hpp>
#include <porta/gguf.hpp>
#include <porta/model/tiny_tokenizer.hpp>
#include <porta/tokenizer.hpp>

#include "gguf/gguf_test_support.hpp"
#include "tokenizer/tokenizer_test_support.hpp"

namespace porta::gguf::test::gguf_tokenizer_tests {
namespace {

using Metadata = std::vector<std::pair<std::string, gguf::Value>>;

std::string write_tokenizer_gguf(const std::string& name, const Metadata& metadata) {
  const std::string path = gguf_tmp(name + ".gguf");
  write_gguf(path, metadata, {});
  return path;
}

Metadata without(Metadata m, const std::string& key) {
  std::erase_if(m, [&](const auto& kv) { return kv.first == key; });
  return m;
}

Metadata with(Metadata m, const std::string& key, gguf::Value v) {
  for (auto& kv : m)
    if (kv.first == key) {
      kv.second = std::move(v);
      return m;
    }
  m.emplace_back(key, std::move(v));
  return m;
}

const std::vector<std::string> kTexts = {
    "Hello! How are you today?",
    "The model routes each token to a few of its experts.",
    "  two  spaces, a tab\tand a line\nbreak",
    "[INST] What is the weather like in Paris? [/INST]",
    "unseen words: zyxwvut qqq",
    "",
};

// One folder per test case: ctest runs test cases as parallel processes.
std::string tiny_dir(const std::string& name) {
  const std::string dir = gguf_tmp(name + "_hf");
  model::write_tiny_tokenizer(dir, 256);
  return dir;
}

// SentencePiece BPE as its definition reads: start from characters, repeatedly merge the
// adjacent pair whose concatenation is in the vocabulary with the highest score (leftmost on
// ties), map pieces to ids (unknown pieces to unk).
std::vector<std::int32_t> spm_reference(const std::vector<std::string>& tokens,
                                        const std::vector<float>& scores, std::string text,
                                        std::int32_t unk) {
  std::map<std::string, std::int32_t> ids;
  for (std::size_t i = 0; i < tokens.size(); ++i) ids.emplace(tokens[i], static_cast<int>(i));
  // The U+2581 put before the text unless it starts with a space (Metaspace, prepend "first").
  std::string escaped = text.starts_with(' ') ? "" : "\xE2\x96\x81";
  for (char c : text) escaped += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
  std::vector<std::string> pieces;
  for (std::size_t i = 0; i < escaped.size();) {
    std::size_t n = 1;
    const auto b = static_cast<unsigned char>(escaped[i]);
    if (b >= 0xF0)
      n = 4;
    else if (b >= 0xE0)
      n = 3;
    else if (b >= 0xC0)
      n = 2;
    pieces.push_back(escaped.substr(i, n));
    i += n;
  }
  for (;;) {
    std::size_t best = pieces.size();
    float best_score = 0;
    for (std::size_t k = 0; k + 1 < pieces.size(); ++k) {
      const auto it = ids.find(pieces[k] + pieces[k + 1]);
      if (it == ids.end()) continue;
      const float s = scores[static_cast<std::size_t>(it->second)];
      if (best == pieces.size() || s > best_score) {
        best = k;
        best_score = s;
      }
    }
    if (best == pieces.size()) break;
    pieces[best] += pieces[best + 1];
    pieces.erase(pieces.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  std::vector<std::int32_t> out;
  for (const auto& p : pieces) {
    const auto it = ids.find(p);
    const std::int32_t id = it == ids.end() ? unk : it->second;
    if (!(id == unk && !out.empty() && out.back() == unk)) out.push_back(id);  // fuse_unk
  }
  return out;
}

}  // namespace

TEST_CASE("the tiny model's tokenizer as GGUF metadata tokenizes like its tokenizer.json",
          "[gguf][tokenizer]") {
  const std::string dir = tiny_dir("tiny_tokenizer");
  const Metadata m = tokenizer_metadata_from_hf(dir);
  const std::string path = write_tokenizer_gguf("tiny_tokenizer", m);
  const Tokenizer hf = Tokenizer::load(dir);
  const Tokenizer gg = Tokenizer::load(path);  // load() recognises a GGUF file
  CHECK(gg.vocab_size() == hf.vocab_size());
  CHECK(gg.bos_id() == hf.bos_id());
  CHECK(gg.eos_id() == hf.eos_id());
  CHECK(gg.bos_token() == "<s>");
  for (const std::string& text : kTexts) {
    INFO(text);
    const auto ids = hf.encode(text);
    CHECK(ids.front() == 1);  // the BOS the config asks for
    CHECK(gg.encode(text) == ids);
    CHECK(gg.encode(text, false) == hf.encode(text, false));
    CHECK(gg.decode(ids) == hf.decode(ids));
    CHECK(gg.decode(ids, true) == hf.decode(ids, true));
  }
  for (std::int32_t id = 0; id < hf.vocab_size(); ++id)
    CHECK(gg.is_special(id) == hf.is_special(id));
  REQUIRE(gg.has_chat_template());
  const std::vector<ChatMessage> chat = {{"system", "Be brief."}, {"user", "Hello!"}};
  CHECK(gg.apply_chat_template(chat, true) == hf.apply_chat_template(chat, true));
  CHECK(gg.apply_chat_template(chat, true).starts_with("<s>Be brief."));
}

TEST_CASE("a tokenizer padded to the model's vocab_size keeps its ids", "[gguf][tokenizer]") {
  const std::string dir = tiny_dir("tiny_padded");
  const Tokenizer hf = Tokenizer::load(dir);
  const std::string path =
      write_tokenizer_gguf("tiny_padded", tokenizer_metadata_from_hf(dir, 300));
  const auto meta = tokenizer_metadata(GgufFile::open(path));
  REQUIRE(meta);
  // One entry per embedding row, as llama.cpp's converter writes them: the ids past the
  // tokenizer's are unused "[PADn]" tokens (type 5), and every score/type list has the length.
  REQUIRE(meta->tokens.size() == 300);
  REQUIRE(meta->token_types.size() == 300);
  REQUIRE(meta->scores.size() == 300);
  CHECK(meta->tokens[256] == "[PAD256]");
  CHECK(meta->tokens[299] == "[PAD299]");
  CHECK(meta->token_types[299] == 5);
  const Tokenizer gg = Tokenizer::from_gguf(path);
  for (const std::string& text : kTexts) CHECK(gg.encode(text) == hf.encode(text));
  try {
    tokenizer_metadata_from_hf(dir, 200);
    FAIL("a vocab_size below the tokenizer's ids was taken");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidArgument);
    CHECK_THAT(e.what(), Catch::Contains("256 ids") && Catch::Contains("vocab_size 200"));
  }
}

TEST_CASE("a SentencePiece GGUF without merges merges in score order", "[gguf][tokenizer]") {
  const Metadata m =
      without(tokenizer_metadata_from_hf(tiny_dir("tiny_scores")), "tokenizer.ggml.merges");
  const std::string path = write_tokenizer_gguf("tiny_scores", m);
  const GgufFile file = GgufFile::open(path);
  const auto meta = tokenizer_metadata(file);
  REQUIRE(meta);
  REQUIRE(meta->merges.empty());
  REQUIRE(meta->scores.size() == meta->tokens.size());
  const Tokenizer gg = Tokenizer::from_gguf(path);
  for (const std::string& text : kTexts) {
    if (text.empty() || text.find('[') != std::string::npos) continue;  // added tokens aside
    INFO(text);
    CHECK(gg.encode(text, false) ==
          spm_reference(meta->tokens, meta->scores, text, static_cast<int>(*meta->unknown_id)));
  }
  // Scores reversed: a different order, still the reference's.
  std::vector<gguf::Value> reversed;
  for (std::size_t i = 0; i < meta->scores.size(); ++i)
    reversed.push_back(gguf::Value::f32(static_cast<float>(i)));
  std::vector<float> rev_scores(meta->scores.size());
  for (std::size_t i = 0; i < rev_scores.size(); ++i) rev_scores[i] = static_cast<float>(i);
  const std::string rev_path = write_tokenizer_gguf(
      "tiny_scores_reversed",
      with(m, "tokenizer.ggml.scores", gguf::Value::array_of(ValueType::F32, reversed)));
  const Tokenizer rev = Tokenizer::from_gguf(rev_path);
  int differ = 0;
  for (const std::string text : {"The quick brown fox jumps over the lazy dog.", "the theme",
                                 "routes outputs", "Please write a short story"}) {
    INFO(text);
    CHECK(rev.encode(text, false) ==
          spm_reference(meta->tokens, rev_scores, text, static_cast<int>(*meta->unknown_id)));
    differ += rev.encode(text, false) != gg.encode(text, false);
  }
  CHECK(differ > 0);  // the scores, not the vocabulary alone, decide
}

namespace {

// A real tokenizer of ../shared/data/tokenizers written as GGUF keys and read back encodes every
// case as transformers.js did.
std::optional<Tokenizer> check_real_tokenizer(const std::string& name, const std::string& pre,
                                              int cases) {
  const std::string dir = porta::test::tokenizer_data_dir(name);
  if (dir.empty()) return std::nullopt;
  const std::string path = write_tokenizer_gguf(name, tokenizer_metadata_from_hf(dir));
  const GgufFile file = GgufFile::open(path);
  CHECK(file.get_string("tokenizer.ggml.model") == "gpt2");
  CHECK(file.get_string("tokenizer.ggml.pre") == pre);
  Tokenizer gg = Tokenizer::from_gguf(path);
  int checked = 0;
  for (const auto& c : porta::test::read_cases(dir)) {
    if (!c.contains("text")) continue;
    const std::string text = c["text"];
    INFO(name << ": " << text);
    CHECK(gg.encode(text, false) == c["ids"].get<std::vector<std::int32_t>>());
    CHECK(gg.decode(c["ids"].get<std::vector<std::int32_t>>()) == c["decoded"].get<std::string>());
    ++checked;
  }
  CHECK(checked == cases);
  return std::optional<Tokenizer>(std::move(gg));
}

}  // namespace

TEST_CASE("DeepSeek-V3's tokenizer survives GGUF and encodes every case exactly",
          "[gguf][tokenizer]") {
  const auto gg = check_real_tokenizer("deepseek_v3", "deepseek-v3", 29);
  if (!gg) return;
  CHECK(gg->bos_id() == 0);
  CHECK(gg->encode("hi").front() == 0);  // add_bos_token
  CHECK(gg->has_chat_template());
}

TEST_CASE("Qwen3's tokenizer survives GGUF and encodes every case exactly", "[gguf][tokenizer]") {
  check_real_tokenizer("qwen3", "qwen2", 29);
}

TEST_CASE("bad GGUF tokenizer metadata is an error naming the key", "[gguf][tokenizer]") {
  const Metadata m = tokenizer_metadata_from_hf(tiny_dir("tiny_errors"));
  auto fails = [](const std::string& name, const Metadata& md, ErrorCode code,
                  const std::string& needle) {
    const std::string path = write_tokenizer_gguf(name, md);
    try {
      Tokenizer::from_gguf(path);
      FAIL("no error for " << name);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(e.code() == code);
      CHECK_THAT(e.what(), Catch::Contains(needle));
    }
  };
  fails("tok_bert", with(m, "tokenizer.ggml.model", gguf::Value::str("bert")),
        ErrorCode::Unsupported, "tokenizer.ggml.model 'bert'");
  const Metadata gpt2 = with(m, "tokenizer.ggml.model", gguf::Value::str("gpt2"));
  fails("tok_pre", with(gpt2, "tokenizer.ggml.pre", gguf::Value::str("falcon")),
        ErrorCode::Unsupported, "'falcon'");
  fails("tok_no_merges", without(gpt2, "tokenizer.ggml.merges"), ErrorCode::CorruptFile,
        "tokenizer.ggml.merges");
  fails("tok_bad_merge", with(m, "tokenizer.ggml.merges", gguf::Value::strings({"ab"})),
        ErrorCode::CorruptFile, "tokenizer.ggml.merges[0]");
  fails("tok_no_scores", without(without(m, "tokenizer.ggml.merges"), "tokenizer.ggml.scores"),
        ErrorCode::CorruptFile, "tokenizer.ggml.scores");
  fails("tok_bos", with(m, "tokenizer.ggml.bos_token_id", gguf::Value::u32(100000)),
        ErrorCode::CorruptFile, "tokenizer.ggml.bos_token_id");
  fails("tok_none", without(m, "tokenizer.ggml.model"), ErrorCode::NotFound,
        "no tokenizer.ggml.model");
}

}  // namespace porta::gguf::test::gguf_tokenizer_tests

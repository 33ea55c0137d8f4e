// `porta gen-checkpoint --gguf`, `porta inspect FILE.gguf` and `porta run --model FILE.gguf`
// through the real program: the GGUF runs like its safetensors folder, corrupt files are a
// message and exit status 1.
#ifdef PORTA_CLI_PATH

#include <catch2/catch.hpp>

#include <filesystem>

#include "tools/cli_support.hpp"
#include "gguf/gguf_test_support.hpp"
#include "model/model_test_support.hpp"

namespace porta::test::gguf_cli_tests {
namespace {

// The ids after "tokens: " up to the end of that line.
std::string tokens_of(const std::string& output) {
  const std::size_t at = output.find("tokens: ");
  if (at == std::string::npos) return "(none)";
  const std::size_t begin = at + 8;
  return output.substr(begin, output.find('\n', begin) - begin);
}

}  // namespace

TEST_CASE("porta run on a GGUF gives the tokens of its safetensors copy", "[gguf][cli]") {
  for (const std::string kind : {"deepseek_v3", "mixtral", "qwen2_moe"}) {
    const std::string dir = model_tmpdir("gguf_cli_" + kind);
    const std::string file = dir + "/model.gguf";
    const CliResult gen =
        run_porta("gen-checkpoint --kind " + kind + " --seed 4 --out " + dir + " --gguf " + file);
    INFO(gen.output);
    REQUIRE(gen.exit_code == 0);
    const std::string args = " --backend reference --prompt-ids 5,6,7 --max-new-tokens 5";
    const CliResult folder = run_porta("run --model " + dir + args);
    const CliResult gguf = run_porta("run --model " + file + args);
    INFO(folder.output << "\n" << gguf.output);
    REQUIRE(folder.exit_code == 0);
    REQUIRE(gguf.exit_code == 0);
    CHECK(tokens_of(gguf.output) == tokens_of(folder.output));
    CHECK(tokens_of(gguf.output) != "(none)");
    CHECK_THAT(gguf.output, !Catch::Contains("dequantized"));
  }
}

TEST_CASE("porta run --prompt reads the tokenizer inside the GGUF", "[gguf][cli]") {
  const std::string dir = model_tmpdir("gguf_cli_prompt");
  const std::string file = dir + "/model.gguf";
  REQUIRE(run_porta("gen-checkpoint --kind mixtral --seed 2 --out " + dir + " --gguf " + file)
              .exit_code == 0);
  // The GGUF alone: no tokenizer.json beside it.
  const std::string alone = model_tmpdir("gguf_cli_prompt_alone") + "/model.gguf";
  std::filesystem::copy_file(file, alone, std::filesystem::copy_options::overwrite_existing);
  const std::string args =
      " --backend reference --prompt \"Hello! How are you today?\" --max-new-tokens 4";
  const CliResult folder = run_porta("run --model " + dir + args);
  const CliResult gguf = run_porta("run --model " + alone + args);
  INFO(folder.output << "\n" << gguf.output);
  REQUIRE(folder.exit_code == 0);
  REQUIRE(gguf.exit_code == 0);
  CHECK(tokens_of(gguf.output) == tokens_of(folder.output));
  CHECK(tokens_of(gguf.output) != "(none)");
  const auto prompt_of = [](const std::string& out) {
    const std::size_t at = out.find("prompt: ");
    return at == std::string::npos ? std::string("(none)") : out.substr(at, out.find('\n', at) - at);
  };
  CHECK(prompt_of(gguf.output) == prompt_of(folder.output));
  CHECK(prompt_of(gguf.output).starts_with("prompt: 1 "));  // the BOS, then the text
}

TEST_CASE("porta run keeps q4_0 GGUF matrices and the embedding table packed, and says so",
          "[gguf][cli]") {
  const std::string dir = model_tmpdir("gguf_cli_q4");
  const std::string file = dir + "/model.gguf";
  REQUIRE(run_porta("gen-checkpoint --kind qwen3_moe --out " + dir + " --gguf " + file +
                    " --gguf-type q4_0")
              .exit_code == 0);
  const CliResult run =
      run_porta("run --model " + file + " --backend cpu --prompt-ids 1,2 --max-new-tokens 2");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK_THAT(run.output,
             Catch::Contains("packed, computed on in place (q4_0: token_embd.weight, "
                             "blk.*.attn_q.weight") &&
                 Catch::Contains("blk.*.ffn_gate_exps.weight") &&
                 !Catch::Contains("at load") && Catch::Contains(" 0 copied") &&
                 Catch::Contains("quantized: gguf blocks (q4_0)") &&
                 Catch::Contains("; activations rounded to llama.cpp's 8-bit blocks (ggml_q8)"));
  const auto run_with = [&](const std::string& flags) {
    return run_porta("run --model " + file + " --backend cpu --prompt-ids 1,2 --max-new-tokens 2 " +
                     flags);
  };
  // llama.cpp's numerics by default, exact products on request; other modes are refused by
  // the flag's check.
  const CliResult exact = run_with("--gguf-activations none");
  INFO(exact.output);
  CHECK(exact.exit_code == 0);
  CHECK_THAT(exact.output, Catch::Contains("; f32 activations, exact products"));
  const CliResult bad = run_with("--gguf-activations dynamic_int8");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.output, Catch::Contains("--gguf-activations"));
  const CliResult dequantized = run_with("--dequantize");
  INFO(dequantized.output);
  CHECK(dequantized.exit_code == 0);
  CHECK_THAT(dequantized.output, Catch::Contains("(--dequantize)"));
  CHECK_THAT(dequantized.output, !Catch::Contains("quantized: gguf blocks"));
}

TEST_CASE("porta inspect lists a GGUF's metadata and tensors; corrupt files exit 1",
          "[gguf][cli]") {
  const std::string dir = model_tmpdir("gguf_cli_inspect");
  const std::string file = dir + "/model.gguf";
  REQUIRE(run_porta("gen-checkpoint --kind deepseek_v2 --out " + dir + " --gguf " + file +
                    " --gguf-type q8_0 --gguf-split-kv-b")
              .exit_code == 0);
  const CliResult out = run_porta("inspect " + file);
  INFO(out.output);
  CHECK(out.exit_code == 0);
  CHECK_THAT(out.output, Catch::Contains("GGUF version 3") &&
                             Catch::Contains("general.architecture") &&
                             Catch::Contains("\"deepseek2\"") &&
                             Catch::Contains("deepseek2.expert_count") &&
                             Catch::Contains("blk.1.ffn_gate_exps.weight") &&
                             Catch::Contains("[8, 32, 64]") && Catch::Contains("{64, 32, 8}") &&
                             Catch::Contains("blk.0.attn_k_b.weight") && Catch::Contains("q8_0"));

  std::string bytes = io::test::read_bytes(file);
  bytes.resize(bytes.size() / 2);
  const std::string broken = dir + "/broken.gguf";
  io::test::write_bytes(broken, bytes);
  for (const std::string command : {"inspect ", "run --prompt-ids 1 --model "}) {
    const CliResult bad = run_porta(command + broken);
    INFO(bad.output);
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.output, Catch::Contains("runs past the end"));
  }
}

}  // namespace porta::test::gguf_cli_tests

#endif  // PORTA_CLI_PATH

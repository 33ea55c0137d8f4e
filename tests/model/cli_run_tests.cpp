// `porta gen-checkpoint` and `porta run` end to end: the generated checkpoint runs on every
// available backend with the same greedy tokens, --dump-logits writes the prompt's [T, vocab]
// logits, and bad input is a message with exit status 1, never a crash.
#ifdef PORTA_CLI_PATH

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <catch2/catch.hpp>

#include <porta/device.hpp>
#include <porta/io.hpp>

#include "tools/cli_support.hpp"
#include "model/model_test_support.hpp"

namespace porta::test::model_cli_run_tests {
namespace {

// The ids `porta run` printed after "tokens: ".
std::string tokens_line(const std::string& output) {
  const std::string line = line_after(output, "tokens");
  return line.substr(0, line.find_first_not_of("0123456789 "));
}

TEST_CASE(
    "porta run gives the same greedy tokens on every backend for the tiny V3 and V2 "
    "checkpoints",
    "[model]") {
  for (const std::string kind : {"deepseek_v3", "deepseek_v2"}) {
    const std::string dir = model_tmpdir("cli_" + kind);
    const CliResult gen = run_porta("gen-checkpoint --kind " + kind + " --seed 3 --out " + dir);
    INFO(gen.output);
    REQUIRE(gen.exit_code == 0);
    const std::string npy = dir + "/logits.npy";
    const CliResult ref = run_porta("run --model " + dir +
                                    " --backend reference --prompt-ids 1,2,3,4 --max-new-tokens 6 "
                                    "--dump-logits " +
                                    npy);
    INFO(ref.output);
    REQUIRE(ref.exit_code == 0);
    CHECK_THAT(ref.output, Catch::Contains("prefill: 4 tokens") &&
                               Catch::Contains("decode: 5 tokens") && Catch::Contains("tok/s"));
    const std::string expected = tokens_line(ref.output);
    CHECK(std::count(expected.begin(), expected.end(), ' ') == 5);
    // The dumped logits are the prompt's [T, vocab] f32 logits.
    const Tensor dumped = io::read_npy(npy);
    CHECK(dumped.shape() == Shape{4, 256});
    const model::Model m = model::Model::load(dir);
    CHECK(dumped.to_f32() == porta_logits(m, {1, 2, 3, 4}).to_f32());
    for (const auto& d : list_devices()) {
      if (!d.available || d.name == "reference") continue;
      const CliResult other = run_porta("run --model " + dir + " --backend " + d.name +
                                        " --prompt-ids 1,2,3,4 --max-new-tokens 6");
      INFO(other.output);
      REQUIRE(other.exit_code == 0);
      CHECK(tokens_line(other.output) == expected);
      if (d.kind == "simulator") CHECK_THAT(other.output, Catch::Contains("simulated device time"));
    }
  }
}

TEST_CASE("porta run and gen-checkpoint report bad input with a message and exit status 1",
          "[model]") {
  const std::string dir = model_tmpdir("cli_bad");
  REQUIRE(run_porta("gen-checkpoint --kind mixtral --out " + dir).exit_code == 0);
  const CliResult bad_id = run_porta("run --model " + dir + " --prompt-ids 1,999");
  CHECK(bad_id.exit_code == 1);
  CHECK_THAT(bad_id.output, Catch::Contains("token id 999"));
  const CliResult not_ids = run_porta("run --model " + dir + " --prompt-ids 1,x");
  CHECK(not_ids.exit_code == 1);
  CHECK_THAT(not_ids.output, Catch::Contains("'x' is not a token id"));
  const CliResult no_model = run_porta("run --model " + dir + "/nowhere --prompt-ids 1");
  CHECK(no_model.exit_code == 1);
  CHECK_THAT(no_model.output, Catch::Contains("nowhere"));
  const CliResult bad_backend = run_porta("run --model " + dir + " --backend tpu --prompt-ids 1");
  CHECK(bad_backend.exit_code == 1);
  CHECK_THAT(bad_backend.output, Catch::Contains("tpu"));
  const CliResult bad_kind = run_porta("gen-checkpoint --kind llama --out " + dir);
  CHECK(bad_kind.exit_code == 1);
  CHECK_THAT(bad_kind.output, Catch::Contains("llama") && Catch::Contains("deepseek_v3"));
  const CliResult sampled =
      run_porta("run --model " + dir + " --prompt-ids 1,2 --temperature 0.8 --top-p 0.9 --seed 5");
  CHECK(sampled.exit_code == 0);
  CHECK(tokens_line(sampled.output) ==
        tokens_line(run_porta("run --model " + dir +
                              " --prompt-ids 1,2 --temperature 0.8 --top-p 0.9 --seed 5")
                        .output));
}

TEST_CASE("porta run reports what loading mapped and copied, and refuses a model over "
          "--max-memory before loading it",
          "[model][zerocopy]") {
  const std::string dir = model_tmpdir("cli_memory");
  REQUIRE(run_porta("gen-checkpoint --kind deepseek_v2 --out " + dir).exit_code == 0);
  const CliResult ok = run_porta("run --model " + dir + " --prompt-ids 1,2,3 --max-new-tokens 2");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  CHECK_THAT(ok.output, Catch::Contains("memory: needs") && Catch::Contains("load: ") &&
                            Catch::Contains("bytes mapped") && Catch::Contains("kv_b_proj") &&
                            Catch::Contains("peak RSS: "));
  const CliResult refused =
      run_porta("run --model " + dir + " --prompt-ids 1,2,3 --max-memory 64K");
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("--max-memory") &&
                                 Catch::Contains("not loading it") &&
                                 !Catch::Contains("load: "));
  const CliResult bad_limit = run_porta("run --model " + dir + " --prompt-ids 1 --max-memory lots");
  CHECK(bad_limit.exit_code == 1);
  CHECK_THAT(bad_limit.output, Catch::Contains("'lots' is not a byte count"));
  const CliResult bad_preset = run_porta("gen-checkpoint --preset gpt-5 --out " + dir + "/x");
  CHECK(bad_preset.exit_code == 1);
  CHECK_THAT(bad_preset.output, Catch::Contains("unknown preset 'gpt-5'"));
  const CliResult vocab_alone = run_porta("gen-checkpoint --vocab 300 --out " + dir + "/x");
  CHECK(vocab_alone.exit_code == 1);
  CHECK_THAT(vocab_alone.output, Catch::Contains("--vocab needs --preset"));
  const CliResult bad_layers = run_porta("gen-checkpoint --layers -2 --out " + dir + "/x");
  CHECK(bad_layers.exit_code == 1);
  CHECK_THAT(bad_layers.output, Catch::Contains("-2 layers: not a layer count"));
  // A tiny kind with another layer count (DeepSeek-V2-Lite as llama.cpp recognises it: 27).
  const CliResult lite = run_porta("gen-checkpoint --kind deepseek_v2 --layers 27 --out " + dir +
                                   "/lite27");
  INFO(lite.output);
  REQUIRE(lite.exit_code == 0);
  std::ifstream config(dir + "/lite27/config.json");
  const std::string text{std::istreambuf_iterator<char>(config), {}};
  CHECK_THAT(text, Catch::Contains("\"num_hidden_layers\": 27"));
}

}  // namespace
}  // namespace porta::test::model_cli_run_tests

#endif

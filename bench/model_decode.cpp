// porta-bench-model-decode: prefill and decode tokens/s of a mid-size random DeepSeek-V2-Lite-like
// model (hidden 2048, 2 layers: one dense, one MoE with 64 experts of 1408, top-6, 2 shared; MLA
// with kv_lora_rank 512; vocab 102400) on a backend, with each decode step's time next to its
// memory-bandwidth bound: the bytes of weights one step reads divided by a streaming-read
// bandwidth measured here on the same machine.
//
//   porta-bench-model-decode [--quick] [--backend cpu] [--dtype bf16|f32] [--prompt 32]
//                            [--steps 8] [--reps 3]
// --quick: vocab 32000 and 16 experts, 16 prompt tokens, 4 steps (a smoke run of ~a minute).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <porta/model/checkpoint_gen.hpp>
#include <porta/model/generate.hpp>

#include "timing.hpp"

namespace {

using porta_bench::Clock;
using porta_bench::median;
using porta_bench::streaming_read_gbps;

std::string v2_lite_like_config(bool quick) {
  return fmt::format(R"({{
  "model_type": "deepseek_v2", "vocab_size": {}, "hidden_size": 2048,
  "intermediate_size": 10944, "moe_intermediate_size": 1408, "num_hidden_layers": 2,
  "num_attention_heads": 16, "num_key_value_heads": 16, "n_shared_experts": 2,
  "n_routed_experts": {}, "routed_scaling_factor": 1.0, "kv_lora_rank": 512,
  "q_lora_rank": null, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
  "topk_method": "greedy", "scoring_func": "softmax", "n_group": 1, "topk_group": 1,
  "num_experts_per_tok": 6, "first_k_dense_replace": 1, "moe_layer_freq": 1,
  "norm_topk_prob": false, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
  "rope_theta": 10000, "rope_scaling": {{"type": "yarn", "factor": 40,
  "original_max_position_embeddings": 4096, "beta_fast": 32, "beta_slow": 1,
  "mscale": 0.707, "mscale_all_dim": 0.707}}, "tie_word_embeddings": false
}})",
                     quick ? 32000 : 102400, quick ? 16 : 64);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string backend = "cpu";
  std::string dtype = "bf16";
  long prompt_len = 32, steps = 8, reps = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return porta_bench::flag_value(argc, argv, i); };
    if (a == "--quick") {
      quick = true;
      prompt_len = 16;
      steps = 4;
    } else if (a == "--backend") {
      backend = value();
    } else if (a == "--dtype") {
      dtype = value();
    } else if (a == "--prompt") {
      prompt_len = std::stol(value());
    } else if (a == "--steps") {
      steps = std::stol(value());
    } else if (a == "--reps") {
      reps = std::stol(value());
    } else {
      fmt::print(stderr,
                 "usage: porta-bench-model-decode [--quick] [--backend NAME] [--dtype bf16|f32] "
                 "[--prompt N] [--steps N] [--reps N]\n");
      return 2;
    }
  }
  try {
    using namespace porta;
    const std::string config_json = v2_lite_like_config(quick);
    const model::ModelConfig config = model::parse_config(config_json, "v2-lite-like");
    auto start = Clock::now();
    model::Model m = [&] {
      const auto tensors = model::random_weights(config, {.seed = 1, .dtype = parse_dtype(dtype)});
      const std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
      return model::Model::from_tensors(config, by_name);
    }();
    const double gen_s = std::chrono::duration<double>(Clock::now() - start).count();
    const double weights_gb = static_cast<double>(m.weight_bytes()) / 1e9;
    const double step_gb = static_cast<double>(m.decode_bytes_per_token()) / 1e9;
    fmt::print(
        "model: V2-Lite-like, hidden 2048, 2 layers (1 dense + 1 MoE, {} experts of 1408, "
        "top-6, 2 shared), MLA kv_lora 512, vocab {}, {} weights: {:.2f} GB "
        "(generated in {:.1f} s)\n",
        config.num_experts, config.vocab_size, dtype, weights_gb, gen_s);

    const double gbps = streaming_read_gbps();
    fmt::print("streaming read bandwidth: {:.1f} GB/s ({} threads)\n", gbps,
               std::thread::hardware_concurrency());

    model::Session session(m, {.backend = backend, .capacity = prompt_len + steps + 1});
    std::vector<std::int32_t> prompt(static_cast<std::size_t>(prompt_len));
    for (long i = 0; i < prompt_len; ++i)
      prompt[static_cast<std::size_t>(i)] =
          static_cast<std::int32_t>((i * 7919 + 13) % config.vocab_size);
    start = Clock::now();
    session.prepare(prompt_len, false);
    session.prepare(1, true);
    fmt::print("compile (prefill T={} and decode T=1 on {}): {:.2f} s\n", prompt_len, backend,
               std::chrono::duration<double>(Clock::now() - start).count());

    std::vector<double> prefill_s, decode_s;
    for (long rep = 0; rep < reps; ++rep) {
      session.reset();
      auto t0 = Clock::now();
      Tensor logits = session.forward(prompt);
      prefill_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      const auto vocab = static_cast<std::size_t>(config.vocab_size);
      std::int32_t next =
          model::argmax({logits.data_as<float>() +
                             static_cast<std::size_t>(logits.shape()[0] - 1) * vocab,
                         vocab});
      for (long s = 0; s < steps; ++s) {
        t0 = Clock::now();
        logits = session.forward({&next, 1});
        decode_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        next = model::argmax({logits.data_as<float>(), vocab});
      }
    }
    const double prefill = median(prefill_s);
    const double decode = median(decode_s);
    const double bound = step_gb / gbps;
    fmt::print("prefill: {} tokens in {:.1f} ms (median of {}) = {:.1f} tok/s\n", prompt_len,
               prefill * 1e3, reps, prompt_len / prefill);
    fmt::print("decode:  {:.1f} ms/token (median of {} steps) = {:.2f} tok/s\n", decode * 1e3,
               decode_s.size(), 1.0 / decode);
    fmt::print(
        "decode bandwidth bound: {:.3f} GB of weights per step / {:.1f} GB/s = {:.1f} ms "
        "({:.1f} tok/s); measured/bound = {:.2f}x, effective {:.1f} GB/s\n",
        step_gb, gbps, bound * 1e3, 1.0 / bound, decode / bound, step_gb / decode);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "porta-bench-model-decode: {}\n", e.what());
    return 1;
  }
}

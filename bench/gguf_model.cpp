// porta-bench-gguf-model: a DeepSeek-V2-Lite-shaped model (hidden 2048, 1 dense + N MoE layers
// of 64 experts of 1408, top-6, 2 shared; MLA kv_lora 512; small vocab) written as GGUF in q8_0
// and q4_K by porta's own writer (llama.cpp's converter layout), loaded with its matrices kept
// packed (ggml blocks computed in place) and, side by side in one run, the same weights in bf16.
// Reports prefill and decode tokens/s, and decode's bytes of weights read per token next to the
// bandwidth bound (those bytes / a streaming-read bandwidth measured in the same run).
//
//   porta-bench-gguf-model [--quick] [--backend cpu] [--layers 2] [--experts 64] [--vocab 32000]
//                          [--prompt 32] [--steps 8] [--reps 3] [--dir /tmp/porta-bench-gguf]
//                          [--preset deepseek-v2-lite] [--tokenizer DIR]
// --quick: 16 experts, vocab 8000, 16 prompt tokens, 4 steps.
// --preset: another published config (deepseek-v3, mixtral-8x7b, qwen3-30b-a3b), cut the same way.
// --tokenizer: write this Hugging Face tokenizer into the files, at the preset's full vocabulary
// unless --vocab says otherwise, so that other runtimes load them too (bench/llama-cpp/).
// --experts 0 keeps the preset's expert count. --reuse loads the files already in --dir (written
// by an earlier run with the same flags) instead of writing them again.
// --activations: how the packed matrices meet their activations, ggml_q8 (llama.cpp's 8-bit
// blocks and integer kernels), none (f32, exact products) or both (default: each file loaded
// twice, side by side). --types: the files, default q8_0,q4_K; any ggml type porta writes, or
// llama-quantize's recipes q4_K_M and q5_K_M (model::GgufMix). --no-bf16 leaves out the bf16
// copy, and with --reuse and the files there generates no weights at all (quick profiling).
// --profile: after the table, each subject's last prefill and decode step by op (host wall time,
// summed per op kind), to see which ops a change should go after. --split-kv-b (DeepSeek) writes
// MLA's kv_b as current llama.cpp converters do, attn_k_b + attn_v_b, into files named
// <preset>_shaped_<type>_split_kv_b.gguf.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <porta/model/checkpoint_gen.hpp>
#include <porta/model/generate.hpp>
#include <porta/model/gguf.hpp>

#include "timing.hpp"

namespace {

using porta_bench::Clock;
using porta_bench::median;
using porta_bench::seconds_since;

struct Subject {
  std::string label;
  porta::model::Model model;
  std::unique_ptr<porta::model::Session> session;
  std::vector<double> prefill_s, decode_s;
  porta::Profile last_prefill, last_decode;
};

// The ops of a profile summed by kind, longest first.
void print_profile_by_op(const std::string& what, const porta::Profile& profile) {
  std::map<std::string, std::pair<double, int>> by_op;
  double total_us = 0;
  for (const porta::OpProfile& op : profile.ops) {
    auto& [us, count] = by_op[op.op];
    us += op.time_us;
    ++count;
    total_us += op.time_us;
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> sorted(by_op.begin(), by_op.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  fmt::print("\n{} by op ({:.2f} ms in ops, run total {:.2f}):\n", what, total_us / 1e3,
             profile.total_us / 1e3);
  for (const auto& [op, figures] : sorted)
    fmt::print("  {:<24} {:>4} x {:>9.2f} ms {:>5.1f}%\n", op, figures.second, figures.first / 1e3,
               100.0 * figures.first / std::max(total_us, 1e-9));
}

}  // namespace

int main(int argc, char** argv) {
  std::string backend = "cpu", dir = "/tmp/porta-bench-gguf", preset = "deepseek-v2-lite",
              tokenizer, activations = "both";
  long layers = 2, experts = 64, vocab = -1, prompt_len = 32, steps = 8, reps = 3;
  bool reuse = false, bf16 = true, profile = false, split_kv_b = false;
  std::string types = "both";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return porta_bench::flag_value(argc, argv, i); };
    if (a == "--quick") {
      experts = 16;
      vocab = 8000;
      prompt_len = 16;
      steps = 4;
    } else if (a == "--backend") {
      backend = value();
    } else if (a == "--layers") {
      layers = std::stol(value());
    } else if (a == "--experts") {
      experts = std::stol(value());
    } else if (a == "--vocab") {
      vocab = std::stol(value());
    } else if (a == "--prompt") {
      prompt_len = std::stol(value());
    } else if (a == "--steps") {
      steps = std::stol(value());
    } else if (a == "--reps") {
      reps = std::stol(value());
    } else if (a == "--dir") {
      dir = value();
    } else if (a == "--preset") {
      preset = value();
    } else if (a == "--tokenizer") {
      tokenizer = value();
    } else if (a == "--activations") {
      activations = value();
    } else if (a == "--types") {
      types = value();
    } else if (a == "--no-bf16") {
      bf16 = false;
    } else if (a == "--reuse") {
      reuse = true;
    } else if (a == "--profile") {
      profile = true;
    } else if (a == "--split-kv-b") {
      split_kv_b = true;
    } else {
      fmt::print(stderr,
                 "usage: porta-bench-gguf-model [--quick] [--backend NAME] [--layers N] "
                 "[--experts N] [--vocab N] [--prompt N] [--steps N] [--reps N] [--dir DIR] "
                 "[--preset NAME] [--tokenizer DIR] [--reuse] [--activations ggml_q8|none|both] "
                 "[--types q8_0,q4_K,q4_K_M,...] [--no-bf16] "
                 "[--profile] [--split-kv-b]\n");
      return 2;
    }
  }
  try {
    using namespace porta;
    // A published config (DeepSeek-V2-Lite's by default), cut to `layers` layers and `vocab`
    // tokens, with `experts` routed experts (the same per-token work; fewer bytes to write and
    // map). A tokenizer written into the files keeps the full vocabulary unless told otherwise.
    if (vocab < 0) vocab = tokenizer.empty() ? 32000 : 0;
    model::ModelConfig config =
        model::parse_config(model::real_config_json(preset, layers, vocab), preset);
    vocab = config.vocab_size;
    if (experts > 0) config.num_experts = experts;
    std::filesystem::create_directories(dir);
    std::vector<Subject> subjects;
    {
      auto start = Clock::now();
      // A file per type, or per llama-quantize recipe (q4_K_M: the type mix of the files most
      // GGUF users hold).
      struct FileKind {
        std::string name;
        model::GgufExportOptions options;
      };
      std::vector<FileKind> file_types;
      for (const std::string& name :
           porta_bench::split_list(types == "both" ? "q8_0,q4_K" : types)) {
        model::GgufExportOptions options{.split_kv_b = split_kv_b, .tokenizer_dir = tokenizer};
        if (name.size() > 2 && name.substr(name.size() - 2) == "_M")
          options.mix = model::parse_gguf_mix(name);
        else
          options.matrix_type = gguf::parse_type(name);
        file_types.push_back({name, options});
      }
      const auto path_of = [&](const FileKind& kind) {
        return fmt::format("{}/{}_shaped_{}{}.gguf", dir, preset, kind.name,
                           kind.options.split_kv_b ? "_split_kv_b" : "");
      };
      // The whole model in bf16 only for the bf16 subject; the files are written from tensors
      // made one at a time (the same values), so a real model's shapes fit in memory.
      const model::RandomWeightsOptions random{.seed = 1, .dtype = DType::BF16};
      std::vector<std::pair<std::string, Tensor>> weights;
      if (bf16) weights = model::random_weights(config, random);
      fmt::print(
          "model: {}-shaped, hidden {}, {} layers, {} experts of {}, top-{}, vocab {} "
          "(generated in {:.1f} s)\n",
          preset, config.hidden_size, config.num_layers, config.num_experts,
          config.moe_intermediate_size, config.top_k, vocab, seconds_since(start));
      for (const FileKind& type : file_types) {
        const std::string path = path_of(type);
        start = Clock::now();
        const bool write = !reuse || !std::filesystem::exists(path);
        if (write && bf16) model::write_gguf_model(path, config, weights, type.options);
        if (write && !bf16)
          model::write_gguf_model(
              path, config,
              [&](const std::string& name, const Shape& shape) {
                return model::random_weight(name, shape, random);
              },
              type.options);
        fmt::print("{} {} ({:.2f} GB) in {:.1f} s\n", write ? "wrote" : "reusing", path,
                   static_cast<double>(std::filesystem::file_size(path)) / 1e9,
                   seconds_since(start));
        for (const ActivationQuant act : {ActivationQuant::GgmlQ8, ActivationQuant::None}) {
          if (activations != "both" && activations != to_string(act)) continue;
          model::GgufLoadReport report;
          model::Model loaded = model::load_gguf(path, {.activations = act}, &report);
          const model::ModelConfig& got = loaded.config();
          if (got.num_layers != config.num_layers || got.num_experts != config.num_experts ||
              got.hidden_size != config.hidden_size || got.vocab_size != config.vocab_size)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("{} holds {} layers, {} experts, hidden {}, vocab {}, not "
                                    "this run's shape: drop --reuse, or give another --dir",
                                    path, got.num_layers, got.num_experts, got.hidden_size,
                                    got.vocab_size));
          subjects.push_back(
              {fmt::format("{} {}", type.name, act == ActivationQuant::None ? "exact" : "ggml_q8"),
               std::move(loaded),
               nullptr,
               {},
               {}});
          fmt::print("{}\n", report.summary);
        }
      }
      if (bf16) {
        const std::map<std::string, Tensor> by_name(weights.begin(), weights.end());
        subjects.insert(subjects.begin(),
                        {"bf16", model::Model::from_tensors(config, by_name), nullptr, {}, {}});
      }
    }
    const double gbps = porta_bench::streaming_read_gbps();
    fmt::print("streaming read bandwidth: {:.1f} GB/s ({} threads)\n", gbps,
               std::thread::hardware_concurrency());
    for (Subject& s : subjects) {
      s.session = std::make_unique<model::Session>(
          s.model, model::SessionOptions{.backend = backend, .capacity = prompt_len + steps + 1});
      s.session->prepare(prompt_len, false);
      s.session->prepare(1, true);
    }
    std::vector<std::int32_t> prompt(static_cast<std::size_t>(prompt_len));
    for (long i = 0; i < prompt_len; ++i)
      prompt[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7919 + 13) % vocab);
    const auto v = static_cast<std::size_t>(vocab);
    // The subjects take turns within each repetition, so that each sees the same machine load.
    for (long rep = 0; rep <= reps; ++rep)
      for (Subject& s : subjects) {
        s.session->reset();
        auto t0 = Clock::now();
        Tensor logits = s.session->forward(prompt);
        if (rep > 0) s.prefill_s.push_back(seconds_since(t0));  // rep 0 warms up
        s.last_prefill = s.session->last_profile();
        std::int32_t next = model::argmax(
            {logits.data_as<float>() + static_cast<std::size_t>(logits.shape()[0] - 1) * v, v});
        for (long step = 0; step < steps; ++step) {
          t0 = Clock::now();
          logits = s.session->forward({&next, 1});
          if (rep > 0) s.decode_s.push_back(seconds_since(t0));
          next = model::argmax({logits.data_as<float>(), v});
          s.last_decode = s.session->last_profile();
        }
      }
    fmt::print(
        "\n| weights | weight GB | prefill T={} tok/s | decode tok/s | GB read/token | "
        "bound ms | decode ms | of bound | decode vs bf16 | prefill vs bf16 |\n",
        prompt_len);
    fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
    // Ratios against the bf16 copy, or the first subject without it.
    const double bf16_decode = median(subjects.front().decode_s);
    const double bf16_prefill = median(subjects.front().prefill_s);
    for (const Subject& s : subjects) {
      const double prefill = median(s.prefill_s), decode = median(s.decode_s);
      const double step_gb = static_cast<double>(s.model.decode_bytes_per_token()) / 1e9;
      const double bound = step_gb / gbps;
      fmt::print(
          "| {} | {:.2f} | {:.1f} | {:.2f} | {:.3f} | {:.1f} | {:.1f} | {:.0f}% | {:.2f}x | "
          "{:.2f}x |\n",
          s.label, static_cast<double>(s.model.weight_bytes()) / 1e9, prompt_len / prefill,
          1.0 / decode, step_gb, bound * 1e3, decode * 1e3, 100.0 * bound / decode,
          bf16_decode / decode, bf16_prefill / prefill);
    }
    fmt::print("(medians of {} prefills and {} decode steps per subject, after one warm-up)\n",
               reps, reps * steps);
    if (profile)
      for (const Subject& s : subjects) {
        print_profile_by_op(fmt::format("{}, last prefill", s.label), s.last_prefill);
        print_profile_by_op(fmt::format("{}, last decode step", s.label), s.last_decode);
      }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "porta-bench-gguf-model: {}\n", e.what());
    return 1;
  }
}

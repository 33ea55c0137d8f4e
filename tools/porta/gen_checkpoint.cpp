// `porta gen-checkpoint --kind deepseek_v3 --out DIR [--seed N]`: a tiny random checkpoint in the
// exact Hugging Face layout (config.json + model.safetensors, or shards with an index) with a tiny
// tokenizer (tokenizer.json + tokenizer_config.json), for tests and demos; `--preset
// deepseek-v2-lite [--layers N] [--vocab N]`: one in a real model's shapes, streamed to disk.
#include <chrono>

#include <fmt/format.h>

#include <porta/model/checkpoint_gen.hpp>
#include <porta/model/quant_checkpoint.hpp>
#include <porta/model/tiny_tokenizer.hpp>
#include <porta/model/gguf.hpp>

#include "commands.hpp"

namespace porta::cli {

Command add_gen_checkpoint_command(CLI::App& app) {
  struct Options {
    std::string kind = "deepseek_v3";
    std::string out;
    std::uint64_t seed = 0;
    std::string dtype = "bf16";
    bool fp8 = false;
    int shards = 1;
    std::string preset;
    std::int64_t layers = 0;
    std::int64_t vocab = 0;
    std::string gguf;
    std::string gguf_type;
    bool gguf_split_kv_b = false;
    std::string format;
    std::int64_t group = 128;
  };
  auto o = std::make_shared<Options>();
  app.add_option("--kind", o->kind, "deepseek_v3, deepseek_v2, mixtral, qwen2_moe or qwen3_moe")
      ->capture_default_str();
  app.add_option("--out", o->out, "Directory to write config.json and the weights into")
      ->required();
  app.add_option("--seed", o->seed, "Seed of the random weights")->capture_default_str();
  app.add_option("--dtype", o->dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str();
  app.add_flag("--fp8", o->fp8,
               "Store the projections as f8_e4m3 with 128x128 block scales (DeepSeek-V3 style)");
  app.add_option("--shards", o->shards, "Number of safetensors shards (>1 writes an index)")
      ->capture_default_str();
  app.add_option("--preset", o->preset,
                 "A real model's shapes instead of a tiny kind: deepseek-v2-lite, deepseek-v3, "
                 "mixtral-8x7b, qwen3-30b-a3b (written streaming, shard by shard)");
  app.add_option("--layers", o->layers,
                 "With --preset: keep the first N layers; with --kind: N layers instead of the "
                 "tiny preset's");
  app.add_option("--vocab", o->vocab, "With --preset: vocabulary size instead of the model's");
  app.add_option("--gguf", o->gguf, "Also write the same weights as this GGUF file");
  app.add_option("--gguf-type", o->gguf_type,
                 "ggml type of the GGUF's matrices (f32, f16, bf16, q8_0, q4_0, q4_K, ...; "
                 "default: --dtype), or llama-quantize's recipe q4_K_M or q5_K_M");
  app.add_flag("--gguf-split-kv-b", o->gguf_split_kv_b,
               "DeepSeek: write kv_b_proj as attn_k_b + attn_v_b, as current llama.cpp does");
  app.add_option("--format", o->format,
                 "Write the linear projections quantized in this checkpoint format: " +
                     fmt::format("{}", fmt::join(model::quantized_format_names(), ", ")) +
                     " (docs/quantized-checkpoints.md)");
  app.add_option("--group", o->group, "Group size along K of the int4 formats")
      ->capture_default_str();
  return [o] {
    if (!o->format.empty() && (o->fp8 || !o->gguf.empty() || o->shards != 1))
      throw Error(ErrorCode::InvalidArgument,
                  "--format writes one quantized checkpoint: not with --fp8 (use --format fp8), "
                  "--gguf or --shards");
    if (!o->preset.empty()) {
      if (o->fp8 || o->shards != 1)
        throw Error(ErrorCode::InvalidArgument,
                    "--preset writes bf16/f16/f32 shards of 4 GiB: --fp8 and --shards apply to "
                    "the tiny kinds only");
      const auto start = std::chrono::steady_clock::now();
      const std::string config_json = model::real_config_json(o->preset, o->layers, o->vocab);
      const std::uint64_t bytes = model::write_random_checkpoint(
          o->out, config_json,
          {.seed = o->seed, .dtype = parse_dtype(o->dtype), .format = o->format});
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fmt::print("wrote {} ({}, {} bytes, seed {}) to {} in {:.2f} s ({:.2f} GB/s)\n", o->preset,
                 o->format.empty() ? o->dtype : o->format + ", other tensors " + o->dtype, bytes, o->seed, o->out, seconds,
                 seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0.0);
      return 0;
    }
    if (o->vocab != 0) throw Error(ErrorCode::InvalidArgument, "--vocab needs --preset");
    if (o->fp8 && !o->gguf.empty())
      throw Error(ErrorCode::InvalidArgument,
                  "--gguf: GGUF has no FP8 block-scaled type; write the GGUF without --fp8");
    const std::string gguf_type_text = o->gguf_type.empty() ? o->dtype : o->gguf_type;
    const bool gguf_recipe = gguf_type_text.ends_with("_M");
    const model::GgufMix gguf_mix =
        gguf_recipe ? model::parse_gguf_mix(gguf_type_text) : model::GgufMix::None;
    const gguf::GgmlType gguf_type =
        gguf_recipe ? gguf::GgmlType::BF16 : gguf::parse_type(gguf_type_text);
    if (!o->format.empty()) {
      const auto format = model::parse_quantized_format(o->format, o->group);
      const std::string config_json = model::tiny_config_json(o->kind, false, o->layers);
      const model::ModelConfig config = model::parse_config(config_json, o->kind + " preset");
      const auto tensors =
          model::random_weights(config, {.seed = o->seed, .dtype = parse_dtype(o->dtype)});
      model::write_quantized_checkpoint(o->out, config_json, tensors, format);
      model::write_tiny_tokenizer(o->out, config.vocab_size);
      fmt::print("wrote {} ({}, seed {}) to {}\n", o->kind, o->format, o->seed, o->out);
      return 0;
    }
    const std::string config_json = model::tiny_config_json(o->kind, o->fp8, o->layers);
    const model::ModelConfig config = model::parse_config(config_json, o->kind + " preset");
    const auto tensors = model::random_weights(
        config, {.seed = o->seed, .dtype = parse_dtype(o->dtype), .fp8 = o->fp8});
    model::write_checkpoint(o->out, config_json, tensors, o->shards);
    model::write_tiny_tokenizer(o->out, config.vocab_size);
    if (!o->gguf.empty()) {
      model::write_gguf_model(o->gguf, config, tensors,
                              {.matrix_type = gguf_type,
                               .mix = gguf_mix,
                               .split_kv_b = o->gguf_split_kv_b,
                               .tokenizer_dir = o->out});
      fmt::print("wrote {} as GGUF ({} matrices) to {}\n", o->kind,
                 gguf_recipe ? gguf_type_text : std::string(gguf::type_name(gguf_type)), o->gguf);
    }
    std::uint64_t bytes = 0;
    for (const auto& [name, t] : tensors) bytes += t.nbytes();
    fmt::print("wrote {} ({}, {} tensors, {} bytes, seed {}) to {}\n", o->kind,
               o->fp8 ? "f8_e4m3 projections" : o->dtype, tensors.size(), bytes, o->seed, o->out);
    return 0;
  };
}

}  // namespace porta::cli

// `porta run --model DIR --prompt-ids 1,2,3` or `--prompt TEXT`: load a Hugging Face MoE
// checkpoint, prefill the prompt and decode on a backend, print the generated ids (and, for a text
// prompt, stream the generated text as it comes) and the speed of each phase.
#include <algorithm>
#include <charconv>
#include <cstdio>

#include <fmt/format.h>

#include <porta/comm.hpp>
#include <porta/device.hpp>
#include <porta/expert_parallel.hpp>
#include <porta/io.hpp>
#include <porta/model/generate.hpp>
#include <porta/model/memory.hpp>
#include <porta/model/gguf.hpp>

#include "commands.hpp"
#include "run_compare.hpp"
#include "text_io.hpp"

namespace porta::cli {

namespace {

std::vector<std::int32_t> parse_ids(const std::string& text) {
  std::vector<std::int32_t> ids;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    std::int32_t value = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("--prompt-ids: '{}' is not a token id (expected e.g. 1,2,3)", item));
    ids.push_back(value);
    start = end + 1;
  }
  return ids;
}

std::string default_backend() {
  for (const auto& d : list_devices())
    if (d.available && d.name == "cpu") return "cpu";
  return "reference";
}

std::string rate(std::int64_t tokens, double seconds) {
  if (tokens == 0 || seconds <= 0) return "-";
  return fmt::format("{:.1f} tok/s", static_cast<double>(tokens) / seconds);
}

}  // namespace

void add_gguf_activations_option(CLI::App& app, std::string& mode) {
  app.add_option("--gguf-activations", mode,
                 "How a GGUF's packed matrices meet their activations: ggml_q8 (rounded to "
                 "llama.cpp's 8-bit blocks, as llama.cpp computes; integer kernels) or none "
                 "(f32 activations, exact products: slower, backends agree within 1e-5)")
      ->check(CLI::IsMember({"ggml_q8", "none"}))
      ->capture_default_str();
}

Command add_run_command(CLI::App& app) {
  struct Options {
    std::string model_dir;
    std::string backend;
    std::string prompt;
    std::string prompt_text;
    bool chat_template = false;
    std::int64_t max_new_tokens = 16;
    float temperature = 0;
    float top_p = 1;
    std::uint64_t seed = 0;
    std::string dump_logits;
    std::string weight_dtype;
    std::string fp8_dtype = "bf16";
    std::int64_t capacity = 0;
    std::optional<std::int32_t> eos;
    std::string max_memory;
    std::int64_t expert_parallel = 0;
    std::string placement;
    std::string record_expert_load;
    std::string compare_with;
    bool dequantize = false;
    bool no_prefault = false;
    std::string gguf_activations = "ggml_q8";
  };
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model_dir,
                 "Checkpoint directory (config.json + safetensors) or a .gguf file")
      ->required();
  app.add_option("--backend", o->backend, "cpu, opencl, npu-sim:910b2, reference (default: cpu)");
  auto* ids_option =
      app.add_option("--prompt-ids", o->prompt, "Prompt token ids, comma-separated: 1,2,3");
  app.add_option("--prompt", o->prompt_text,
                 "Prompt text, encoded with the checkpoint's tokenizer.json; the answer streams "
                 "as text and stops at the tokenizer's EOS")
      ->excludes(ids_option);
  app.add_flag("--chat-template", o->chat_template,
               "With --prompt: send the text as one user message in the model's chat template");
  app.add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate")
      ->capture_default_str();
  app.add_option("--temperature", o->temperature, "0 for greedy decoding")->capture_default_str();
  app.add_option("--top-p", o->top_p, "Nucleus sampling threshold")->capture_default_str();
  app.add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  app.add_option("--eos", o->eos, "Stop after this token id");
  app.add_option("--dump-logits", o->dump_logits,
                 "Write the logits of every prompt position as a [T, vocab] f32 .npy file "
                 "(without it, prefill computes the last position's logits only)");
  app.add_option("--max-memory", o->max_memory,
                 "Refuse to load a model needing more than this (e.g. 12G); default: the "
                 "memory available now");
  app.add_option("--weight-dtype", o->weight_dtype,
                 "Convert every weight to this dtype at load (f32, bf16, f16); default: keep");
  app.add_option("--fp8-dtype", o->fp8_dtype,
                 "Dequantise FP8 (and GGUF block-quantized) weights to bf16 or f32")
      ->capture_default_str();
  app.add_option("--compare-with", o->compare_with,
                 "Also run the prompt through this checkpoint of the same model (e.g. the "
                 "unquantized one) and report the logits' max abs / relative error and top-1 "
                 "agreement");
  app.add_flag("--dequantize", o->dequantize,
               "Dequantise a quantized checkpoint's weights at load (to --fp8-dtype) instead of "
               "computing with them quantized");
  add_gguf_activations_option(app, o->gguf_activations);
  app.add_flag("--no-prefault", o->no_prefault,
               "Leave the weights' pages to be faulted in by the first forward pass instead of "
               "mapping them at load");
  app.add_option("--capacity", o->capacity,
                 "KV-cache positions (default: prompt + max-new-tokens)");
  app.add_option("--expert-parallel", o->expert_parallel,
                 "Split the experts over the N processes mpirun started (mpirun -np N porta run "
                 "... --expert-parallel N); attention is replicated on every rank");
  app.add_option("--placement", o->placement,
                 "With --expert-parallel: the experts of each rank, per MoE layer (a file "
                 "`porta eplb` wrote); default: contiguous runs, no replicas");
  app.add_option("--record-expert-load", o->record_expert_load,
                 "Write the tokens routed to each expert of each MoE layer (JSON, for porta eplb)");
  return [o] {
    // Under expert parallelism every rank runs this same command; rank 0 prints, and every
    // failure before the run is agreed on, so all ranks end with the failing rank's message.
    std::shared_ptr<Communicator> comm;
    if (o->expert_parallel > 0 || !o->placement.empty()) {
      if (o->expert_parallel < 1)
        throw Error(ErrorCode::InvalidArgument, "--placement needs --expert-parallel N");
      comm = o->expert_parallel == 1 && !launched_by_mpi() ? single_process_communicator()
                                                           : mpi_world();
      if (comm->size() != o->expert_parallel)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("--expert-parallel {} but mpirun started {} process(es) (run "
                                "mpirun -np {} porta run ...)",
                                o->expert_parallel, comm->size(), o->expert_parallel));
      if (comm->rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr)
        throw Error(ErrorCode::Io, "cannot silence the output of ranks other than 0");
    }
    const auto agreed = [&](auto&& step) {
      if (!comm) return step();
      std::string failure;
      try {
        step();
      } catch (const std::bad_alloc&) {
        failure = "out of memory";
      } catch (const std::exception& e) {
        failure = e.what();
      }
      comm->agree(failure);
      if (!failure.empty()) throw Error(ErrorCode::Internal, "unreachable: agree() threw");
    };
    if (o->prompt.empty() == o->prompt_text.empty())
      throw Error(ErrorCode::InvalidArgument,
                  "give the prompt as --prompt TEXT or as --prompt-ids 1,2,3");
    std::optional<Tokenizer> tokenizer;
    std::vector<std::int32_t> prompt;
    if (!o->prompt_text.empty()) {
      tokenizer = Tokenizer::load(o->model_dir);
      prompt = encode_text_prompt(*tokenizer, o->prompt_text, o->chat_template);
      if (!o->eos) o->eos = tokenizer->eos_id();
    } else {
      prompt = parse_ids(o->prompt);
    }
    if (o->max_new_tokens < 0)
      throw Error(ErrorCode::InvalidArgument, "--max-new-tokens must be >= 0");
    const std::string backend = o->backend.empty() ? default_backend() : o->backend;
    const DeviceInfo device = device_info(backend);
    if (!device.available)
      throw Error(ErrorCode::Unsupported, fmt::format("backend '{}' is unavailable: {}", backend,
                                                      device.unavailable_reason));
    model::LoadOptions load;
    if (comm) {
      load.ep_rank = comm->rank();
      agreed([&] {
        if (!o->placement.empty()) {
          load.ep_placement = ep::read_placement(o->placement);
        } else {
          const model::ModelConfig config = model::load_config(o->model_dir);
          load.ep_placement.emplace();
          for (std::int64_t l = 0; l < config.num_layers; ++l)
            if (config.is_moe_layer(l))
              load.ep_placement->layers[l] =
                  ep::contiguous_placement(config.num_experts, comm->size());
        }
        for (const auto& [layer, p] : load.ep_placement->layers)
          if (p.ranks() != comm->size())
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("--placement: layer {} places experts on {} ranks, but {} "
                                    "processes run",
                                    layer, p.ranks(), comm->size()));
      });
    }
    load.fp8_dtype = parse_dtype(o->fp8_dtype);
    load.dequantize = o->dequantize;
    load.prefault = !o->no_prefault;
    if (!o->weight_dtype.empty()) load.weight_dtype = parse_dtype(o->weight_dtype);
    const auto t = static_cast<std::int64_t>(prompt.size());
    const std::int64_t needed = std::max<std::int64_t>(t + o->max_new_tokens - 1, t);
    const std::int64_t capacity = o->capacity > 0 ? o->capacity : needed;
    const bool all_logits = !o->dump_logits.empty();
    const bool gguf_file = model::is_gguf_file(o->model_dir);

    // What the run will hold, checked before a byte of weights is touched (for a Hugging Face
    // folder; a GGUF file's estimate is not written yet).
    if (!gguf_file) {
      const model::MemoryNeed need =
          model::estimate_memory(o->model_dir, load, t, capacity, all_logits);
      const std::uint64_t available = model::available_memory();
      if (!o->max_memory.empty())
        model::check_memory(need, model::parse_bytes(o->max_memory), "--max-memory");
      model::check_memory(need, available, "memory available now (MemAvailable)");
      fmt::print("memory: needs {}\n", need.describe());
    }

    model::GgufLoadReport gguf;
    model::Model model;
    agreed([&] {
      model = gguf_file ? model::load_gguf(o->model_dir,
                                           {.load = load,
                                            .dequantize_to = load.fp8_dtype,
                                            .activations = parse_activation_quant(
                                                o->gguf_activations)},
                                           &gguf)
                        : model::Model::load(o->model_dir, load);
    });
    if (!gguf.summary.empty()) fmt::print("{}\n", gguf.summary);
    const model::ModelConfig& c = model.config();
    const model::LoadStats& stats = model.stats();
    fmt::print(
        "model: {} ({} layers, hidden {}, vocab {}, {} experts top-{}{})\n", c.model_type,
        c.num_layers, c.hidden_size, c.vocab_size, c.num_experts, c.top_k,
        c.mla ? fmt::format(", MLA q_lora {} kv_lora {}", c.q_lora_rank, c.kv_lora_rank) : "");
    fmt::print(
        "load: {:.3f} s; {} tensors, {} bytes mapped ({} prefaulted), {} copied, {} dequantised\n",
        stats.seconds, stats.tensors, stats.mapped_bytes, stats.prefaulted_bytes,
        stats.copied_bytes, stats.dequantized_bytes);
    if (stats.quantized_tensors > 0)
      fmt::print("quantized: {} ({} weights kept quantized, {} bytes)\n", model.quant_format(),
                 stats.quantized_tensors, stats.quantized_bytes);
    for (const auto& [why, bytes] : stats.copies)
      fmt::print("  copied {} bytes: {}\n", bytes, why);

    model::Session session(model, {.backend = backend,
                                   .fallback = "reference",
                                   .capacity = capacity,
                                   .profile = true,
                                   .all_logits = all_logits,
                                   .comm = comm,
                                   .record_expert_load = !o->record_expert_load.empty()});
    std::optional<TextStreamer> streamer;
    if (tokenizer) {
      streamer.emplace(*tokenizer);
      fmt::print("text: ");
    }
    const auto result = model::generate(
        session, prompt,
        {.max_new_tokens = o->max_new_tokens,
         .sampling = {.temperature = o->temperature, .top_p = o->top_p, .seed = o->seed},
         .eos_token = o->eos,
         .on_token = streamer ? std::function<void(std::int32_t)>(
                                    [&](std::int32_t id) {
                                      if (id != o->eos) streamer->push(id);
                                    })
                              : nullptr});
    if (streamer) {
      streamer->finish();
      fmt::print("\n");
    }

    const auto placement = session.placement();
    if (!placement.empty()) {
      const auto on_backend = std::count_if(placement.begin(), placement.end(), [&](const auto& p) {
        return p.backend.rfind(backend.substr(0, backend.find(':')), 0) == 0;
      });
      fmt::print("backend: {} ({} of {} decode nodes there, the rest on the fallback)\n", backend,
                 on_backend, placement.size());
    } else {
      fmt::print("backend: {}\n", backend);
    }
    fmt::print("prompt: {}\n", fmt::join(prompt, " "));
    fmt::print("tokens: {}\n", fmt::join(result.tokens, " "));
    // npu-sim models its device time; other backends may report measured device time.
    const char* device_label = device.kind == "simulator" ? "simulated device time" : "device time";
    auto simulated = [device_label](double us) {
      return us >= 0 ? fmt::format(", {} {:.1f} us", device_label, us) : std::string();
    };
    fmt::print("compile: {:.3f} s\n", result.compile_seconds);
    fmt::print("prefill: {} tokens in {:.3f} ms = {}{}\n", t, result.prefill_seconds * 1e3,
               rate(t, result.prefill_seconds), simulated(result.prefill_device_us));
    fmt::print("decode: {} tokens in {:.3f} ms = {}{}\n", result.decode_steps,
               result.decode_seconds * 1e3, rate(result.decode_steps, result.decode_seconds),
               simulated(result.decode_device_us));
    fmt::print("weights copied by the backends at compile: {} bytes (repacked or gathered)\n",
               session.copied_weight_bytes());
    fmt::print("activation arenas: {} bytes\n", session.arena_bytes());
    fmt::print("peak RSS: {} bytes ({:.2f} GB)\n", model::peak_rss_bytes(),
               static_cast<double>(model::peak_rss_bytes()) / 1e9);
    if (comm)
      fmt::print("expert parallel: {} ranks (attention replicated, experts split{})\n",
                 comm->size(), o->placement.empty() ? ", contiguous" : " by " + o->placement);
    if (!o->record_expert_load.empty() && (!comm || comm->rank() == 0)) {
      ep::write_expert_load(o->record_expert_load, session.expert_load());
      fmt::print("expert load: written to {}\n", o->record_expert_load);
    }
    if (!o->compare_with.empty()) {
      const model::Model other = model::Model::load(o->compare_with, load);
      const LogitComparison d = compare_logits(model, other, prompt, backend);
      fmt::print("compare-with {}: prompt logits max abs error {:.6g}, max relative error {:.6g} "
                 "(of each position's largest |logit|), top-1 agreement {}/{}\n",
                 o->compare_with, d.max_abs, d.max_rel, d.top1_agree, d.positions);
    }
    if (!o->dump_logits.empty()) {
      io::write_npy(o->dump_logits, result.prompt_logits);
      fmt::print("logits: {} written to {}\n", result.prompt_logits.description(), o->dump_logits);
    }
    return 0;
  };
}

}  // namespace porta::cli

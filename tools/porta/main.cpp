// porta: list devices, check every op on every backend against the reference, inspect tensor
// files, and benchmark backends side by side. Every error is reported as a message and a non-zero
// exit status, never a crash.
#include <cstdio>
#include <map>
#include <string>

#include <fmt/format.h>

#include <porta/config.hpp>
#include <porta/error.hpp>
#include <porta/version.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"porta: a hardware-portable tensor runtime for Mixture-of-Experts models"};
  app.set_version_flag("--version", std::string("porta ") + PORTA_VERSION_STRING);
  app.require_subcommand(0, 1);
  std::map<CLI::App*, porta::cli::Command> commands;
  auto register_command = [&](const char* name, const char* help, auto add) {
    CLI::App* sub = app.add_subcommand(name, help);
    commands[sub] = add(*sub);
  };
  register_command("devices", "List backends and devices with their capabilities",
                   porta::cli::add_devices_command);
  register_command("check", "Run every op on backends against the reference backend",
                   porta::cli::add_check_command);
  register_command("inspect", "List the tensors of a safetensors, .npy or checkpoint",
                   porta::cli::add_inspect_command);
  register_command("run", "Run a Hugging Face MoE checkpoint", porta::cli::add_run_command);
  register_command("chat", "Chat with a Hugging Face MoE checkpoint (its chat template, on stdin)",
                   porta::cli::add_chat_command);
  register_command("tokenize", "Show the ids and pieces a model's tokenizer makes of a text",
                   porta::cli::add_tokenize_command);
  register_command("gen-checkpoint", "Write a tiny random checkpoint in the Hugging Face layout",
                   porta::cli::add_gen_checkpoint_command);
  register_command("quantize", "Quantize a float checkpoint into compressed-tensors (W8A8, W4A16)",
                   porta::cli::add_quantize_command);
  register_command("bench", "Benchmark backends side by side on an MoE-style graph",
                   porta::cli::add_bench_command);
  register_command("eplb", "Place experts and replicas on ranks from a recorded expert load (EPLB)",
                   porta::cli::add_eplb_command);
  register_command("plan", "Plan a deployment: chips, batch and parallelism for a model on a cluster",
                   porta::cli::add_plan_command);
#if PORTA_HAS_BACKEND_OPENCL
  register_command("tune", "Tune CLBlast's GEMM for an OpenCL device",
                   porta::cli::add_tune_command);
#endif
#if PORTA_HAS_BACKEND_NPU_SIM
  register_command("sim", "Time an op, a MoE layer or a model on an npu-sim profile",
                   porta::cli::add_sim_command);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : porta::cli::kExitUsage;
  }
  try {
    for (const auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const porta::Error& e) {
    fmt::print(stderr, "porta: error ({}): {}\n", porta::error_code_name(e.code()), e.what());
    return porta::cli::kExitFailure;
  } catch (const std::exception& e) {
    fmt::print(stderr, "porta: error: {}\n", e.what());
    return porta::cli::kExitFailure;
  }
  fmt::print(
      stderr,
      "porta: a subcommand is required (devices, check, inspect, bench); see porta --help\n");
  return porta::cli::kExitUsage;
}

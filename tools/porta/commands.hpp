// The subcommands of the porta program. Each registers its options on the CLI11 app and returns
// the function that runs it; the function returns the process exit code.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace porta::cli {

using Command = std::function<int()>;

Command add_devices_command(CLI::App& app);
Command add_check_command(CLI::App& app);
Command add_inspect_command(CLI::App& app);
Command add_run_command(CLI::App& app);
Command add_gen_checkpoint_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_tune_command(CLI::App& app);
Command add_sim_command(CLI::App& app);
Command add_plan_command(CLI::App& app);
Command add_tokenize_command(CLI::App& app);
Command add_chat_command(CLI::App& app);
Command add_eplb_command(CLI::App& app);
Command add_quantize_command(CLI::App& app);

// `porta inspect` of a GGUF file (inspect_gguf.cpp).
int inspect_gguf(const std::string& path);

// --gguf-activations none|ggml_q8 of run and chat (run.cpp), into `mode`.
void add_gguf_activations_option(CLI::App& app, std::string& mode);

// Exit codes: 0 success, 1 a failure (an error, a failing check), 2 bad usage.
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

}  // namespace porta::cli

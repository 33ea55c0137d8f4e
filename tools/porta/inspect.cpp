// `porta inspect FILE`: the tensors of a safetensors file, an .npy file, a sharded index or a
// checkpoint directory; GGUF files also show their metadata (inspect_gguf.cpp).
#include <fmt/format.h>

#include <filesystem>

#include <porta/io.hpp>
#include <porta/model/gguf.hpp>
#include <porta/model/model.hpp>

#include "commands.hpp"

namespace porta::cli {

namespace {

// A quantized checkpoint directory: each weight porta keeps quantized, as the loader converts it.
void inspect_quantization(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path) || !fs::exists(fs::path(path) / "config.json")) return;
  const model::ModelConfig config = model::load_config(path);
  if (config.quant_method.empty() && !fs::exists(fs::path(path) / "quant_model_description.json"))
    return;
  const model::Model m = model::Model::load(path);
  const auto names = m.quantized_weight_names();
  std::size_t width = 6;
  for (const auto& n : names) width = std::max(width, n.size());
  fmt::print("\nquantized weights ({}), as loaded:\n", m.quant_format());
  fmt::print("{:<{}}  {:<16} {:<40} {:<13} {:>12}\n", "weight", width, "shape", "scheme",
             "activations", "bytes");
  for (const auto& n : names) {
    const model::QuantizedWeight& q = *m.quantized_weight(n);
    fmt::print("{:<{}}  {:<16} {:<40} {:<13} {:>12}\n", n, width, q.weight.shape.to_string(),
               describe(q.weight.scheme), to_string(q.activation), q.weight.nbytes());
  }
  const auto& s = m.stats();
  fmt::print("{} weights quantized ({} bytes), {} bytes mapped as they are, {} bytes copied, "
             "{} bytes dequantised\n",
             names.size(), s.quantized_bytes, s.mapped_bytes, s.copied_bytes, s.dequantized_bytes);
  for (const auto& [why, bytes] : s.copies) fmt::print("  copied {:>12} bytes: {}\n", bytes, why);
}

}  // namespace

Command add_inspect_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  app.add_option("file", *path,
                 "A .safetensors, .npy, .gguf, model.safetensors.index.json or checkpoint "
                 "directory")
      ->required();
  return [path] {
    if (model::is_gguf_file(*path)) return inspect_gguf(*path);
    const auto entries = io::list_tensors(*path);
    std::size_t name_width = 4;
    for (const auto& e : entries) name_width = std::max(name_width, e.name.size());
    std::uint64_t total = 0;
    fmt::print("{:<{}}  {:<8} {:<20} {:>14}\n", "name", name_width, "dtype", "shape", "bytes");
    for (const auto& e : entries) {
      fmt::print("{:<{}}  {:<8} {:<20} {:>14}\n", e.name, name_width, dtype_name(e.dtype),
                 e.shape.to_string(), e.nbytes);
      total += e.nbytes;
    }
    fmt::print("{} tensors, {} bytes\n", entries.size(), total);
    inspect_quantization(*path);
    return 0;
  };
}

}  // namespace porta::cli

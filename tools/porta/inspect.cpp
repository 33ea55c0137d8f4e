// `porta inspect FILE`: the tensors of a safetensors file, an .npy file, a sharded index or a
// checkpoint directory; GGUF files also show their metadata (inspect_gguf.cpp).
#include <fmt/format.h>

#include <porta/io.hpp>
#include <porta/model/gguf.hpp>

#include "commands.hpp"

namespace porta::cli {

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
    return 0;
  };
}

}  // namespace porta::cli

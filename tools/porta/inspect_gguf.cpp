// `porta inspect FILE.gguf`: the header, the metadata (long arrays and strings abbreviated) and
// every tensor with its ggml type, shape (outermost first, as porta and PyTorch write it, and
// GGUF's innermost-first dims) and bytes.
#include <map>

#include <fmt/format.h>

#include <porta/gguf.hpp>

#include "commands.hpp"

namespace porta::cli {

int inspect_gguf(const std::string& path) {
  const gguf::GgufFile f = gguf::GgufFile::open(path);
  fmt::print("GGUF version {}, alignment {}, {} metadata keys, {} tensors, data at byte {}\n",
             f.version(), f.alignment(), f.metadata().size(), f.tensors().size(), f.data_offset());
  std::size_t key_width = 3;
  for (const auto& [key, value] : f.metadata()) key_width = std::max(key_width, key.size());
  fmt::print("\n{:<{}}  {:<8} {}\n", "key", key_width, "type", "value");
  for (const auto& [key, value] : f.metadata()) {
    const std::string type =
        value.type == gguf::ValueType::Array
            ? fmt::format("{}[{}]", gguf::value_type_name(value.element_type), value.array.size())
            : std::string(gguf::value_type_name(value.type));
    fmt::print("{:<{}}  {:<8} {}\n", key, key_width, type, value.to_string(6));
  }

  std::size_t name_width = 4;
  for (const auto& t : f.tensors()) name_width = std::max(name_width, t.name.size());
  fmt::print("\n{:<{}}  {:<8} {:<22} {:<22} {:>14}\n", "name", name_width, "type", "shape",
             "gguf dims", "bytes");
  std::uint64_t total = 0;
  std::map<std::string, std::size_t> by_type;
  for (const auto& t : f.tensors()) {
    fmt::print("{:<{}}  {:<8} {:<22} {:<22} {:>14}\n", t.name, name_width,
               gguf::type_name(t.type), t.shape().to_string(),
               fmt::format("{{{}}}", fmt::join(t.dims, ", ")), t.nbytes);
    total += t.nbytes;
    ++by_type[std::string(gguf::type_name(t.type))];
  }
  std::vector<std::string> counts;
  for (const auto& [type, n] : by_type) counts.push_back(fmt::format("{} {}", n, type));
  fmt::print("{} tensors ({}), {} bytes\n", f.tensors().size(), fmt::join(counts, ", "), total);
  return 0;
}

}  // namespace porta::cli

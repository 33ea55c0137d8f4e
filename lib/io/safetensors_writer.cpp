// Writing safetensors files.
//
// Tensors are laid out back to back in the order given, with no gaps: the reference
// implementation (Hugging Face's safetensors) rejects files whose data_offsets are not contiguous,
// and porta's files must load there too.
#include <porta/io.hpp>

#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/posix_file.hpp"
#include "io/safetensors_format.hpp"

namespace porta::io {

namespace {
// The data section starts 8-byte aligned when the header length is a multiple of 8.
constexpr std::size_t kHeaderAlignment = 8;
}  // namespace

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the order given, which is also their data order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& meta = header[std::string(detail::kMetadataKey)];
    meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
  }
  std::set<std::string, std::less<>> names;
  std::size_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == detail::kMetadataKey)
      throw Error(
          ErrorCode::InvalidArgument,
          fmt::format("write_safetensors('{}'): '{}' is not a valid tensor name", path, name));
    if (!names.insert(name).second)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("write_safetensors('{}'): tensor '{}' given twice", path, name));
    if (!tensor.defined())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("write_safetensors('{}'): tensor '{}' is empty (default-constructed)",
                              path, name));
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = detail::safetensors_dtype_name(tensor.dtype());
    entry["shape"] = tensor.shape().dims();
    entry["data_offsets"] = {offset, offset + tensor.nbytes()};
    header[name] = std::move(entry);
    offset += tensor.nbytes();
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {  // a name or value that is not UTF-8
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("write_safetensors('{}'): a tensor name or metadata entry is not "
                            "valid UTF-8 ({})",
                            path, e.what()));
  }
  text.append((kHeaderAlignment - text.size() % kHeaderAlignment) % kHeaderAlignment, ' ');

  unsigned char length[detail::kSafetensorsLengthBytes];
  for (std::size_t i = 0; i < detail::kSafetensorsLengthBytes; ++i)
    length[i] =
        static_cast<unsigned char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xffu);
  detail::OutputFile out(path);
  out.write(length, sizeof length);
  out.write(text.data(), text.size());
  for (const auto& named : tensors) out.write(named.second.data(), named.second.nbytes());
  out.close();
}

}  // namespace porta::io

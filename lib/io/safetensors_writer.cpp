// Writing safetensors files.
//
// Tensors are laid out back to back in the order given, with no gaps: the reference
// implementation (Hugging Face's safetensors) rejects files whose data_offsets are not contiguous,
// and porta's files must load there too.
#include <porta/io.hpp>

#include <algorithm>
#include <future>
#include <set>
#include <span>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/posix_file.hpp"
#include "io/safetensors_format.hpp"

namespace porta::io {

namespace {
// The data section starts 8-byte aligned when the header length is a multiple of 8.
constexpr std::size_t kHeaderAlignment = 8;
}  // namespace

namespace {

// The header text (padded to 8 bytes) for tensors laid out back to back in the order given.
std::string header_text(const std::string& path, const std::vector<TensorSpec>& tensors,
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
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == detail::kMetadataKey)
      throw Error(
          ErrorCode::InvalidArgument,
          fmt::format("write_safetensors('{}'): '{}' is not a valid tensor name", path, t.name));
    if (!names.insert(t.name).second)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("write_safetensors('{}'): tensor '{}' given twice", path, t.name));
    const std::size_t bytes = static_cast<std::size_t>(t.shape.numel()) * dtype_size(t.dtype);
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = detail::safetensors_dtype_name(t.dtype);
    entry["shape"] = t.shape.dims();
    entry["data_offsets"] = {offset, offset + bytes};
    header[t.name] = std::move(entry);
    offset += bytes;
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
  return text;
}

void write_header(detail::OutputFile& out, const std::string& text) {
  unsigned char length[detail::kSafetensorsLengthBytes];
  for (std::size_t i = 0; i < detail::kSafetensorsLengthBytes; ++i)
    length[i] =
        static_cast<unsigned char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xffu);
  out.write(length, sizeof length);
  out.write(text.data(), text.size());
}

}  // namespace

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("write_safetensors('{}'): tensor '{}' is empty (default-constructed)",
                              path, name));
    specs.push_back({name, tensor.dtype(), tensor.shape()});
  }
  const std::string text = header_text(path, specs, metadata);
  detail::OutputFile out(path);
  write_header(out, text);
  for (const auto& named : tensors) {
    const Tensor& t = named.second;
    if (t.stacked()) {
      for (std::int64_t i = 0; i < t.shape()[0]; ++i) out.write(t.part(i), t.part_bytes());
    } else {
      out.write(t.data(), t.nbytes());
    }
  }
  out.close();
}

void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpec>& tensors,
                                const std::map<std::string, std::string>& metadata,
                                const StreamFill& fill, std::size_t chunk_bytes) {
  const std::string text = header_text(path, tensors, metadata);
  chunk_bytes = std::max<std::size_t>(chunk_bytes / 64 * 64, 64);
  detail::OutputFile out(path);
  write_header(out, text);
  // Two buffers: one is filled while the other is written, so generation and disk overlap.
  std::vector<std::byte> buffers[2] = {std::vector<std::byte>(chunk_bytes),
                                       std::vector<std::byte>(chunk_bytes)};
  std::future<void> pending;
  int current = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::size_t bytes =
        static_cast<std::size_t>(tensors[i].shape.numel()) * dtype_size(tensors[i].dtype);
    for (std::size_t done = 0; done < bytes; done += chunk_bytes) {
      const std::size_t n = std::min(chunk_bytes, bytes - done);
      auto& buffer = buffers[current];
      fill(i, done, std::span<std::byte>(buffer.data(), n));
      if (pending.valid()) pending.get();
      pending = std::async(std::launch::async, [&out, &buffer, n] { out.write(buffer.data(), n); });
      current ^= 1;
    }
  }
  if (pending.valid()) pending.get();
  out.close();
}

}  // namespace porta::io

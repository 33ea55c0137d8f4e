// Reading safetensors files: map, validate the whole header, hand out views.
//
// Nothing in the data section is touched until the header has been checked completely, so a
// corrupt or hostile file fails in open() with an Error naming the file and the tensor or key,
// never later with a crash inside a kernel.
//
// Alignment: safetensors does not promise that a tensor's bytes are aligned to its element size
// (a file with one odd-sized I8 tensor before an F32 one is valid). The views handed out point
// straight into the mapping anyway (no copy, whatever the checkpoint's size), so code reading
// their elements must use memcpy or unaligned-safe loads; backends that need aligned buffers
// copy at upload time. Files from Hugging Face's writer order tensors by alignment and are
// aligned in practice.
#include <porta/io.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/posix_file.hpp"
#include "io/safetensors_format.hpp"

namespace porta::io {

namespace {

using nlohmann::json;

std::string supported_dtype_list() {
  std::string list;
  for (const auto& entry : detail::kSafetensorsDTypes) {
    if (!list.empty()) list += ", ";
    list += entry.name;
  }
  return list;
}

struct ParsedHeader {
  std::vector<TensorEntry> entries;  // sorted by offset
  std::map<std::string, std::string> metadata;
};

// Parses the JSON, refusing duplicate top-level keys: nlohmann would silently keep the last,
// and a file naming one tensor twice is ambiguous about where its data lives.
json parse_header_json(const char* begin, std::size_t length, const std::string& path) {
  std::string duplicate;
  std::set<std::string, std::less<>> seen;
  const json::parser_callback_t reject_duplicates = [&](int depth, json::parse_event_t event,
                                                        json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(begin, begin + length, reject_duplicates);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': the safetensors header is not valid JSON: {}", path, e.what()));
  }
  if (!duplicate.empty())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': the safetensors header names '{}' twice", path, duplicate));
  if (!header.is_object())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': the safetensors header is JSON but not an object (it is {})",
                            path, header.type_name()));
  return header;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& path) {
  if (!value.is_object())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': \"{}\" must be an object of strings, not {}", path,
                            detail::kMetadataKey, value.type_name()));
  std::map<std::string, std::string> metadata;
  for (const auto& [key, text] : value.items()) {
    if (!text.is_string())
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': \"{}\" key '{}' must map to a string, not {}", path,
                              detail::kMetadataKey, key, text.type_name()));
    metadata.emplace(key, text.get<std::string>());
  }
  return metadata;
}

const json& required_field(const json& tensor, const char* field, const std::string& name,
                           const std::string& path) {
  const auto it = tensor.find(field);
  if (it == tensor.end())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': tensor '{}' lacks \"{}\"", path, name, field));
  return *it;
}

// One tensor's description, checked against itself and against the data section size.
TensorEntry parse_tensor(const std::string& name, const json& tensor, std::size_t data_section,
                         std::size_t data_start, const std::string& path,
                         std::pair<std::uint64_t, std::uint64_t>& offsets) {
  if (!tensor.is_object())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': tensor '{}' must be described by a JSON object, not {}", path,
                            name, tensor.type_name()));
  const json& dtype_json = required_field(tensor, "dtype", name, path);
  const json& shape_json = required_field(tensor, "shape", name, path);
  const json& offsets_json = required_field(tensor, "data_offsets", name, path);

  TensorEntry entry;
  entry.name = name;
  entry.file = path;
  if (!dtype_json.is_string())
    throw Error(ErrorCode::CorruptFile, fmt::format("'{}': tensor '{}' has a non-string dtype ({})",
                                                    path, name, dtype_json.type_name()));
  const auto& dtype_text = dtype_json.get_ref<const std::string&>();
  const auto dtype = detail::safetensors_dtype(dtype_text);
  if (!dtype)
    throw Error(ErrorCode::Unsupported,
                fmt::format("'{}': tensor '{}' has dtype '{}', which porta does not support "
                            "(supported: {})",
                            path, name, dtype_text, supported_dtype_list()));
  entry.dtype = *dtype;

  if (!shape_json.is_array())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': tensor '{}' has a shape that is not an array ({})", path, name,
                            shape_json.type_name()));
  std::vector<std::int64_t> dims;
  std::uint64_t bytes = dtype_size(entry.dtype);
  bool overflow = false;
  for (const auto& dim : shape_json) {
    if (dim.is_number_integer() && !dim.is_number_unsigned())
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': tensor '{}' has a negative dimension {} in shape {}", path,
                              name, dim.get<std::int64_t>(), shape_json.dump()));
    if (!dim.is_number_unsigned() ||
        dim.get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': tensor '{}' has a shape {} whose dimensions are not all "
                              "non-negative 64-bit integers",
                              path, name, shape_json.dump()));
    dims.push_back(static_cast<std::int64_t>(dim.get<std::uint64_t>()));
    overflow = overflow || __builtin_mul_overflow(bytes, dim.get<std::uint64_t>(), &bytes);
  }
  entry.shape = Shape(std::move(dims));
  if (overflow)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': tensor '{}' has shape {} whose size overflows 64 bits", path,
                            name, shape_json.dump()));

  if (!offsets_json.is_array() || offsets_json.size() != 2 ||
      !offsets_json[0].is_number_unsigned() || !offsets_json[1].is_number_unsigned())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': tensor '{}' data_offsets must be [begin, end] with two "
                            "non-negative integers, got {}",
                            path, name, offsets_json.dump()));
  const auto begin = offsets_json[0].get<std::uint64_t>();
  const auto end = offsets_json[1].get<std::uint64_t>();
  if (begin > end)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': tensor '{}' data_offsets [{}, {}] begin after they end", path,
                            name, begin, end));
  if (end > data_section)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': tensor '{}' data_offsets [{}, {}] run past the end of the data "
                            "section ({} bytes)",
                            path, name, begin, end, data_section));
  if (end - begin != bytes)
    throw Error(
        ErrorCode::CorruptFile,
        fmt::format("'{}': tensor '{}' ({} {}) needs {} bytes but its data_offsets [{}, {}] "
                    "span {}",
                    path, name, dtype_text, entry.shape.to_string(), bytes, begin, end,
                    end - begin));
  entry.nbytes = static_cast<std::size_t>(bytes);
  entry.offset = data_start + static_cast<std::size_t>(begin);
  offsets = {begin, end};
  return entry;
}

ParsedHeader parse_header(const json& header, std::size_t data_section, std::size_t data_start,
                          const std::string& path) {
  ParsedHeader parsed;
  struct Range {
    std::uint64_t begin, end;
    std::size_t entry;
  };
  std::vector<Range> ranges;
  std::vector<TensorEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == detail::kMetadataKey) {
      parsed.metadata = parse_metadata(value, path);
      continue;
    }
    std::pair<std::uint64_t, std::uint64_t> offsets;
    entries.push_back(parse_tensor(key, value, data_section, data_start, path, offsets));
    ranges.push_back({offsets.first, offsets.second, entries.size() - 1});
  }

  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // After sorting by start, a tensor overlaps an earlier one exactly when it starts before the
  // furthest end seen so far. Empty tensors own no bytes and overlap nothing.
  const Range* furthest = nullptr;
  for (const auto& range : ranges) {
    if (range.begin == range.end) continue;
    if (furthest != nullptr && range.begin < furthest->end)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': tensors '{}' [{}, {}] and '{}' [{}, {}] overlap in the data "
                              "section",
                              path, entries[furthest->entry].name, furthest->begin, furthest->end,
                              entries[range.entry].name, range.begin, range.end));
    if (furthest == nullptr || range.end > furthest->end) furthest = &range;
  }
  parsed.entries.reserve(entries.size());
  for (const auto& range : ranges) parsed.entries.push_back(std::move(entries[range.entry]));
  return parsed;
}

}  // namespace

struct SafeTensorsFile::Impl {
  std::string path;
  std::shared_ptr<detail::MappedFile> mapping;
  std::vector<TensorEntry> entries;
  std::map<std::string, std::size_t, std::less<>> by_name;
  std::map<std::string, std::string> metadata;
};

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  const detail::InputFile file(path);
  if (file.size() < detail::kSafetensorsLengthBytes)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}' is not a safetensors file: {} bytes is too short to hold the "
                            "8-byte header length",
                            path, file.size()));
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  impl->mapping = detail::MappedFile::map(file);
  const auto* bytes = reinterpret_cast<const unsigned char*>(impl->mapping->data());

  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | bytes[i];
  const std::size_t after_length = file.size() - detail::kSafetensorsLengthBytes;
  if (header_length > after_length)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': safetensors header length {} runs past the end of the file "
                            "({} bytes)",
                            path, header_length, file.size()));
  if (header_length > detail::kMaxSafetensorsHeaderBytes)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': safetensors header length {} is implausibly large (limit {})",
                            path, header_length, detail::kMaxSafetensorsHeaderBytes));

  const std::size_t data_start = detail::kSafetensorsLengthBytes + header_length;
  const json header = parse_header_json(reinterpret_cast<const char*>(bytes) + 8,
                                        static_cast<std::size_t>(header_length), path);
  ParsedHeader parsed;
  try {
    parsed = parse_header(header, file.size() - data_start, data_start, path);
  } catch (const json::exception& e) {  // defensive: every access above is type-checked first
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': malformed safetensors header: {}", path, e.what()));
  }
  impl->entries = std::move(parsed.entries);
  impl->metadata = std::move(parsed.metadata);
  for (std::size_t i = 0; i < impl->entries.size(); ++i)
    impl->by_name.emplace(impl->entries[i].name, i);

  SafeTensorsFile opened;
  opened.impl_ = std::move(impl);
  return opened;
}

namespace {
// A default-constructed SafeTensorsFile has no Impl; using it is a caller error, not a crash.
template <class Impl>
const Impl& opened_or_throw(const std::shared_ptr<const Impl>& impl) {
  if (!impl)
    throw Error(ErrorCode::InvalidArgument,
                "this SafeTensorsFile was default-constructed; use SafeTensorsFile::open");
  return *impl;
}
}  // namespace

const std::string& SafeTensorsFile::path() const { return opened_or_throw(impl_).path; }

const std::vector<TensorEntry>& SafeTensorsFile::entries() const {
  return opened_or_throw(impl_).entries;
}

bool SafeTensorsFile::contains(const std::string& name) const {
  return opened_or_throw(impl_).by_name.count(name) != 0;
}

const TensorEntry& SafeTensorsFile::entry(const std::string& name) const {
  const Impl& impl = opened_or_throw(impl_);
  const auto it = impl.by_name.find(name);
  if (it == impl.by_name.end())
    throw Error(ErrorCode::NotFound, fmt::format("'{}' has no tensor named '{}'", impl.path, name));
  return impl.entries[it->second];
}

Tensor SafeTensorsFile::get(const std::string& name) const {
  const Impl& impl = opened_or_throw(impl_);
  const TensorEntry& found = entry(name);
  // The tensor co-owns the mapping, so it stays valid after this SafeTensorsFile is gone.
  std::shared_ptr<const void> owner = impl.mapping;
  return Tensor::view(impl.mapping->data() + found.offset, found.shape, found.dtype,
                      std::move(owner));
}

const std::map<std::string, std::string>& SafeTensorsFile::metadata() const {
  return opened_or_throw(impl_).metadata;
}

}  // namespace porta::io

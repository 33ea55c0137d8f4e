// Writing GGUF files (version 3 by default; 2 is the same layout): header, metadata, tensor
// infos, then each tensor's data at the next multiple of the alignment.
#include <porta/gguf.hpp>

#include <set>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "gguf/format.hpp"
#include "io/posix_file.hpp"

namespace porta::gguf {

namespace {

class Buffer {
 public:
  template <class T>
  void scalar(T value) {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void string(const std::string& s) {
    scalar<std::uint64_t>(s.size());
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    bytes_.insert(bytes_.end(), p, p + s.size());
  }
  void pad_to(std::size_t alignment) {
    bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment, std::byte{0});
  }
  std::vector<std::byte>& bytes() { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

void write_scalar(Buffer& b, const Value& v) {
  switch (v.type) {
    case ValueType::U8: b.scalar(static_cast<std::uint8_t>(v.unsigned_integer)); return;
    case ValueType::U16: b.scalar(static_cast<std::uint16_t>(v.unsigned_integer)); return;
    case ValueType::U32: b.scalar(static_cast<std::uint32_t>(v.unsigned_integer)); return;
    case ValueType::U64: b.scalar(v.unsigned_integer); return;
    case ValueType::I8: b.scalar(static_cast<std::int8_t>(v.integer)); return;
    case ValueType::I16: b.scalar(static_cast<std::int16_t>(v.integer)); return;
    case ValueType::I32: b.scalar(static_cast<std::int32_t>(v.integer)); return;
    case ValueType::I64: b.scalar(v.integer); return;
    case ValueType::F32: b.scalar(static_cast<float>(v.real)); return;
    case ValueType::F64: b.scalar(v.real); return;
    case ValueType::Bool: b.scalar(static_cast<std::uint8_t>(v.boolean ? 1 : 0)); return;
    case ValueType::String: b.string(v.string); return;
    case ValueType::Array: break;
  }
  throw Error(ErrorCode::Unsupported, "GGUF arrays of arrays are not supported");
}

void write_value(Buffer& b, const std::string& key, const Value& v) {
  b.scalar(static_cast<std::uint32_t>(v.type));
  if (v.type != ValueType::Array) return write_scalar(b, v);
  b.scalar(static_cast<std::uint32_t>(v.element_type));
  b.scalar<std::uint64_t>(v.array.size());
  for (const Value& e : v.array) {
    if (e.type != v.element_type)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("metadata key '{}': an array of {} holds a {}", key,
                              value_type_name(v.element_type), value_type_name(e.type)));
    write_scalar(b, e);
  }
}

std::uint32_t alignment_from(const std::vector<std::pair<std::string, Value>>& metadata) {
  for (const auto& [key, value] : metadata)
    if (key == kAlignmentKey) {
      const auto a = static_cast<std::uint32_t>(value.unsigned_integer);
      if (value.type != ValueType::U32 || a == 0 || (a & (a - 1)) != 0)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("'{}' must be a u32 power of two", kAlignmentKey));
      return a;
    }
  return kDefaultAlignment;
}

}  // namespace

TensorToWrite make_tensor(std::string name, const Shape& shape, GgmlType type,
                          std::span<const float> values) {
  if (static_cast<std::int64_t>(values.size()) != shape.numel())
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("tensor '{}': {} values for shape {}", name, values.size(),
                            shape.to_string()));
  TensorToWrite t;
  t.name = std::move(name);
  for (int axis = shape.rank() - 1; axis >= 0; --axis)
    t.dims.push_back(static_cast<std::uint64_t>(shape[axis]));
  t.type = type;
  try {
    t.data.resize(row_bytes(type, values.size()));
    quantize(type, values, t.data);
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("tensor '{}': {}", t.name, e.what()));
  }
  return t;
}

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, Value>>& metadata,
                const std::vector<TensorToWrite>& tensors, std::uint32_t version) {
  if (version != 2 && version != 3)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("porta writes GGUF versions 2 and 3, not {}", version));
  const std::uint32_t alignment = alignment_from(metadata);
  Buffer head;
  head.scalar(detail::kMagic);
  head.scalar(version);
  head.scalar<std::uint64_t>(tensors.size());
  head.scalar<std::uint64_t>(metadata.size());
  std::set<std::string> keys;
  for (const auto& [key, value] : metadata) {
    if (!keys.insert(key).second)
      throw Error(ErrorCode::InvalidArgument, fmt::format("metadata key '{}' given twice", key));
    head.string(key);
    write_value(head, key, value);
  }
  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    if (!names.insert(t.name).second)
      throw Error(ErrorCode::InvalidArgument, fmt::format("tensor '{}' given twice", t.name));
    if (t.dims.size() > detail::kMaxDims)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("tensor '{}' has {} dimensions; GGUF allows {}", t.name,
                              t.dims.size(), detail::kMaxDims));
    std::uint64_t numel = 1;
    for (auto d : t.dims) numel *= d;
    std::size_t expected = 0;
    try {
      expected = row_bytes(t.type, numel);
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("tensor '{}': {}", t.name, e.what()));
    }
    if (!t.dims.empty() && t.dims[0] % traits_of(t.type).block_elements != 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("tensor '{}': row length {} is not a multiple of the {} block size",
                              t.name, t.dims[0], type_name(t.type)));
    if (t.data.size() != expected)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("tensor '{}' has {} bytes; {} {} elements take {}", t.name,
                              t.data.size(), numel, type_name(t.type), expected));
    head.string(t.name);
    head.scalar<std::uint32_t>(static_cast<std::uint32_t>(t.dims.size()));
    for (auto d : t.dims) head.scalar<std::uint64_t>(d);
    head.scalar(static_cast<std::uint32_t>(t.type));
    head.scalar<std::uint64_t>(offset);
    offset = (offset + t.data.size() + alignment - 1) / alignment * alignment;
  }
  head.pad_to(alignment);

  io::detail::OutputFile out(path);
  out.write(head.bytes().data(), head.bytes().size());
  const std::vector<std::byte> zeros(alignment, std::byte{0});
  for (const TensorToWrite& t : tensors) {
    out.write(t.data.data(), t.data.size());
    const std::size_t pad = (alignment - t.data.size() % alignment) % alignment;
    out.write(zeros.data(), pad);
  }
  out.close();
}

}  // namespace porta::gguf

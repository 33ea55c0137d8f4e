// Reading GGUF files: map, validate everything, hand out views.
//
// The parser walks the header with a cursor that refuses to read past the end of the mapping;
// each read names what it is reading (the key or tensor, and the field), so any truncation or
// wild length becomes an Error saying where. Counts are checked against the bytes left before
// anything is reserved, so a forged count cannot make the reader allocate gigabytes.
#include <porta/gguf.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "gguf/format.hpp"
#include "io/posix_file.hpp"

namespace porta::gguf {

struct GgufFile::Impl {
  std::string path;
  std::uint32_t version = 0;
  std::uint32_t alignment = kDefaultAlignment;
  std::uint64_t data_offset = 0;
  std::shared_ptr<io::detail::MappedFile> mapping;
  std::vector<std::pair<std::string, Value>> metadata;
  std::unordered_map<std::string, std::size_t> key_index;
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string, std::size_t> tensor_index;
};

namespace {

class Cursor {
 public:
  Cursor(const std::byte* data, std::size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  std::size_t position() const { return pos_; }
  std::size_t remaining() const { return size_ - pos_; }
  // What is being read, for error messages: "metadata key 'x'", "tensor 'w'", ...
  void subject(std::string s) { subject_ = std::move(s); }

  [[noreturn]] void fail(const std::string& why) const {
    throw Error(ErrorCode::CorruptFile, fmt::format("'{}': {}: {}", path_, subject_, why));
  }

  void need(std::size_t bytes, const char* field) const {
    if (bytes > remaining())
      fail(fmt::format("its {} ({} bytes at offset {}) runs past the end of the file ({} bytes)",
                       field, bytes, pos_, size_));
  }

  template <class T>
  T scalar(const char* field) {
    need(sizeof(T), field);
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string string(const char* field) {
    const auto length = scalar<std::uint64_t>(field);
    if (length > remaining())
      fail(fmt::format("its {} has length {}, past the end of the file ({} bytes left)", field,
                       length, remaining()));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<std::size_t>(length));
    pos_ += static_cast<std::size_t>(length);
    return s;
  }

  // A count of items each at least `min_item_bytes` long: refuses counts the file cannot hold.
  std::uint64_t count(const char* field, std::size_t min_item_bytes) {
    const auto n = scalar<std::uint64_t>(field);
    if (min_item_bytes > 0 && n > remaining() / min_item_bytes)
      fail(fmt::format("its {} {} needs at least {} bytes each but only {} bytes are left", field,
                       n, min_item_bytes, remaining()));
    return n;
  }

 private:
  const std::byte* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  const std::string& path_;
  std::string subject_ = "header";
};

ValueType value_type(Cursor& c, const char* field) {
  const auto id = c.scalar<std::uint32_t>(field);
  if (!detail::valid_value_type(id))
    c.fail(fmt::format("its {} is {}, not a GGUF value type (0..12)", field, id));
  return static_cast<ValueType>(id);
}

Value read_scalar(Cursor& c, ValueType type) {
  switch (type) {
    case ValueType::U8: return Value::u8(c.scalar<std::uint8_t>("u8 value"));
    case ValueType::I8: return Value::i8(c.scalar<std::int8_t>("i8 value"));
    case ValueType::U16: return Value::u16(c.scalar<std::uint16_t>("u16 value"));
    case ValueType::I16: return Value::i16(c.scalar<std::int16_t>("i16 value"));
    case ValueType::U32: return Value::u32(c.scalar<std::uint32_t>("u32 value"));
    case ValueType::I32: return Value::i32(c.scalar<std::int32_t>("i32 value"));
    case ValueType::U64: return Value::u64(c.scalar<std::uint64_t>("u64 value"));
    case ValueType::I64: return Value::i64(c.scalar<std::int64_t>("i64 value"));
    case ValueType::F32: return Value::f32(c.scalar<float>("f32 value"));
    case ValueType::F64: return Value::f64(c.scalar<double>("f64 value"));
    case ValueType::Bool: {
      const auto b = c.scalar<std::uint8_t>("bool value");
      if (b > 1) c.fail(fmt::format("its bool value is {}, not 0 or 1", b));
      return Value::boolean_value(b == 1);
    }
    case ValueType::String: return Value::str(c.string("string value"));
    case ValueType::Array: break;
  }
  c.fail("internal: read_scalar on an array");
}

Value read_value(Cursor& c, ValueType type) {
  if (type != ValueType::Array) return read_scalar(c, type);
  const ValueType element = value_type(c, "array element type");
  if (element == ValueType::Array)
    throw Error(ErrorCode::Unsupported,
                "nested GGUF arrays are not supported (llama.cpp refuses them too)");
  // A string takes at least its 8-byte length.
  const std::size_t min_bytes =
      element == ValueType::String ? 8 : detail::scalar_bytes(element);
  const auto n = c.count("array length", min_bytes);
  Value value;
  value.type = ValueType::Array;
  value.element_type = element;
  value.array.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) value.array.push_back(read_scalar(c, element));
  return value;
}

std::uint32_t alignment_of(const GgufFile::Impl& impl, Cursor& c) {
  const auto it = impl.key_index.find(kAlignmentKey);
  if (it == impl.key_index.end()) return kDefaultAlignment;
  const Value& v = impl.metadata[it->second].second;
  c.subject(fmt::format("metadata key '{}'", kAlignmentKey));
  if (v.type != ValueType::U32)
    c.fail(fmt::format("it must be a u32, not {}", value_type_name(v.type)));
  const auto a = static_cast<std::uint32_t>(v.unsigned_integer);
  if (a == 0 || (a & (a - 1)) != 0) c.fail(fmt::format("{} is not a power of two", a));
  return a;
}

TensorInfo read_tensor_info(Cursor& c, std::size_t index) {
  TensorInfo t;
  c.subject(fmt::format("tensor #{}", index));
  t.name = c.string("name");
  c.subject(fmt::format("tensor '{}'", t.name));
  const auto n_dims = c.scalar<std::uint32_t>("dimension count");
  if (n_dims > detail::kMaxDims)
    c.fail(fmt::format("it has {} dimensions; ggml allows at most {}", n_dims, detail::kMaxDims));
  for (std::uint32_t d = 0; d < n_dims; ++d) {
    const auto dim = c.scalar<std::uint64_t>("dimension");
    if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      c.fail(fmt::format("its dimension {} is {}, more than a signed 64-bit count", d, dim));
    t.dims.push_back(dim);
  }
  const auto type_id = c.scalar<std::uint32_t>("type");
  const auto traits = type_traits(type_id);
  if (!traits) c.fail(fmt::format("its type {} is not a ggml type porta knows", type_id));
  t.type = static_cast<GgmlType>(type_id);
  t.offset = c.scalar<std::uint64_t>("data offset");

  std::uint64_t numel = 1;
  for (std::size_t d = 0; d < t.dims.size(); ++d)
    if (__builtin_mul_overflow(numel, t.dims[d], &numel))
      c.fail(fmt::format("its dimensions {} overflow 64 bits", fmt::join(t.dims, " x ")));
  if (!t.dims.empty() && t.dims[0] % traits->block_elements != 0)
    c.fail(fmt::format("its row length {} is not a multiple of the {} block size {}", t.dims[0],
                       traits->name, traits->block_elements));
  if (__builtin_mul_overflow(numel / traits->block_elements, std::uint64_t{traits->block_bytes},
                             &t.nbytes))
    c.fail(fmt::format("its byte size overflows 64 bits ({} elements of {})", numel,
                       traits->name));
  return t;
}

void check_tensor_placement(GgufFile::Impl& impl, std::uint64_t data_section) {
  const std::string& path = impl.path;
  std::vector<std::size_t> order(impl.tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (const TensorInfo& t : impl.tensors) {
    if (t.offset % impl.alignment != 0)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': tensor '{}': its data offset {} is not a multiple of the "
                              "alignment {}",
                              path, t.name, t.offset, impl.alignment));
    if (t.offset > data_section || t.nbytes > data_section - t.offset)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': tensor '{}': its data [{}, {} + {}) runs past the end of "
                              "the data section ({} bytes)",
                              path, t.name, t.offset, t.offset, t.nbytes, data_section));
  }
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return impl.tensors[a].offset < impl.tensors[b].offset;
  });
  const TensorInfo* previous = nullptr;
  for (std::size_t i : order) {
    const TensorInfo& t = impl.tensors[i];
    if (t.nbytes == 0) continue;
    if (previous != nullptr && t.offset < previous->offset + previous->nbytes)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': tensors '{}' and '{}' overlap in the data section", path,
                              previous->name, t.name));
    previous = &t;
  }
}

void parse(GgufFile::Impl& impl, std::size_t file_size) {
  Cursor c(impl.mapping ? impl.mapping->data() : nullptr, file_size, impl.path);
  const auto magic = c.scalar<std::uint32_t>("magic");
  if (magic != detail::kMagic)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}' is not a GGUF file (magic {:#010x}, expected \"GGUF\")",
                            impl.path, magic));
  impl.version = c.scalar<std::uint32_t>("version");
  if (impl.version == 1)
    throw Error(ErrorCode::Unsupported,
                fmt::format("'{}': GGUF version 1 (32-bit counts, 2023) is not supported; "
                            "convert it with a current llama.cpp",
                            impl.path));
  if (impl.version != 2 && impl.version != 3) {
    const std::uint32_t swapped = __builtin_bswap32(impl.version);
    throw Error(ErrorCode::Unsupported,
                swapped == 2 || swapped == 3
                    ? fmt::format("'{}': a big-endian GGUF file; porta reads little-endian only",
                                  impl.path)
                    : fmt::format("'{}': GGUF version {} is not supported (2 and 3 are)",
                                  impl.path, impl.version));
  }
  // A tensor info takes at least 8 (name length) + 4 + 4 + 8 bytes; a key/value 8 + 4 + 1.
  const auto tensor_count = c.count("tensor count", 24);
  const auto kv_count = c.count("metadata count", 13);

  impl.metadata.reserve(static_cast<std::size_t>(kv_count));
  for (std::uint64_t i = 0; i < kv_count; ++i) {
    c.subject(fmt::format("metadata entry #{}", i));
    std::string key = c.string("key");
    c.subject(fmt::format("metadata key '{}'", key));
    if (impl.key_index.count(key)) c.fail("the key appears twice");
    const ValueType type = value_type(c, "value type");
    try {
      Value value = read_value(c, type);
      impl.key_index.emplace(key, impl.metadata.size());
      impl.metadata.emplace_back(std::move(key), std::move(value));
    } catch (const Error& e) {
      if (e.code() != ErrorCode::Unsupported) throw;
      throw Error(ErrorCode::Unsupported,
                  fmt::format("'{}': metadata key '{}': {}", impl.path, key, e.what()));
    }
  }
  impl.alignment = alignment_of(impl, c);

  impl.tensors.reserve(static_cast<std::size_t>(tensor_count));
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    TensorInfo t = read_tensor_info(c, static_cast<std::size_t>(i));
    if (impl.tensor_index.count(t.name)) c.fail("the tensor name appears twice");
    impl.tensor_index.emplace(t.name, impl.tensors.size());
    impl.tensors.push_back(std::move(t));
  }

  const std::uint64_t end_of_infos = c.position();
  impl.data_offset = (end_of_infos + impl.alignment - 1) / impl.alignment * impl.alignment;
  const std::uint64_t data_section =
      impl.data_offset <= file_size ? file_size - impl.data_offset : 0;
  check_tensor_placement(impl, data_section);
}

const GgufFile::Impl& opened(const std::shared_ptr<const GgufFile::Impl>& impl) {
  if (!impl)
    throw Error(ErrorCode::InvalidArgument,
                "this GgufFile was default-constructed; use GgufFile::open");
  return *impl;
}

[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const Value& v,
                             const char* wanted) {
  throw Error(ErrorCode::CorruptFile, fmt::format("'{}': metadata key '{}' is {} ({}), not {}",
                                                  path, key, value_type_name(v.type),
                                                  v.to_string(4), wanted));
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  const io::detail::InputFile file(path);
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  if (file.size() > 0) impl->mapping = io::detail::MappedFile::map(file);
  parse(*impl, file.size());
  GgufFile opened_file;
  opened_file.impl_ = std::move(impl);
  return opened_file;
}

const std::string& GgufFile::path() const { return opened(impl_).path; }
std::uint32_t GgufFile::version() const { return opened(impl_).version; }
std::uint32_t GgufFile::alignment() const { return opened(impl_).alignment; }
std::uint64_t GgufFile::data_offset() const { return opened(impl_).data_offset; }
const std::vector<std::pair<std::string, Value>>& GgufFile::metadata() const {
  return opened(impl_).metadata;
}
const std::vector<TensorInfo>& GgufFile::tensors() const { return opened(impl_).tensors; }
std::shared_ptr<const void> GgufFile::owner() const { return opened(impl_).mapping; }

const Value* GgufFile::find(const std::string& key) const {
  const Impl& impl = opened(impl_);
  const auto it = impl.key_index.find(key);
  return it == impl.key_index.end() ? nullptr : &impl.metadata[it->second].second;
}

std::optional<std::int64_t> GgufFile::get_int_or(const std::string& key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_integer()) wrong_type(path(), key, *v, "an integer");
  switch (v->type) {
    case ValueType::U8:
    case ValueType::U16:
    case ValueType::U32:
    case ValueType::U64:
      if (v->unsigned_integer > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        wrong_type(path(), key, *v, "an integer below 2^63");
      return static_cast<std::int64_t>(v->unsigned_integer);
    default: return v->integer;
  }
}

std::int64_t GgufFile::get_int(const std::string& key) const {
  const auto v = get_int_or(key);
  if (!v)
    throw Error(ErrorCode::NotFound,
                fmt::format("'{}': metadata key '{}' is missing", path(), key));
  return *v;
}

std::optional<double> GgufFile::get_float_or(const std::string& key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_float()) return v->real;
  if (v->is_integer()) return static_cast<double>(*get_int_or(key));
  wrong_type(path(), key, *v, "a number");
}

double GgufFile::get_float(const std::string& key) const {
  const auto v = get_float_or(key);
  if (!v)
    throw Error(ErrorCode::NotFound,
                fmt::format("'{}': metadata key '{}' is missing", path(), key));
  return *v;
}

std::optional<bool> GgufFile::get_bool_or(const std::string& key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != ValueType::Bool) wrong_type(path(), key, *v, "a bool");
  return v->boolean;
}

bool GgufFile::get_bool(const std::string& key) const {
  const auto v = get_bool_or(key);
  if (!v)
    throw Error(ErrorCode::NotFound,
                fmt::format("'{}': metadata key '{}' is missing", path(), key));
  return *v;
}

std::optional<std::string> GgufFile::get_string_or(const std::string& key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != ValueType::String) wrong_type(path(), key, *v, "a string");
  return v->string;
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const Value* v = find(key);
  if (v == nullptr)
    throw Error(ErrorCode::NotFound,
                fmt::format("'{}': metadata key '{}' is missing", path(), key));
  if (v->type != ValueType::String) wrong_type(path(), key, *v, "a string");
  return v->string;
}

bool GgufFile::contains(const std::string& name) const {
  return opened(impl_).tensor_index.count(name) != 0;
}

const TensorInfo& GgufFile::tensor(const std::string& name) const {
  const Impl& impl = opened(impl_);
  const auto it = impl.tensor_index.find(name);
  if (it == impl.tensor_index.end())
    throw Error(ErrorCode::NotFound, fmt::format("'{}' has no tensor named '{}'", impl.path, name));
  return impl.tensors[it->second];
}

std::span<const std::byte> GgufFile::data(const std::string& name) const {
  const Impl& impl = opened(impl_);
  const TensorInfo& t = tensor(name);
  if (t.nbytes == 0) return {};
  return {impl.mapping->data() + impl.data_offset + t.offset, static_cast<std::size_t>(t.nbytes)};
}

Tensor GgufFile::view(const std::string& name) const {
  const TensorInfo& t = tensor(name);
  DType dtype = DType::F32;
  switch (t.type) {
    case GgmlType::F32: dtype = DType::F32; break;
    case GgmlType::F16: dtype = DType::F16; break;
    case GgmlType::BF16: dtype = DType::BF16; break;
    case GgmlType::I8: dtype = DType::I8; break;
    case GgmlType::I32: dtype = DType::I32; break;
    case GgmlType::I64: dtype = DType::I64; break;
    default:
      throw Error(ErrorCode::Unsupported,
                  fmt::format("'{}': tensor '{}' is {}, a block type: it has no plain view (use "
                              "dequantized())",
                              path(), name, type_name(t.type)));
  }
  const auto bytes = data(name);
  return Tensor::view(const_cast<std::byte*>(bytes.data()), t.shape(), dtype, owner());
}

Tensor GgufFile::dequantized(const std::string& name, DType to) const {
  const TensorInfo& t = tensor(name);
  if (to != DType::F32 && to != DType::BF16 && to != DType::F16)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("'{}': tensor '{}': dequantized to {}, not a float dtype", path(), name,
                            dtype_name(to)));
  Tensor out = Tensor::empty(t.shape(), to);
  const std::uint64_t numel = t.numel();
  if (numel == 0) return out;
  const std::span<const std::byte> bytes = data(name);
  try {
    if (to == DType::F32) {
      dequantize(t.type, bytes, std::span<float>(static_cast<float*>(out.data()), numel));
      return out;
    }
    // Whole rows (dims[0] elements, whole blocks: checked at open) at a time, about 64 Ki
    // elements per step.
    const std::uint64_t row = t.dims.empty() ? numel : t.dims[0];
    const std::size_t row_size = row_bytes(t.type, row);
    const std::uint64_t rows = numel / row;
    const std::uint64_t step = std::max<std::uint64_t>(1, (std::uint64_t{1} << 16) / row);
    std::vector<float> chunk(static_cast<std::size_t>(std::min(rows, step) * row));
    for (std::uint64_t r = 0; r < rows; r += step) {
      const std::uint64_t n = std::min(step, rows - r);
      const std::span<float> values(chunk.data(), static_cast<std::size_t>(n * row));
      dequantize(t.type, bytes.subspan(static_cast<std::size_t>(r) * row_size,
                                       static_cast<std::size_t>(n) * row_size),
                 values);
      convert(values.data(), DType::F32,
              static_cast<std::byte*>(out.data()) + r * row * dtype_size(to), to, values.size());
    }
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("'{}': tensor '{}': {}", path(), name, e.what()));
  }
  return out;
}

std::uint64_t TensorInfo::numel() const {
  std::uint64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

Shape TensorInfo::shape() const {
  std::vector<std::int64_t> out(dims.rbegin(), dims.rend());
  return Shape(std::move(out));
}

}  // namespace porta::gguf

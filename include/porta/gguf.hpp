// Reading and writing GGUF files, llama.cpp's single-file model format (versions 2 and 3,
// little-endian).
//
// A GGUF file is a header (magic "GGUF", version, tensor count, metadata count), typed metadata
// key/value pairs, tensor descriptions (name, dimensions, ggml type, offset) and an aligned data
// section. GgufFile::open() maps the file and validates all of it before any tensor byte is
// touched: every count, string and array length, type id, dimension product, offset and the
// alignment are bounds-checked, so a corrupt file is a porta::Error naming the key or tensor and
// the field at fault, never a crash. Tensor data are handed out as views into the mapping.
//
// Dimensions: GGUF lists them innermost first (ggml's ne[0] is the row length). TensorInfo keeps
// that order in `dims` and gives porta's outermost-first order in shape(): a Hugging Face
// weight [out, in] is stored with dims {in, out}, the same bytes.
#pragma once

#include <porta/config.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <porta/ggml_quants.hpp>
#include <porta/shape.hpp>
#include <porta/tensor.hpp>

PORTA_API_BEGIN
namespace porta::gguf {

inline constexpr std::uint32_t kDefaultAlignment = 32;
inline constexpr const char* kAlignmentKey = "general.alignment";

enum class ValueType : std::uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
std::string_view value_type_name(ValueType type) noexcept;  // "u32", "string", "array", ...

// One metadata value. Integers of every width are kept exactly in `integer` (signed types) or
// `unsigned_integer`; floats in `real` (f32 values widen exactly); arrays hold their elements as
// Values of `element_type` (nested arrays are refused when reading, as llama.cpp does).
struct Value {
  ValueType type = ValueType::U32;
  std::uint64_t unsigned_integer = 0;
  std::int64_t integer = 0;
  double real = 0;
  bool boolean = false;
  std::string string;
  ValueType element_type = ValueType::U32;
  std::vector<Value> array;

  static Value u8(std::uint8_t v);
  static Value i8(std::int8_t v);
  static Value u16(std::uint16_t v);
  static Value i16(std::int16_t v);
  static Value u32(std::uint32_t v);
  static Value i32(std::int32_t v);
  static Value u64(std::uint64_t v);
  static Value i64(std::int64_t v);
  static Value f32(float v);
  static Value f64(double v);
  static Value boolean_value(bool v);
  static Value str(std::string v);
  // An array of `element_type` values; every element must have that type.
  static Value array_of(ValueType element_type, std::vector<Value> elements);
  static Value strings(const std::vector<std::string>& values);

  bool is_integer() const noexcept;  // any integer width
  bool is_float() const noexcept;    // f32 or f64
  // The value as text for listings; arrays show at most `max_items` elements.
  std::string to_string(std::size_t max_items = 8) const;
};

struct TensorInfo {
  std::string name;
  std::vector<std::uint64_t> dims;  // innermost first, as stored
  GgmlType type = GgmlType::F32;
  std::uint64_t offset = 0;  // from the start of the data section
  std::uint64_t nbytes = 0;
  std::uint64_t numel() const;
  Shape shape() const;  // outermost first (porta, NumPy and PyTorch order)
};

class GgufFile {
 public:
  static GgufFile open(const std::string& path);

  const std::string& path() const;
  std::uint32_t version() const;
  std::uint32_t alignment() const;
  std::uint64_t data_offset() const;  // where the data section starts in the file

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const;
  const Value* find(const std::string& key) const;  // nullptr when absent
  // Typed getters: NotFound naming the key when absent, CorruptFile naming the key and both
  // types when the stored type does not fit (any integer width fits as long as the value does).
  std::int64_t get_int(const std::string& key) const;
  std::optional<std::int64_t> get_int_or(const std::string& key) const;
  double get_float(const std::string& key) const;  // integers are accepted too
  std::optional<double> get_float_or(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::optional<bool> get_bool_or(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  std::optional<std::string> get_string_or(const std::string& key) const;

  // Tensor descriptions in file order.
  const std::vector<TensorInfo>& tensors() const;
  bool contains(const std::string& name) const;
  const TensorInfo& tensor(const std::string& name) const;  // NotFound naming `name`
  // The tensor's bytes inside the mapping; valid while this file or a view of it lives.
  std::span<const std::byte> data(const std::string& name) const;
  // Plain-typed tensors (f32, f16, bf16, i8, i32, i64) as porta Tensors viewing the mapping;
  // block types are Unsupported here (use data() and dequantize()).
  Tensor view(const std::string& name) const;
  // Any dequantizable tensor as a float dtype (a copy), shaped shape(): dequantized exactly to
  // f32, then rounded to `to` a few rows at a time, so that no f32 copy of the whole tensor is
  // ever held (a 151936 x 2048 embedding table kept in bf16 would otherwise pass through 1.2 GB).
  Tensor dequantized(const std::string& name, DType to = DType::F32) const;
  // Keeps the mapping alive (for views built from data()).
  std::shared_ptr<const void> owner() const;

  struct Impl;  // defined in lib/gguf/reader.cpp

 private:
  std::shared_ptr<const Impl> impl_;
};

// The tokenizer a GGUF carries (`tokenizer.ggml.*`, `tokenizer.chat_template`), read and checked
// for the tokenizer to build on: arrays have the right element types, per-token arrays have one
// entry per token, special ids name tokens. Errors name the key.
struct TokenizerMetadata {
  std::string model;  // tokenizer.ggml.model: "gpt2" (byte-level BPE), "llama" (SentencePiece), ...
  std::string pre;    // tokenizer.ggml.pre: the pre-tokenizer's name ("deepseek-v3", "qwen2", ...)
  std::vector<std::string> tokens;
  std::vector<std::int32_t> token_types;  // empty when absent
  std::vector<float> scores;              // empty when absent
  std::vector<std::string> merges;        // "a b" pairs, BPE only
  std::optional<std::int64_t> bos_id, eos_id, unknown_id, padding_id, eot_id;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  std::string chat_template;  // empty when absent
};
// nullopt when the file has no tokenizer.ggml.model.
std::optional<TokenizerMetadata> tokenizer_metadata(const GgufFile& file);
// The tokenizer.ggml.* keys (and tokenizer.chat_template) for the Hugging Face tokenizer in `dir`
// (tokenizer.json, tokenizer_config.json): byte-level BPE as "gpt2" with a pre-tokenizer porta
// can name, Metaspace BPE as "llama". Unsupported naming the file for anything else. With
// `vocab_size`, the token list is padded to it with unused "[PADn]" tokens, as llama.cpp's
// converter does, so that it has one entry per row of the embedding table (llama.cpp refuses a
// file where the two differ); a tokenizer with more ids than that is an InvalidArgument.
std::vector<std::pair<std::string, Value>> tokenizer_metadata_from_hf(const std::string& dir,
                                                                      std::int64_t vocab_size = 0);

// A tensor to write: name, dims innermost first, type and its bytes (row_bytes of the type).
struct TensorToWrite {
  std::string name;
  std::vector<std::uint64_t> dims;
  GgmlType type = GgmlType::F32;
  std::vector<std::byte> data;
};
// `values` (outermost-first shape, f32) stored as `type` (quantized when a block type).
TensorToWrite make_tensor(std::string name, const Shape& shape, GgmlType type,
                          std::span<const float> values);

// Writes a GGUF file: the header, `metadata` in order, the tensor infos and data, each tensor
// aligned to `general.alignment` when the metadata sets it (a u32), else 32. Checks that every
// tensor's byte count matches its dims and type, names are unique and arrays are homogeneous.
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, Value>>& metadata,
                const std::vector<TensorToWrite>& tensors, std::uint32_t version = 3);

}  // namespace porta::gguf
PORTA_API_END

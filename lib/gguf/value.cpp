// Metadata values: constructors, type names and the text form `porta inspect` prints.
#include <porta/gguf.hpp>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::gguf {

std::string_view value_type_name(ValueType type) noexcept {
  switch (type) {
    case ValueType::U8: return "u8";
    case ValueType::I8: return "i8";
    case ValueType::U16: return "u16";
    case ValueType::I16: return "i16";
    case ValueType::U32: return "u32";
    case ValueType::I32: return "i32";
    case ValueType::F32: return "f32";
    case ValueType::Bool: return "bool";
    case ValueType::String: return "string";
    case ValueType::Array: return "array";
    case ValueType::U64: return "u64";
    case ValueType::I64: return "i64";
    case ValueType::F64: return "f64";
  }
  return "unknown";
}

namespace {
Value unsigned_value(ValueType type, std::uint64_t v) {
  Value value;
  value.type = type;
  value.unsigned_integer = v;
  return value;
}
Value signed_value(ValueType type, std::int64_t v) {
  Value value;
  value.type = type;
  value.integer = v;
  return value;
}
Value real_value(ValueType type, double v) {
  Value value;
  value.type = type;
  value.real = v;
  return value;
}
}  // namespace

Value Value::u8(std::uint8_t v) { return unsigned_value(ValueType::U8, v); }
Value Value::u16(std::uint16_t v) { return unsigned_value(ValueType::U16, v); }
Value Value::u32(std::uint32_t v) { return unsigned_value(ValueType::U32, v); }
Value Value::u64(std::uint64_t v) { return unsigned_value(ValueType::U64, v); }
Value Value::i8(std::int8_t v) { return signed_value(ValueType::I8, v); }
Value Value::i16(std::int16_t v) { return signed_value(ValueType::I16, v); }
Value Value::i32(std::int32_t v) { return signed_value(ValueType::I32, v); }
Value Value::i64(std::int64_t v) { return signed_value(ValueType::I64, v); }
Value Value::f32(float v) { return real_value(ValueType::F32, v); }
Value Value::f64(double v) { return real_value(ValueType::F64, v); }

Value Value::boolean_value(bool v) {
  Value value;
  value.type = ValueType::Bool;
  value.boolean = v;
  return value;
}

Value Value::str(std::string v) {
  Value value;
  value.type = ValueType::String;
  value.string = std::move(v);
  return value;
}

Value Value::array_of(ValueType element_type, std::vector<Value> elements) {
  if (element_type == ValueType::Array)
    throw Error(ErrorCode::Unsupported, "GGUF arrays of arrays are not supported");
  for (const Value& e : elements)
    if (e.type != element_type)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("an array of {} cannot hold a {}", value_type_name(element_type),
                              value_type_name(e.type)));
  Value value;
  value.type = ValueType::Array;
  value.element_type = element_type;
  value.array = std::move(elements);
  return value;
}

Value Value::strings(const std::vector<std::string>& values) {
  std::vector<Value> elements;
  elements.reserve(values.size());
  for (const auto& s : values) elements.push_back(str(s));
  return array_of(ValueType::String, std::move(elements));
}

bool Value::is_integer() const noexcept {
  switch (type) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::U16:
    case ValueType::I16:
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::U64:
    case ValueType::I64: return true;
    default: return false;
  }
}

bool Value::is_float() const noexcept { return type == ValueType::F32 || type == ValueType::F64; }

std::string Value::to_string(std::size_t max_items) const {
  switch (type) {
    case ValueType::U8:
    case ValueType::U16:
    case ValueType::U32:
    case ValueType::U64: return fmt::format("{}", unsigned_integer);
    case ValueType::I8:
    case ValueType::I16:
    case ValueType::I32:
    case ValueType::I64: return fmt::format("{}", integer);
    case ValueType::F32: return fmt::format("{}", static_cast<float>(real));
    case ValueType::F64: return fmt::format("{}", real);
    case ValueType::Bool: return boolean ? "true" : "false";
    case ValueType::String: {
      constexpr std::size_t kMaxChars = 120;  // chat templates run to kilobytes
      if (string.size() <= kMaxChars) return fmt::format("{:?}", string);
      return fmt::format("{:?}... ({} bytes)", string.substr(0, kMaxChars), string.size());
    }
    case ValueType::Array: {
      std::string out = "[";
      for (std::size_t i = 0; i < array.size() && i < max_items; ++i) {
        if (i) out += ", ";
        out += array[i].to_string(max_items);
      }
      if (array.size() > max_items)
        out += fmt::format(", ... ({} {} in all)", array.size(), value_type_name(element_type));
      return out + "]";
    }
  }
  return "?";
}

}  // namespace porta::gguf

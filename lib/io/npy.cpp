// NumPy .npy reading and writing.
//
// Format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor version byte, the header
// length (u16 little-endian in version 1.0, u32 in 2.0 and 3.0), then the header itself: a Python
// dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
// spaces and ended by '\n'. Elements follow immediately. The header is parsed here by a small
// strict parser rather than anything resembling Python's eval.
#include <porta/io.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "io/npy_format.hpp"
#include "io/posix_file.hpp"

namespace porta::io {

namespace detail {
namespace {

constexpr std::array<unsigned char, 6> kNpyMagic = {0x93, 'N', 'U', 'M', 'P', 'Y'};
// Generous: real headers are about a hundred bytes; this only stops absurd allocations.
constexpr std::size_t kMaxNpyHeaderBytes = 100u * 1024u * 1024u;
// NumPy aligns the start of the data to 64 bytes so that it can be memory-mapped and vector-loaded.
constexpr std::size_t kNpyDataAlignment = 64;

struct DescrSpelling {
  std::string_view descr;
  DType dtype;
};
// The descr strings accepted on read. '|' ("not applicable") is what NumPy writes for one-byte
// types; '<i1' is accepted too since byte order is meaningless there.
constexpr std::array<DescrSpelling, 6> kReadableDescrs{{
    {"<f4", DType::F32},
    {"<f2", DType::F16},
    {"|i1", DType::I8},
    {"<i1", DType::I8},
    {"<i4", DType::I32},
    {"<i8", DType::I64},
}};

// A cursor over the header dict text. Every failure names the file, the byte position and the
// header so a user can see what their writer produced.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path) : text_(text), path_(path) {}

  [[noreturn]] void fail(std::string_view expected) const {
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': malformed .npy header: expected {} at character {} of \"{}\"",
                            path_, expected, pos_, printable_header()));
  }

  void skip_whitespace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  bool consume(char c) {
    skip_whitespace();
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!consume(c)) fail(fmt::format("'{}'", c));
  }

  // A Python string literal in single or double quotes, without escapes (NumPy never writes any).
  std::string_view string_literal() {
    skip_whitespace();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("a quoted string");
    const std::size_t start = ++pos_;
    while (!at_end() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') fail("a string without escapes");
      ++pos_;
    }
    if (at_end()) fail("a closing quote");
    return text_.substr(start, pos_++ - start);
  }

  bool boolean_literal() {
    skip_whitespace();
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("True or False");
  }

  // (), (5,), (2, 3) or (2, 3,): non-negative decimal integers.
  Shape shape_tuple() {
    expect('(');
    std::vector<std::int64_t> dims;
    while (!consume(')')) {
      dims.push_back(dimension());
      // One-element tuples need their comma; longer ones may omit the trailing one.
      if (consume(',')) continue;
      if (dims.size() == 1) fail("',' after the only dimension of a one-element tuple");
      expect(')');
      break;
    }
    return Shape(std::move(dims));
  }

  std::string printable_header() const {
    std::string shown;
    for (char c : text_.substr(0, 200)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (text_.size() > 200) shown += "...";
    return shown;
  }

 private:
  std::int64_t dimension() {
    skip_whitespace();
    if (peek() == '-')
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': .npy shape has a negative dimension: \"{}\"", path_,
                              printable_header()));
    if (peek() < '0' || peek() > '9') fail("a dimension (a non-negative integer)");
    std::int64_t value = 0;
    while (peek() >= '0' && peek() <= '9') {
      const int digit = text_[pos_++] - '0';
      if (value > (std::numeric_limits<std::int64_t>::max() - digit) / 10)
        fail("a dimension that fits in 64 bits");
      value = value * 10 + digit;
    }
    if (peek() == 'L') ++pos_;  // Python 2 era writers printed longs as 3L
    return value;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  const std::string& path_;
};

struct HeaderDict {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

HeaderDict parse_header_dict(std::string_view text, const std::string& path) {
  HeaderParser parser(text, path);
  std::optional<std::string> descr;
  std::optional<bool> fortran_order;
  std::optional<Shape> shape;

  parser.expect('{');
  while (!parser.consume('}')) {
    const std::string key(parser.string_literal());
    parser.expect(':');
    const auto repeated = [&] {
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': .npy header repeats the key '{}'", path, key));
    };
    if (key == "descr") {
      if (descr) repeated();
      parser.skip_whitespace();
      if (parser.peek() == '[')
        throw Error(ErrorCode::Unsupported,
                    fmt::format("'{}': structured .npy dtypes are not supported (descr is a list); "
                                "save a plain numeric array",
                                path));
      descr = std::string(parser.string_literal());
    } else if (key == "fortran_order") {
      if (fortran_order) repeated();
      fortran_order = parser.boolean_literal();
    } else if (key == "shape") {
      if (shape) repeated();
      shape = parser.shape_tuple();
    } else {
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': .npy header has an unexpected key '{}' (only descr, "
                              "fortran_order and shape are allowed)",
                              path, key));
    }
    if (parser.consume(',')) continue;
    parser.expect('}');
    break;
  }
  parser.skip_whitespace();
  if (!parser.at_end()) parser.fail("only spaces and a newline after the closing '}'");

  const auto require_key = [&](bool present, std::string_view key) {
    if (!present)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': .npy header lacks the key '{}': \"{}\"", path, key,
                              parser.printable_header()));
  };
  require_key(descr.has_value(), "descr");
  require_key(fortran_order.has_value(), "fortran_order");
  require_key(shape.has_value(), "shape");
  return HeaderDict{*descr, *fortran_order, *shape};
}

DType dtype_from_descr(const std::string& descr, const std::string& path) {
  for (const auto& spelling : kReadableDescrs)
    if (spelling.descr == descr) return spelling.dtype;
  if (!descr.empty() && descr[0] == '>')
    throw Error(ErrorCode::Unsupported,
                fmt::format("'{}': big-endian .npy dtype '{}' is not supported; convert with "
                            "array.astype(array.dtype.newbyteorder('<')) before saving",
                            path, descr));
  throw Error(ErrorCode::Unsupported,
              fmt::format("'{}': .npy dtype '{}' is not supported (expected one of <f4, <f2, |i1, "
                          "<i4, <i8)",
                          path, descr));
}

std::string_view descr_for(DType dtype) {
  switch (dtype) {
    case DType::F32: return "<f4";
    case DType::F16: return "<f2";
    case DType::I8: return "|i1";
    case DType::I32: return "<i4";
    case DType::I64: return "<i8";
    case DType::BF16:
    case DType::F8E4M3: break;
  }
  return "<f4";  // widened by the caller
}

std::uint32_t read_le(const unsigned char* bytes, int count) {
  std::uint32_t value = 0;
  for (int i = count - 1; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

}  // namespace

NpyLayout read_npy_layout(const InputFile& file) {
  const std::string& path = file.path();
  std::array<unsigned char, 12> prefix{};
  if (file.size() < 10)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}' is not a .npy file: only {} bytes, shorter than the 10-byte "
                            "preamble",
                            path, file.size()));
  file.read_at(0, prefix.data(), 10);
  if (!std::equal(kNpyMagic.begin(), kNpyMagic.end(), prefix.begin()))
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}' is not a .npy file: bad magic (expected \\x93NUMPY)", path));

  const int major = prefix[6];
  const int minor = prefix[7];
  std::size_t length_bytes = 0;
  if (major == 1 && minor == 0) {
    length_bytes = 2;
  } else if ((major == 2 || major == 3) && minor == 0) {
    length_bytes = 4;
    if (file.size() < 12)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': .npy version {}.0 preamble truncated ({} bytes)", path, major,
                              file.size()));
    file.read_at(10, prefix.data() + 10, 2);
  } else {
    throw Error(ErrorCode::Unsupported,
                fmt::format("'{}': .npy format version {}.{} is not supported (1.0, 2.0, 3.0 are)",
                            path, major, minor));
  }
  const std::size_t header_length = read_le(prefix.data() + 8, static_cast<int>(length_bytes));
  const std::size_t header_start = 8 + length_bytes;
  if (header_length > kMaxNpyHeaderBytes || header_start + header_length > file.size())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': .npy header length {} runs past the end of the file ({} bytes)",
                            path, header_length, file.size()));

  std::string header_text(header_length, '\0');
  file.read_at(header_start, header_text.data(), header_length);
  const HeaderDict dict = parse_header_dict(header_text, path);

  if (dict.fortran_order)
    throw Error(ErrorCode::Unsupported,
                fmt::format("'{}': Fortran-order (column-major) .npy arrays are not supported; "
                            "save numpy.ascontiguousarray(array) instead",
                            path));
  NpyLayout layout;
  layout.dtype = dtype_from_descr(dict.descr, path);
  layout.shape = dict.shape;
  layout.data_offset = header_start + header_length;

  // Checked multiplication: a hostile shape must not wrap around into a small byte count.
  const std::size_t available = file.size() - layout.data_offset;
  std::size_t expected = dtype_size(layout.dtype);
  bool overflow = false;
  for (auto dim : layout.shape.dims())
    overflow =
        overflow || __builtin_mul_overflow(expected, static_cast<std::size_t>(dim), &expected);
  if (overflow || expected != available)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': .npy {} array of shape {} needs {} bytes of data but the file "
                            "holds {} after the header{}",
                            path, dict.descr, layout.shape.to_string(),
                            overflow ? std::string("more than 2^64") : std::to_string(expected),
                            available, (!overflow && available < expected) ? " (truncated)" : ""));
  layout.data_bytes = expected;
  return layout;
}

}  // namespace detail

Tensor read_npy(const std::string& path) {
  const detail::InputFile file(path);
  const detail::NpyLayout layout = detail::read_npy_layout(file);
  Tensor tensor = Tensor::zeros(layout.shape, layout.dtype);
  file.read_at(layout.data_offset, tensor.data(), layout.data_bytes);
  return tensor;
}

void write_npy(const std::string& path, const Tensor& tensor) {
  if (!tensor.defined())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("write_npy('{}'): the tensor is empty (default-constructed)", path));
  // NumPy has no bf16 or fp8 dtype; float32 holds both exactly.
  const bool widen = tensor.dtype() == DType::BF16 || tensor.dtype() == DType::F8E4M3;
  const Tensor stored = widen ? tensor.to(DType::F32) : tensor;

  std::string shape_text = "(";
  for (std::size_t i = 0; i < stored.shape().dims().size(); ++i) {
    if (i > 0) shape_text += ", ";
    shape_text += std::to_string(stored.shape().dims()[i]);
  }
  if (stored.shape().rank() == 1) shape_text += ',';
  shape_text += ')';
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
                                   detail::descr_for(stored.dtype()), shape_text);

  // Version 1.0 stores the header length in 16 bits; longer headers (only absurdly high ranks)
  // need version 2.0. The padding puts the first element on a 64-byte boundary, as NumPy does.
  const auto padded_length = [&](std::size_t preamble) {
    const std::size_t unpadded = preamble + header.size() + 1;  // + '\n'
    return (unpadded + detail::kNpyDataAlignment - 1) / detail::kNpyDataAlignment *
               detail::kNpyDataAlignment -
           preamble;
  };
  int major = 1;
  std::size_t preamble = 10;
  std::size_t header_length = padded_length(preamble);
  if (header_length > 0xffff) {
    major = 2;
    preamble = 12;
    header_length = padded_length(preamble);
  }
  header.append(header_length - header.size() - 1, ' ');
  header += '\n';

  std::string bytes(detail::kNpyMagic.begin(), detail::kNpyMagic.end());
  bytes += static_cast<char>(major);
  bytes += '\0';
  for (std::size_t i = 0; i < preamble - 8; ++i)
    bytes += static_cast<char>((header_length >> (8 * i)) & 0xffu);
  bytes += header;

  detail::OutputFile out(path);
  out.write(bytes.data(), bytes.size());
  out.write(stored.data(), stored.nbytes());
  out.close();
}

}  // namespace porta::io

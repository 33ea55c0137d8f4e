#include <porta/tensor.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <fmt/format.h>

namespace porta {

namespace {

constexpr std::size_t kAlignment = 64;

std::shared_ptr<void> allocate_aligned(std::size_t bytes, bool zero_fill) {
  std::size_t rounded = ((bytes + kAlignment - 1) / kAlignment) * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr)
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("cannot allocate {} bytes for a tensor", bytes));
  if (zero_fill) {
    std::memset(p, 0, rounded);
  } else {
#ifndef NDEBUG
    // Debug builds (the sanitizer pass of `make test`) poison unspecified contents: every byte
    // 0xFF reads as NaN in each float dtype and -1 in each integer one, so a kernel that leaves
    // part of an output unwritten fails its test instead of passing on recycled zeros.
    std::memset(p, 0xFF, rounded);
#endif
  }
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

void check_dims(const Shape& shape) {
  for (auto d : shape.dims())
    if (d < 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("tensor shape {} has a negative dimension", shape.to_string()));
}

}  // namespace

Tensor Tensor::allocate(Shape shape, DType dtype, bool zero_fill) {
  check_dims(shape);
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  auto storage = allocate_aligned(t.nbytes(), zero_fill);
  t.data_ = storage.get();
  t.owner_ = std::move(storage);
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype) { return allocate(std::move(shape), dtype, true); }

Tensor Tensor::empty(Shape shape, DType dtype) { return allocate(std::move(shape), dtype, false); }

Tensor Tensor::copy_of(Shape shape, DType dtype, const void* data, std::size_t bytes) {
  Tensor t = empty(std::move(shape), dtype);
  if (bytes != t.nbytes())
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("{} bytes given for a {} tensor of shape {} ({} bytes expected)", bytes,
                            dtype_name(dtype), t.shape_.to_string(), t.nbytes()));
  if (bytes > 0) std::memcpy(t.data_, data, bytes);
  return t;
}

Tensor Tensor::from_f32(Shape shape, DType dtype, std::span<const float> values) {
  Tensor t = empty(std::move(shape), dtype);
  if (values.size() != static_cast<std::size_t>(t.numel()))
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("{} values given for a tensor of shape {} ({} elements)", values.size(),
                            t.shape_.to_string(), t.numel()));
  convert(values.data(), DType::F32, t.data_, dtype, values.size());
  return t;
}

Tensor Tensor::view(void* data, Shape shape, DType dtype) {
  return view(data, std::move(shape), dtype, nullptr);
}

Tensor Tensor::view(void* data, Shape shape, DType dtype, std::shared_ptr<const void> owner) {
  check_dims(shape);
  if (data == nullptr && shape.numel() != 0)
    throw Error(
        ErrorCode::InvalidArgument,
        fmt::format("null data pointer for a non-empty tensor of shape {}", shape.to_string()));
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.data_ = data;
  t.owner_ = std::move(owner);
  return t;
}

struct Tensor::Parts {
  std::vector<void*> data;
  std::vector<std::shared_ptr<const void>> owners;  // each distinct owner once
};

Tensor Tensor::stack_views(const std::vector<Tensor>& parts) {
  if (parts.empty())
    throw Error(ErrorCode::InvalidArgument, "stack_views() needs at least one part");
  const Tensor& first = parts.front();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Tensor& p = parts[i];
    if (p.stacked() || !p.defined())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("stack_views(): part {} is {}", i,
                              p.stacked() ? "itself stacked" : "undefined"));
    if (p.shape() != first.shape() || p.dtype() != first.dtype())
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("stack_views(): part {} is {} but part 0 is {}", i, p.description(),
                              first.description()));
  }
  std::vector<std::int64_t> dims{static_cast<std::int64_t>(parts.size())};
  for (auto d : first.shape().dims()) dims.push_back(d);
  const std::size_t bytes = first.nbytes();
  bool adjacent = true;
  for (std::size_t i = 1; i < parts.size() && adjacent; ++i)
    adjacent = static_cast<char*>(parts[i].data()) == static_cast<char*>(first.data()) + i * bytes;
  if (adjacent) {
    auto owners = std::make_shared<std::vector<std::shared_ptr<const void>>>();
    for (const Tensor& p : parts)
      if (p.owner_ && (owners->empty() || owners->back() != p.owner_)) owners->push_back(p.owner_);
    return view(first.data(), Shape(std::move(dims)), first.dtype(), std::move(owners));
  }
  auto table = std::make_shared<Parts>();
  for (const Tensor& p : parts) {
    table->data.push_back(p.data());
    if (p.owner_ && std::find(table->owners.begin(), table->owners.end(), p.owner_) ==
                        table->owners.end())
      table->owners.push_back(p.owner_);
  }
  Tensor t;
  t.shape_ = Shape(std::move(dims));
  t.dtype_ = first.dtype();
  t.parts_ = std::move(table);
  return t;
}

std::span<void* const> Tensor::parts() const noexcept {
  if (!parts_) return {};
  return {parts_->data.data(), parts_->data.size()};
}

std::size_t Tensor::part_bytes() const noexcept {
  if (shape_.rank() == 0 || shape_[0] == 0) return nbytes();
  return nbytes() / static_cast<std::size_t>(shape_[0]);
}

void* Tensor::part(std::int64_t i) const noexcept {
  if (parts_) return parts_->data[static_cast<std::size_t>(i)];
  return static_cast<char*>(data_) + static_cast<std::size_t>(i) * part_bytes();
}

Tensor Tensor::contiguous() const {
  if (!parts_) return *this;
  Tensor t = empty(shape_, dtype_);
  const std::size_t bytes = part_bytes();
  for (std::size_t i = 0; i < parts_->data.size(); ++i)
    std::memcpy(static_cast<char*>(t.data_) + i * bytes, parts_->data[i], bytes);
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  std::int64_t known = 1;
  int inferred = -1;
  auto dims = shape.dims();
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1 && inferred < 0) {
      inferred = static_cast<int>(i);
    } else if (dims[i] < 0) {
      throw Error(ErrorCode::InvalidArgument, fmt::format("cannot reshape {} to {}: bad dimension",
                                                          shape_.to_string(), shape.to_string()));
    } else {
      known *= dims[i];
    }
  }
  if (inferred >= 0) {
    if (known == 0 || numel() % known != 0)
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("cannot reshape {} to {}", shape_.to_string(), shape.to_string()));
    dims[static_cast<std::size_t>(inferred)] = numel() / known;
    known *= dims[static_cast<std::size_t>(inferred)];
  }
  if (known != numel())
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("cannot reshape {} ({} elements) to {}", shape_.to_string(), numel(),
                            shape.to_string()));
  if (parts_ && (dims.empty() || dims[0] != shape_[0]))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("cannot reshape the stacked tensor {} to {}: its parts along "
                            "dimension 0 live apart (use contiguous() first)",
                            description(), Shape(dims).to_string()));
  Tensor t = *this;
  t.shape_ = Shape(std::move(dims));
  return t;
}

Tensor Tensor::clone() const {
  if (parts_) return contiguous();
  return copy_of(shape_, dtype_, data_, nbytes());
}

Tensor Tensor::to(DType dtype) const {
  Tensor t = empty(shape_, dtype);
  if (parts_) {
    const auto count = static_cast<std::size_t>(shape_[0] == 0 ? 0 : numel() / shape_[0]);
    for (std::size_t i = 0; i < parts_->data.size(); ++i)
      convert(parts_->data[i], dtype_, static_cast<char*>(t.data_) + i * t.part_bytes(), dtype,
              count);
    return t;
  }
  convert(data_, dtype_, t.data_, dtype, static_cast<std::size_t>(numel()));
  return t;
}

std::vector<float> Tensor::to_f32() const {
  if (parts_) return to(DType::F32).to_f32();
  std::vector<float> out(static_cast<std::size_t>(numel()));
  convert(data_, dtype_, out.data(), DType::F32, out.size());
  return out;
}

float Tensor::at_f32(std::int64_t i) const {
  if (i < 0 || i >= numel())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("element {} is out of range for a tensor of {} elements", i, numel()));
  if (parts_) {
    const std::int64_t per_part = numel() / shape_[0];
    return load_as_f32(parts_->data[static_cast<std::size_t>(i / per_part)], dtype_,
                       static_cast<std::size_t>(i % per_part));
  }
  return load_as_f32(data_, dtype_, static_cast<std::size_t>(i));
}

std::string Tensor::description() const {
  return fmt::format("{}{}", dtype_name(dtype_), shape_.to_string());
}

void Tensor::check_element_type(DType requested) const {
  if (parts_)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("tensor {} is stacked from separate parts: address them with part() "
                            "or gather them with contiguous()",
                            description()));
  if (requested != dtype_)
    throw Error(ErrorCode::DTypeMismatch,
                fmt::format("tensor {} accessed as {}", description(), dtype_name(requested)));
}

}  // namespace porta

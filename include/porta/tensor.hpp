// Tensor: a dense, row-major block of elements with a shape and a dtype.
//
// A Tensor either owns its memory or views memory someone else keeps alive (a user's array, a
// memory-mapped checkpoint). Copying a Tensor is cheap and shares the memory, like a
// std::shared_ptr; clone() makes an independent deep copy. Weights handed to a Graph are shared
// this way, so a 100 GB checkpoint is never copied just to be described.
//
// A *stacked* tensor [E, ...] is E equal parts that live at unrelated addresses (the per-expert
// matrices of a checkpoint, each its own safetensors entry): it keeps a table of the parts'
// addresses instead of one buffer, so stacking them costs no copy. Its data() is null; part(i)
// addresses part i of any tensor, stacked or not, and contiguous() gathers the parts into one
// buffer for code that needs one (a copy the caller should count).
#pragma once

#include <porta/config.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <porta/dtype.hpp>
#include <porta/error.hpp>
#include <porta/shape.hpp>

PORTA_API_BEGIN
namespace porta {

class Tensor {
 public:
  Tensor() = default;

  // Owning, zero-filled, 64-byte aligned.
  static Tensor zeros(Shape shape, DType dtype);
  // Owning, 64-byte aligned, contents unspecified: for memory about to be overwritten whole (an
  // output buffer handed to Executable::run), where zero-filling would be a wasted pass.
  static Tensor empty(Shape shape, DType dtype);
  // Owning copy of `bytes` bytes at `data`; `bytes` must equal numel * dtype_size.
  static Tensor copy_of(Shape shape, DType dtype, const void* data, std::size_t bytes);
  // Owning tensor from a typed vector; the dtype follows T (float, Half, BFloat16, int8_t, ...).
  template <class T>
  static Tensor from_vector(Shape shape, const std::vector<T>& values) {
    return copy_of(std::move(shape), dtype_of_v<T>, values.data(), values.size() * sizeof(T));
  }
  // Owning f32 values converted (rounded to nearest even) into `dtype`.
  static Tensor from_f32(Shape shape, DType dtype, std::span<const float> values);
  // Non-owning view: the caller keeps `data` alive and unchanged while the tensor is used.
  static Tensor view(void* data, Shape shape, DType dtype);
  // View that keeps `owner` (a mapping, a buffer) alive as long as any copy of the tensor lives.
  static Tensor view(void* data, Shape shape, DType dtype, std::shared_ptr<const void> owner);
  // [E, ...part shape] from E parts of one shape and dtype, none of them stacked itself, without
  // copying: an ordinary view when the parts lie back to back in order, else a stacked tensor
  // holding their addresses. Keeps every part's memory alive.
  static Tensor stack_views(const std::vector<Tensor>& parts);

  bool defined() const noexcept {
    return data_ != nullptr || parts_ != nullptr || shape_.numel() == 0;
  }
  const Shape& shape() const noexcept { return shape_; }
  DType dtype() const noexcept { return dtype_; }
  std::int64_t numel() const noexcept { return shape_.numel(); }
  std::size_t nbytes() const noexcept {
    return static_cast<std::size_t>(shape_.numel()) * dtype_size(dtype_);
  }
  // The one buffer; null for a stacked tensor.
  void* data() const noexcept { return data_; }
  // True when the parts along dimension 0 live at separate addresses (see above).
  bool stacked() const noexcept { return parts_ != nullptr; }
  // Addresses of the parts of a stacked tensor (empty when not stacked).
  std::span<void* const> parts() const noexcept;
  // Bytes of one part along dimension 0 (nbytes() / shape[0]; nbytes() for a scalar).
  std::size_t part_bytes() const noexcept;
  // Part i along dimension 0, for stacked and ordinary tensors alike.
  void* part(std::int64_t i) const noexcept;
  // The same values in one buffer: *this when it already is one, else a gathered copy.
  Tensor contiguous() const;
  // Typed access; throws porta::Error if T does not match the dtype.
  template <class T>
  T* data_as() const {
    check_element_type(dtype_of_v<T>);
    return static_cast<T*>(data_);
  }

  // Same memory, new shape with the same element count (one dimension may be -1).
  Tensor reshape(Shape shape) const;
  // Deep copy in the same dtype.
  Tensor clone() const;
  // Deep copy converted to `dtype`.
  Tensor to(DType dtype) const;
  // All elements widened to f32 (a copy).
  std::vector<float> to_f32() const;
  // Element `i` (flat, row-major) as f32.
  float at_f32(std::int64_t i) const;
  // "f32[2, 3]"
  std::string description() const;

 private:
  static Tensor allocate(Shape shape, DType dtype, bool zero_fill);
  void check_element_type(DType requested) const;

  struct Parts;
  std::shared_ptr<const void> owner_;
  std::shared_ptr<const Parts> parts_;  // stacked tensors only
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::F32;
};

}  // namespace porta
PORTA_API_END

// Shape: the dimensions of a tensor, outermost first (row-major, as safetensors and PyTorch lay
// them out). A rank-0 shape is a scalar with one element. Dimensions are non-negative; a zero
// dimension is a valid empty tensor (an MoE layer with T = 0 tokens, an expert with no rows).
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

PORTA_API_BEGIN
namespace porta {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const noexcept { return static_cast<int>(dims_.size()); }
  // Dimension `axis`; negative axes count from the end (-1 is the innermost).
  std::int64_t operator[](int axis) const {
    return dims_.at(static_cast<std::size_t>(normalize_axis(axis)));
  }
  std::int64_t& operator[](int axis) {
    return dims_.at(static_cast<std::size_t>(normalize_axis(axis)));
  }
  const std::vector<std::int64_t>& dims() const noexcept { return dims_; }
  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (auto d : dims_) n *= d;
    return n;
  }
  // Row-major strides in elements.
  std::vector<std::int64_t> strides() const;
  // Maps a possibly negative axis into [0, rank). Throws porta::Error when out of range.
  int normalize_axis(int axis) const;
  // "[2, 3, 4]"
  std::string to_string() const;

  friend bool operator==(const Shape&, const Shape&) = default;

 private:
  std::vector<std::int64_t> dims_;
};

}  // namespace porta
PORTA_API_END

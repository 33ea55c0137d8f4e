#include <porta/shape.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <porta/error.hpp>

namespace porta {

std::vector<std::int64_t> Shape::strides() const {
  std::vector<std::int64_t> result(dims_.size(), 1);
  for (int i = rank() - 2; i >= 0; --i)
    result[static_cast<std::size_t>(i)] =
        result[static_cast<std::size_t>(i) + 1] * dims_[static_cast<std::size_t>(i) + 1];
  return result;
}

int Shape::normalize_axis(int axis) const {
  const int r = rank();
  if (axis < -r || axis >= r)
    throw Error(
        ErrorCode::InvalidArgument,
        fmt::format("axis {} is out of range for a rank-{} shape {}", axis, r, to_string()));
  return axis < 0 ? axis + r : axis;
}

std::string Shape::to_string() const { return fmt::format("[{}]", fmt::join(dims_, ", ")); }

}  // namespace porta

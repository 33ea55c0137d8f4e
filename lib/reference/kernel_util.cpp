#include "reference/kernel_util.hpp"

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/ops.hpp>

namespace porta::detail::reference {

std::string node_label(const Node& n) { return fmt::format("{} '{}'", op_name(n.op), n.name); }

namespace {
std::size_t element_count(const TensorRef& t) {
  return static_cast<std::size_t>(t.shape().numel());
}

void* checked_host(const TensorRef& t) {
  if (element_count(t) == 0) return nullptr;
  void* p = t.host();
  if (p == nullptr)
    throw Error(ErrorCode::Internal,
                fmt::format("reference backend: value '{}' ({}{}) has no host memory", t.info->name,
                            dtype_name(t.dtype()), t.shape().to_string()));
  return p;
}
}  // namespace

const void* input_bytes(const TensorRef& t) { return checked_host(t); }
void* output_bytes(const TensorRef& t) { return checked_host(t); }

F32Input::F32Input(const TensorRef& t) : size_(element_count(t)) {
  if (size_ == 0) return;
  if (!t.parts.empty()) {  // a stacked weight: each part widened into its place
    widened_.resize(size_);
    const std::size_t per_part = size_ / t.parts.size();
    for (std::size_t i = 0; i < t.parts.size(); ++i)
      convert(t.parts[i], t.dtype(), widened_.data() + i * per_part, DType::F32, per_part);
    data_ = widened_.data();
    return;
  }
  const void* src = input_bytes(t);
  if (t.dtype() == DType::F32) {
    data_ = static_cast<const float*>(src);
    return;
  }
  widened_.resize(size_);
  convert(src, t.dtype(), widened_.data(), DType::F32, size_);
  data_ = widened_.data();
}

void store_f32(const TensorRef& out, std::span<const float> values) {
  if (values.size() != element_count(out))
    throw Error(ErrorCode::Internal,
                fmt::format("reference backend: {} results for output '{}' of {} elements",
                            values.size(), out.info->name, element_count(out)));
  if (values.empty()) return;
  convert(values.data(), DType::F32, output_bytes(out), out.dtype(), values.size());
}

std::vector<std::int64_t> load_i64(const TensorRef& t) {
  std::vector<std::int64_t> result(element_count(t));
  if (!result.empty()) convert(input_bytes(t), t.dtype(), result.data(), DType::I64, result.size());
  return result;
}

void store_i64(const TensorRef& out, std::span<const std::int64_t> values) {
  if (values.size() != element_count(out))
    throw Error(ErrorCode::Internal,
                fmt::format("reference backend: {} results for output '{}' of {} elements",
                            values.size(), out.info->name, element_count(out)));
  if (values.empty()) return;
  convert(values.data(), DType::I64, output_bytes(out), out.dtype(), values.size());
}

std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  const int offset = out.rank() - in.rank();
  const auto in_strides = in.strides();
  std::vector<std::int64_t> result(static_cast<std::size_t>(out.rank()), 0);
  for (int axis = 0; axis < in.rank(); ++axis) {
    const auto a = static_cast<std::size_t>(axis);
    if (in.dims()[a] != 1) result[static_cast<std::size_t>(axis + offset)] = in_strides[a];
  }
  return result;
}

BroadcastWalker::BroadcastWalker(const Shape& out, const std::vector<Shape>& inputs)
    : dims_(out.dims()), counter_(dims_.size(), 0), offsets_(inputs.size(), 0) {
  for (const auto& in : inputs) strides_.push_back(broadcast_strides(in, out));
}

void BroadcastWalker::next() noexcept {
  // Increment the innermost axis; on wrap-around rewind it and carry into the next one out.
  for (std::size_t axis = dims_.size(); axis-- > 0;) {
    ++counter_[axis];
    for (std::size_t k = 0; k < offsets_.size(); ++k) offsets_[k] += strides_[k][axis];
    if (counter_[axis] < dims_[axis]) return;
    for (std::size_t k = 0; k < offsets_.size(); ++k)
      offsets_[k] -= strides_[k][axis] * dims_[axis];
    counter_[axis] = 0;
  }
}

std::int64_t dims_product(const Shape& s, int begin, int end) {
  std::int64_t n = 1;
  for (int axis = begin; axis < end; ++axis) n *= s.dims()[static_cast<std::size_t>(axis)];
  return n;
}

void matmul_nt(const float* a, const float* b, std::int64_t m, std::int64_t k, std::int64_t n,
               float* out) {
  for (std::int64_t i = 0; i < m; ++i) {
    const float* a_row = a + i * k;
    for (std::int64_t j = 0; j < n; ++j) {
      const float* b_row = b + j * k;
      double sum = 0.0;
      for (std::int64_t p = 0; p < k; ++p) sum += static_cast<double>(a_row[p]) * b_row[p];
      out[i * n + j] = static_cast<float>(sum);
    }
  }
}

}  // namespace porta::detail::reference

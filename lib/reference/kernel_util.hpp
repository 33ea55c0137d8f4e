// Small helpers shared by the reference kernels: reading any dtype as f32, writing f32 results
// back rounded once into the output dtype, integer access, broadcasting and error labels.
//
// The reference kernels trade speed for clarity: every input is widened to f32 up front, the
// math runs in f32 with double accumulators, and each output is rounded once at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <porta/graph.hpp>

#include "runtime/backend.hpp"

namespace porta::detail::reference {

// "embedding 'tok_embed'": the op and the node, the prefix of every kernel error.
std::string node_label(const Node& n);

// Host memory of a value; throws Internal when a non-empty value has none (a runtime bug).
const void* input_bytes(const TensorRef& t);
void* output_bytes(const TensorRef& t);

// The elements of a value as f32: borrowed when the value already is f32 (large weights are
// not copied on every run), widened into an owned copy otherwise.
class F32Input {
 public:
  explicit F32Input(const TensorRef& t);
  F32Input(const F32Input&) = delete;
  F32Input& operator=(const F32Input&) = delete;

  const float* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  float operator[](std::size_t i) const noexcept { return data_[i]; }

 private:
  std::vector<float> widened_;
  const float* data_ = nullptr;
  std::size_t size_ = 0;
};

// Rounds `values` once into the output's dtype and writes them.
void store_f32(const TensorRef& out, std::span<const float> values);

// Integer values (ids, positions, cache lengths) read exactly as int64.
std::vector<std::int64_t> load_i64(const TensorRef& t);
// Writes int64 values into an integer output, saturating where they do not fit.
void store_i64(const TensorRef& out, std::span<const std::int64_t> values);

// Element strides of `in` as seen from `out` under NumPy broadcasting: `in` is right-aligned
// with `out`, and a dimension of size 1 (or a missing leading one) gets stride 0.
std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out);

// Walks the flat indices of `out`'s elements and yields, for each, the flat index into each
// broadcast input. Keeps a multi-index counter so that no division happens per element.
class BroadcastWalker {
 public:
  BroadcastWalker(const Shape& out, const std::vector<Shape>& inputs);
  // Flat index into input `k` for the current output element.
  std::int64_t index(std::size_t k) const noexcept { return offsets_[k]; }
  // Moves to the next output element (row-major).
  void next() noexcept;

 private:
  std::vector<std::int64_t> dims_;
  std::vector<std::int64_t> counter_;
  std::vector<std::vector<std::int64_t>> strides_;  // [input][axis]
  std::vector<std::int64_t> offsets_;
};

// Product of dims [begin, end) of a shape.
std::int64_t dims_product(const Shape& s, int begin, int end);

// out[m, n] = a[m, k] · b[n, k]ᵀ, row-major, double accumulators: each output is the dot product
// of two contiguous rows. The kernel of matmul with transpose_b, of grouped_matmul and of the MoE
// experts (weights in nn.Linear's out × in layout).
void matmul_nt(const float* a, const float* b, std::int64_t m, std::int64_t k, std::int64_t n,
               float* out);

}  // namespace porta::detail::reference

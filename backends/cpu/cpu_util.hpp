// Helpers every cpu kernel uses: oneDNN descriptions of porta values, honest-support checks,
// errors that name the node, element conversions (bf16 <-> f32) and the parallel loop.
//
// Kernels keep ValueIds, never pointers, because the runtime rebinds graph inputs on every run;
// run() reads this run's addresses from ctx.values, which is an indexed load and nothing more.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include <porta/dtype.hpp>
#include <porta/error.hpp>

#include "cpu_kernel.hpp"
#include "cpu_threads.hpp"

namespace porta::detail::cpu {

// ---- dtypes and descriptions --------------------------------------------------------------

// oneDNN's name for a porta dtype; nullopt for the dtypes oneDNN has no type for (i64, f8).
std::optional<dnnl::memory::data_type> dnnl_type(DType t);

// Shape dims as oneDNN dims, left-padded with 1s to `rank` (rank 0 becomes [1]).
dnnl::memory::dims padded_dims(const Shape& s, int rank);
// Row-major strides (in elements) for `dims`.
dnnl::memory::dims dense_strides(const dnnl::memory::dims& dims);
// A plain row-major description of `s`, padded to `rank` (at least 1).
dnnl::memory::desc plain_desc(const Shape& s, DType t, int rank = 0);
dnnl::memory::desc plain_desc(const Shape& s, dnnl::memory::data_type t, int rank = 0);

// ---- support checks ------------------------------------------------------------------------

bool is_f32_or_bf16(DType t);
// "f16 is not supported by the cpu backend (f32 and bf16 are)": the usual dtype refusal.
SupportResult float_dtype_refusal(DType t);
// yes() when every listed dtype is f32 or bf16, else the refusal for the first that is not.
SupportResult require_f32_bf16(std::initializer_list<DType> dtypes);

// ---- errors ---------------------------------------------------------------------------------

// A porta::Error (ErrorCode::Backend) naming the op, the node, its operand shapes and `what`.
[[noreturn]] void throw_node_error(const GraphState& g, const Node& n, const std::string& what,
                                   ErrorCode code = ErrorCode::Backend);

// ---- element conversion ---------------------------------------------------------------------

// Converts `count` elements between f32 and bf16 (round to nearest even, NaN stays NaN, exactly
// as porta::convert does), in parallel when the range is large.
void widen_bf16(const std::uint16_t* src, float* dst, std::size_t count);
void narrow_to_bf16(const float* src, std::uint16_t* dst, std::size_t count);
// f32 -> f32 copy, bf16 -> f32 widening, by dtype.
void load_f32(const void* src, DType t, float* dst, std::size_t count);
void store_f32(const float* src, DType t, void* dst, std::size_t count);

// A 64-byte-aligned f32 scratch buffer owned by a kernel, sized at lower() time.
class F32Scratch {
 public:
  F32Scratch() = default;
  explicit F32Scratch(std::size_t count);
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  std::size_t size() const { return count_; }

 private:
  struct Free {
    void operator()(float* p) const noexcept;
  };
  std::unique_ptr<float, Free> data_;
  std::size_t count_ = 0;
};

// ---- threads --------------------------------------------------------------------------------

// Runs body(begin, end) over [0, count) split in contiguous chunks across threads; serial when
// count is below `grain` elements of work per extra thread.
template <class F>
void parallel_for(std::int64_t count, std::int64_t grain, F&& body) {
  const std::int64_t max_threads = active_threads();
  std::int64_t threads = grain > 0 ? count / grain : max_threads;
  threads = std::clamp<std::int64_t>(threads, 1, max_threads);
  if (threads <= 1) {
    if (count > 0) body(std::int64_t{0}, count);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t t = 0; t < threads; ++t) {
    const std::int64_t begin = count * t / threads;
    const std::int64_t end = count * (t + 1) / threads;
    if (begin < end) body(begin, end);
  }
}

// ---- kernel helpers -------------------------------------------------------------------------

inline void* value_ptr(const ExecContext& ctx, ValueId id) { return ctx.values[id].host(); }

// A kernel that does nothing: reshape in place, a node fused into its producer's primitive.
class NoopKernel final : public CpuKernel {
 public:
  void run(const ExecContext&) override {}
};

// bf16 element storage as bits, and the f32 <-> bf16 scalar conversions in one place.
inline float bf16_to_f32(std::uint16_t b) { return bf16_bits_to_f32(b); }
inline std::uint16_t f32_to_bf16(float f) { return f32_to_bf16_bits(f); }

}  // namespace porta::detail::cpu

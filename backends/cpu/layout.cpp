// Data movement: reshape (a copy only when the runtime gave the output other memory), permute
// (a oneDNN reorder from a strided view of the input; 8-byte elements, which oneDNN has no type
// for, in a strided loop of our own), slice and concat (contiguous block copies).
#include <algorithm>
#include <cstring>

#include "cpu_util.hpp"
#include "dense_ops.hpp"
#include "primitive_call.hpp"

namespace porta::detail::cpu {

namespace {

class CopyKernel final : public CpuKernel {
 public:
  CopyKernel(ValueId in, ValueId out, std::size_t bytes) : in_(in), out_(out), bytes_(bytes) {}
  void run(const ExecContext& ctx) override {
    const void* src = value_ptr(ctx, in_);
    void* dst = value_ptr(ctx, out_);
    if (bytes_ > 0 && src != dst) std::memmove(dst, src, bytes_);
  }

 private:
  ValueId in_, out_;
  std::size_t bytes_;
};

// oneDNN data type of the same width, for moving bits unchanged.
std::optional<dnnl::memory::data_type> bits_type(DType t) {
  switch (dtype_size(t)) {
    case 1: return dnnl::memory::data_type::u8;
    case 2: return dnnl::memory::data_type::bf16;
    case 4: return dnnl::memory::data_type::s32;
    default: return std::nullopt;
  }
}

// The input seen through the output's axes: output axis i walks input axis perm[i].
void permuted_view(const Shape& in, const std::vector<int>& perm, dnnl::memory::dims& dims,
                   dnnl::memory::dims& strides) {
  const auto in_dims = padded_dims(in, in.rank());
  const auto in_strides = dense_strides(in_dims);
  dims.clear();
  strides.clear();
  for (int axis : perm) {
    dims.push_back(in_dims[static_cast<std::size_t>(axis)]);
    strides.push_back(in_strides[static_cast<std::size_t>(axis)]);
  }
  if (dims.empty()) {
    dims = {1};
    strides = {1};
  }
}

class ReorderKernel final : public CpuKernel {
 public:
  ReorderKernel(CpuEnv& env, const GraphState& g, const Node& n)
      : stream_(env.stream), in_(n.inputs[0]), out_(n.outputs[0]) {
    const ValueInfo& x = g.input_of(n, 0);
    const auto type = *bits_type(x.dtype);
    dnnl::memory::dims dims, strides;
    permuted_view(x.shape, std::get<PermuteAttrs>(n.attrs).perm, dims, strides);
    const dnnl::memory::desc src(dims, type, strides);
    const dnnl::memory::desc dst(dims, type, dense_strides(dims));
    const dnnl::reorder::primitive_desc pd(env.engine, src, env.engine, dst);
    call_ = PrimitiveCall(dnnl::reorder(pd));
    src_slot_ = call_.add(DNNL_ARG_FROM, src, env.engine);
    dst_slot_ = call_.add(DNNL_ARG_TO, dst, env.engine);
  }
  void run(const ExecContext& ctx) override {
    call_.bind(src_slot_, value_ptr(ctx, in_));
    call_.bind(dst_slot_, value_ptr(ctx, out_));
    call_.run(stream_);
  }

 private:
  dnnl::stream stream_;
  ValueId in_, out_;
  PrimitiveCall call_;
  int src_slot_ = -1, dst_slot_ = -1;
};

class StridedPermuteKernel final : public CpuKernel {
 public:
  StridedPermuteKernel(const GraphState& g, const Node& n)
      : in_(n.inputs[0]), out_(n.outputs[0]), element_(dtype_size(g.input_of(n, 0).dtype)) {
    permuted_view(g.input_of(n, 0).shape, std::get<PermuteAttrs>(n.attrs).perm, dims_, strides_);
    count_ = g.input_of(n, 0).shape.numel();
  }
  void run(const ExecContext& ctx) override {
    const auto* src = static_cast<const std::byte*>(value_ptr(ctx, in_));
    auto* dst = static_cast<std::byte*>(value_ptr(ctx, out_));
    const std::size_t rank = dims_.size();
    // Runs of the innermost dimension: one memcpy each when that dimension is contiguous.
    const std::int64_t inner = dims_.empty() ? 1 : dims_.back();
    const bool contiguous = !dims_.empty() && strides_.back() == 1;
    const std::int64_t runs = count_ / std::max<std::int64_t>(inner, 1);
    parallel_for(runs, std::max<std::int64_t>(1, (1 << 15) / std::max<std::int64_t>(inner, 1)),
                 [&](std::int64_t begin, std::int64_t end) {
                   for (std::int64_t run = begin; run < end; ++run) {
                     std::int64_t rest = run, offset = 0;
                     for (std::size_t d = rank - 1; d-- > 0;) {
                       offset += (rest % dims_[d]) * strides_[d];
                       rest /= dims_[d];
                     }
                     std::byte* to = dst + static_cast<std::size_t>(run * inner) * element_;
                     if (contiguous) {
                       std::memcpy(to, src + static_cast<std::size_t>(offset) * element_,
                                   static_cast<std::size_t>(inner) * element_);
                       continue;
                     }
                     for (std::int64_t i = 0; i < inner; ++i)
                       std::memcpy(
                           to + static_cast<std::size_t>(i) * element_,
                           src + static_cast<std::size_t>(offset + i * strides_.back()) * element_,
                           element_);
                   }
                 });
  }

 private:
  ValueId in_, out_;
  std::size_t element_;
  dnnl::memory::dims dims_, strides_;
  std::int64_t count_ = 0;
};

// Blocks of `inner` bytes: slice copies `length` blocks per outer index, `step` apart.
class SliceKernel final : public CpuKernel {
 public:
  SliceKernel(const GraphState& g, const Node& n) : in_(n.inputs[0]), out_(n.outputs[0]) {
    const auto& a = std::get<SliceAttrs>(n.attrs);
    const Shape& x = g.input_of(n, 0).shape;
    const int axis = x.normalize_axis(a.axis);
    dim_ = x[axis];
    start_ = std::clamp<std::int64_t>(a.start < 0 ? a.start + dim_ : a.start, 0, dim_);
    step_ = a.step;
    length_ = g.output_of(n, 0).shape[axis];
    outer_ = 1;
    for (int d = 0; d < axis; ++d) outer_ *= x[d];
    inner_ = dtype_size(g.input_of(n, 0).dtype);
    for (int d = axis + 1; d < x.rank(); ++d) inner_ *= static_cast<std::size_t>(x[d]);
  }
  void run(const ExecContext& ctx) override {
    const auto* src = static_cast<const std::byte*>(value_ptr(ctx, in_));
    auto* dst = static_cast<std::byte*>(value_ptr(ctx, out_));
    if (step_ == 1) {
      // One run of length_ blocks per outer index: a slice of the last axis (the MLA cache's
      // value part at every decode step) would otherwise be one memcpy per element.
      const std::size_t run = static_cast<std::size_t>(length_) * inner_;
      parallel_for(outer_,
                   std::max<std::int64_t>(1, (1 << 16) / static_cast<std::int64_t>(
                                                             std::max<std::size_t>(run, 1))),
                   [&](std::int64_t begin, std::int64_t end) {
                     for (std::int64_t o = begin; o < end; ++o)
                       std::memcpy(dst + static_cast<std::size_t>(o) * run,
                                   src + static_cast<std::size_t>(o * dim_ + start_) * inner_,
                                   run);
                   });
      return;
    }
    parallel_for(outer_ * length_,
                 std::max<std::int64_t>(
                     1, (1 << 16) / static_cast<std::int64_t>(std::max<std::size_t>(inner_, 1))),
                 [&](std::int64_t begin, std::int64_t end) {
                   for (std::int64_t b = begin; b < end; ++b) {
                     const std::int64_t o = b / length_, j = b % length_;
                     std::memcpy(
                         dst + static_cast<std::size_t>(b) * inner_,
                         src + static_cast<std::size_t>(o * dim_ + start_ + j * step_) * inner_,
                         inner_);
                   }
                 });
  }

 private:
  ValueId in_, out_;
  std::int64_t dim_ = 0, start_ = 0, step_ = 1, length_ = 0, outer_ = 1;
  std::size_t inner_ = 0;
};

class ConcatKernel final : public CpuKernel {
 public:
  ConcatKernel(const GraphState& g, const Node& n) : out_(n.outputs[0]) {
    const Shape& first = g.input_of(n, 0).shape;
    const int axis = first.normalize_axis(std::get<AxisAttrs>(n.attrs).axis);
    outer_ = 1;
    for (int d = 0; d < axis; ++d) outer_ *= first[d];
    std::size_t inner = dtype_size(g.input_of(n, 0).dtype);
    for (int d = axis + 1; d < first.rank(); ++d) inner *= static_cast<std::size_t>(first[d]);
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      inputs_.push_back(n.inputs[i]);
      block_.push_back(static_cast<std::size_t>(g.input_of(n, i).shape[axis]) * inner);
      out_block_ += block_.back();
    }
  }
  void run(const ExecContext& ctx) override {
    auto* dst = static_cast<std::byte*>(value_ptr(ctx, out_));
    std::size_t column = 0;
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
      const auto* src = static_cast<const std::byte*>(value_ptr(ctx, inputs_[i]));
      const std::size_t block = block_[i];
      if (block > 0)
        parallel_for(outer_,
                     std::max<std::int64_t>(1, (1 << 16) / static_cast<std::int64_t>(block)),
                     [&](std::int64_t begin, std::int64_t end) {
                       for (std::int64_t o = begin; o < end; ++o)
                         std::memcpy(dst + static_cast<std::size_t>(o) * out_block_ + column,
                                     src + static_cast<std::size_t>(o) * block, block);
                     });
      column += block;
    }
  }

 private:
  ValueId out_;
  std::vector<ValueId> inputs_;
  std::vector<std::size_t> block_;
  std::size_t out_block_ = 0;
  std::int64_t outer_ = 1;
};

}  // namespace

SupportResult supports_reshape(const GraphState&, const Node&) { return SupportResult::yes(); }

std::unique_ptr<CpuKernel> lower_reshape(CpuEnv&, const GraphState& g, const Node& n) {
  const ValueInfo& out = g.output_of(n, 0);
  return std::make_unique<CopyKernel>(
      n.inputs[0], n.outputs[0],
      static_cast<std::size_t>(out.shape.numel()) * dtype_size(out.dtype));
}

SupportResult supports_permute(const GraphState&, const Node&) { return SupportResult::yes(); }

std::unique_ptr<CpuKernel> lower_permute(CpuEnv& env, const GraphState& g, const Node& n) {
  if (g.input_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  // A small permute (decode's per-head transposes) is a few strided copies on one thread; a
  // oneDNN reorder runs them on every thread, a barrier per call.
  const ValueInfo& x = g.input_of(n, 0);
  const bool small = static_cast<std::uint64_t>(x.shape.numel()) * dtype_size(x.dtype) <= 64 * 1024;
  if (bits_type(x.dtype) && !small) return std::make_unique<ReorderKernel>(env, g, n);
  return std::make_unique<StridedPermuteKernel>(g, n);
}

SupportResult supports_slice(const GraphState&, const Node&) { return SupportResult::yes(); }

std::unique_ptr<CpuKernel> lower_slice(CpuEnv&, const GraphState& g, const Node& n) {
  if (g.output_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<SliceKernel>(g, n);
}

SupportResult supports_concat(const GraphState&, const Node&) { return SupportResult::yes(); }

std::unique_ptr<CpuKernel> lower_concat(CpuEnv&, const GraphState& g, const Node& n) {
  if (g.output_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<ConcatKernel>(g, n);
}

}  // namespace porta::detail::cpu

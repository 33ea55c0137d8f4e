// cast: f32 <-> bf16 in vectorised loops of our own, every other pair through porta::convert in
// parallel chunks. Not a oneDNN reorder: porta's casts are bit-exact across backends (round to
// nearest even, NaN stays a quiet NaN, float -> integer rounds and saturates, NaN -> 0), rules
// a reorder does not promise for NaN and saturation.
#include <cstring>

#include "cpu_util.hpp"
#include "dense_ops.hpp"

namespace porta::detail::cpu {

namespace {

class CastKernel final : public CpuKernel {
 public:
  CastKernel(const GraphState& g, const Node& n)
      : in_(n.inputs[0]),
        out_(n.outputs[0]),
        from_(g.input_of(n, 0).dtype),
        to_(g.output_of(n, 0).dtype),
        count_(g.input_of(n, 0).shape.numel()) {}

  void run(const ExecContext& ctx) override {
    const void* src = value_ptr(ctx, in_);
    void* dst = value_ptr(ctx, out_);
    const auto n = static_cast<std::size_t>(count_);
    if (from_ == to_) {
      if (src != dst) std::memmove(dst, src, n * dtype_size(from_));
    } else if (from_ == DType::F32 && to_ == DType::BF16) {
      narrow_to_bf16(static_cast<const float*>(src), static_cast<std::uint16_t*>(dst), n);
    } else if (from_ == DType::BF16 && to_ == DType::F32) {
      widen_bf16(static_cast<const std::uint16_t*>(src), static_cast<float*>(dst), n);
    } else {
      const std::size_t in_size = dtype_size(from_), out_size = dtype_size(to_);
      parallel_for(count_, 1 << 15, [&](std::int64_t begin, std::int64_t end) {
        convert(static_cast<const std::byte*>(src) + static_cast<std::size_t>(begin) * in_size,
                from_, static_cast<std::byte*>(dst) + static_cast<std::size_t>(begin) * out_size,
                to_, static_cast<std::size_t>(end - begin));
      });
    }
  }

 private:
  ValueId in_, out_;
  DType from_, to_;
  std::int64_t count_;
};

}  // namespace

SupportResult supports_cast(const GraphState&, const Node&) { return SupportResult::yes(); }

std::unique_ptr<CpuKernel> lower_cast(CpuEnv&, const GraphState& g, const Node& n) {
  if (g.input_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<CastKernel>(g, n);
}

}  // namespace porta::detail::cpu

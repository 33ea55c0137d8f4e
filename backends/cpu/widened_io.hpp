// bf16 operands of f32-only primitives and loops: where oneDNN has no bf16 kernel for this ISA
// (AVX2 has none for matmul, eltwise, softmax, layer norm), a kernel computes in f32 on widened
// copies held in scratch sized at compile time, and rounds a bf16 result once on the way out.
#pragma once

#include <cstddef>

#include "cpu_util.hpp"

namespace porta::detail::cpu {

// One value a kernel reads or writes as f32.
class F32Operand {
 public:
  F32Operand() = default;
  F32Operand(const GraphState& g, ValueId id)
      : id_(id),
        dtype_(g.value(id).dtype),
        count_(static_cast<std::size_t>(g.value(id).shape.numel())) {
    if (dtype_ != DType::F32) scratch_ = F32Scratch(count_);
  }
  // The value as f32 for reading: its own memory when it is f32, else a widened copy.
  const float* read(const ExecContext& ctx) {
    const void* p = value_ptr(ctx, id_);
    if (dtype_ == DType::F32) return static_cast<const float*>(p);
    load_f32(p, dtype_, scratch_.data(), count_);
    return scratch_.data();
  }
  // Widens only the first `count` elements (a KV cache's filled rows).
  const float* read_prefix(const ExecContext& ctx, std::size_t count) {
    const void* p = value_ptr(ctx, id_);
    if (dtype_ == DType::F32) return static_cast<const float*>(p);
    load_f32(p, dtype_, scratch_.data(), std::min(count, count_));
    return scratch_.data();
  }
  // Where to write the value as f32: its own memory when it is f32, else scratch for finish().
  float* write(const ExecContext& ctx) {
    if (dtype_ == DType::F32) return static_cast<float*>(value_ptr(ctx, id_));
    return scratch_.data();
  }
  // Rounds a written bf16 value into its memory.
  void finish(const ExecContext& ctx) {
    if (dtype_ != DType::F32) store_f32(scratch_.data(), dtype_, value_ptr(ctx, id_), count_);
  }
  std::size_t count() const { return count_; }
  ValueId id() const { return id_; }

 private:
  ValueId id_ = 0;
  DType dtype_ = DType::F32;
  std::size_t count_ = 0;
  F32Scratch scratch_;
};

}  // namespace porta::detail::cpu

// matmul: one oneDNN matmul primitive per node, created at compile time. Batch dimensions and
// transposes are expressed through memory strides (no copies); a constant b (a weight) is
// reordered once into the layout the primitive prefers (format_tag::any) and kept in the kernel.
//
// dtypes: where oneDNN has a bf16 matmul for this ISA (AVX512-BF16, AMX) bf16 x bf16 runs
// natively with f32 accumulation. Elsewhere (AVX2) every bf16 operand is widened to f32 (weights
// once at compile time, activations per run into kernel-owned scratch), the f32 primitive runs,
// and a bf16 result is rounded once on the way out. docs/cpu-backend.md explains the choice.
#include <cstring>

#include <fmt/format.h>

#include "cpu_util.hpp"
#include "matmul.hpp"
#include "primitive_call.hpp"

namespace porta::detail::cpu {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dims = dnnl::memory::dims;

struct Geometry {
  int rank = 2;
  dims a_dims, a_strides, b_dims, b_strides, out_dims;
  std::int64_t m = 0, k = 0, n = 0;
};

// a and b as oneDNN sees them, [..., M, K] and [..., K, N], over their stored (maybe transposed)
// memory: a transpose swaps the last two dims and their strides.
Geometry geometry(const GraphState& g, const Node& n) {
  const auto& attrs = std::get<MatmulAttrs>(n.attrs);
  Geometry geo;
  const Shape& out = g.output_of(n, 0).shape;
  geo.rank = out.rank();
  const auto operand = [&](const Shape& s, bool transposed, dims& d, dims& strides) {
    d = padded_dims(s, geo.rank);
    strides = dense_strides(d);
    if (transposed) {
      std::swap(d[d.size() - 1], d[d.size() - 2]);
      std::swap(strides[strides.size() - 1], strides[strides.size() - 2]);
    }
  };
  operand(g.input_of(n, 0).shape, attrs.transpose_a, geo.a_dims, geo.a_strides);
  operand(g.input_of(n, 1).shape, attrs.transpose_b, geo.b_dims, geo.b_strides);
  geo.out_dims = padded_dims(out, geo.rank);
  geo.m = geo.a_dims[geo.a_dims.size() - 2];
  geo.k = geo.a_dims.back();
  geo.n = geo.b_dims.back();
  return geo;
}

bool overlaps(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto* pa = static_cast<const char*>(a);
  const auto* pb = static_cast<const char*>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + b_bytes && pb < pa + a_bytes;
}

class MatmulKernel final : public CpuKernel {
 public:
  MatmulKernel(CpuEnv& env, const GraphState& g, const Node& n, const MatmulEpilogue* epilogue)
      : stream_(env.stream) {
    const ValueInfo& a_info = g.input_of(n, 0);
    const ValueInfo& b_info = g.input_of(n, 1);
    const ValueInfo& out_info = g.output_of(n, 0);
    a_ = n.inputs[0];
    b_ = n.inputs[1];
    product_ = n.outputs[0];
    out_ = epilogue ? epilogue->output : product_;
    const Geometry geo = geometry(g, n);
    const bool native = a_info.dtype == DType::BF16 && b_info.dtype == DType::BF16 &&
                        native_bf16_matmul(env.engine);
    const dt compute = native ? dt::bf16 : dt::f32;
    widen_a_ = a_info.dtype != DType::F32 && !native;
    widen_b_ = b_info.dtype != DType::F32 && !native;
    narrow_out_ = out_info.dtype != DType::F32 && !native;
    a_count_ = static_cast<std::size_t>(a_info.shape.numel());
    b_count_ = static_cast<std::size_t>(b_info.shape.numel());
    out_count_ = static_cast<std::size_t>(out_info.shape.numel());
    a_bytes_ = a_count_ * dtype_size(a_info.dtype);
    b_bytes_ = b_count_ * dtype_size(b_info.dtype);
    out_bytes_ = out_count_ * dtype_size(out_info.dtype);
    out_dtype_ = out_info.dtype;
    a_dtype_ = a_info.dtype;
    b_dtype_ = b_info.dtype;

    const dnnl::memory::desc a_md(geo.a_dims, compute, geo.a_strides);
    const dnnl::memory::desc b_user_md(geo.b_dims, compute, geo.b_strides);
    const dnnl::memory::desc out_md(geo.out_dims, compute, dense_strides(geo.out_dims));
    const bool constant_b = b_info.kind == ValueKind::Constant;

    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    std::vector<dnnl::memory::desc> operand_mds;
    if (epilogue != nullptr && !epilogue->ops.empty()) {
      dnnl::post_ops post;
      for (const MatmulPostOp& op : epilogue->ops) {
        if (op.binary) {
          const ValueInfo& v = g.value(op.operand);
          operand_mds.push_back(plain_desc(v.shape, v.dtype, geo.rank));
          post.append_binary(op.algorithm, operand_mds.back());
          operands_.push_back(op.operand);
          operand_bytes_.push_back(static_cast<std::size_t>(v.shape.numel()) * dtype_size(v.dtype));
        } else {
          post.append_eltwise(1.0f, op.algorithm, op.alpha, op.beta);
          operand_mds.emplace_back();
        }
      }
      attr.set_post_ops(post);
      fused_ = true;
    }
    // A constant weight is first offered in its stored layout (a view of the checkpoint mapping,
    // packed per call by the primitive); only where the ISA's kernel for that layout is oneDNN's
    // slow reference one is it described as `any` and reordered once (a copy, counted).
    auto make_pd = [&](const dnnl::memory::desc& b_md) {
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, out_md), attr,
                                          env.engine);
    };
    dnnl::matmul::primitive_desc pd;
    if (constant_b && !widen_b_) {
      try {
        pd = make_pd(b_user_md);
        if (std::string(pd.impl_info_str()).find("ref") != std::string::npos)
          pd = dnnl::matmul::primitive_desc();
      } catch (const dnnl::error&) {
        pd = dnnl::matmul::primitive_desc();
      }
    }
    if (!pd) pd = make_pd(constant_b ? dnnl::memory::desc(geo.b_dims, compute, tag::any) : b_user_md);
    call_ = PrimitiveCall(dnnl::matmul(pd));
    if (pd.scratchpad_desc().get_size() > 0) {
      scratchpad_ = dnnl::memory(pd.scratchpad_desc(), env.engine);
      call_.add(DNNL_ARG_SCRATCHPAD, pd.scratchpad_desc(), env.engine,
                scratchpad_.get_data_handle());
    }

    if (widen_a_) a_wide_ = F32Scratch(a_count_);
    if (narrow_out_) out_wide_ = F32Scratch(out_count_);
    slot_a_ = call_.add(DNNL_ARG_SRC, a_md, env.engine);
    slot_out_ = call_.add(DNNL_ARG_DST, out_md, env.engine);

    if (constant_b) {
      // The weight, in compute dtype and its stored layout, then reordered once if the primitive
      // prefers another layout.
      const void* user = b_info.constant.data();
      if (widen_b_) {
        b_wide_ = F32Scratch(b_count_);
        load_f32(user, b_info.dtype, b_wide_.data(), b_count_);
        user = b_wide_.data();
      }
      if (pd.weights_desc() == b_user_md) {
        weights_ptr_ = const_cast<void*>(user);
      } else {
        dnnl::memory src(b_user_md, env.engine, const_cast<void*>(user));
        weights_ = dnnl::memory(pd.weights_desc(), env.engine);
        dnnl::reorder(src, weights_).execute(env.stream, src, weights_);
        env.stream.wait();
        weights_ptr_ = weights_.get_data_handle();
        b_wide_ = F32Scratch();  // the reordered copy is all the kernel keeps
      }
      copy_bytes_ = weights_ ? pd.weights_desc().get_size() : widen_b_ ? b_count_ * 4 : 0;
      call_.add(DNNL_ARG_WEIGHTS, pd.weights_desc(), env.engine, weights_ptr_);
      slot_b_ = -1;
    } else {
      if (widen_b_) b_wide_ = F32Scratch(b_count_);
      slot_b_ = call_.add(DNNL_ARG_WEIGHTS, b_user_md, env.engine);
    }
    for (std::size_t i = 0, binary = 0; epilogue != nullptr && i < epilogue->ops.size(); ++i) {
      if (!epilogue->ops[i].binary) continue;
      operand_slots_.push_back(
          call_.add(DNNL_ARG_ATTR_MULTIPLE_POST_OP(static_cast<int>(i)) | DNNL_ARG_SRC_1,
                    operand_mds[i], env.engine));
      ++binary;
    }
  }

  void run(const ExecContext& ctx) override {
    const void* a = value_ptr(ctx, a_);
    void* out = value_ptr(ctx, out_);
    void* a_bound = const_cast<void*>(a);
    if (widen_a_) {
      load_f32(a, a_dtype_, a_wide_.data(), a_count_);
      a_bound = a_wide_.data();
    }
    call_.bind(slot_a_, a_bound);
    const void* b = slot_b_ >= 0 ? value_ptr(ctx, b_) : nullptr;
    if (slot_b_ >= 0) {
      void* b_bound = const_cast<void*>(b);
      if (widen_b_) {
        load_f32(b, b_dtype_, b_wide_.data(), b_count_);
        b_bound = b_wide_.data();
      }
      call_.bind(slot_b_, b_bound);
    }
    // A fused kernel runs in its last node's slot. The memory planner may have given that node's
    // output the bytes of an input whose life ended at the matmul; then the primitive writes the
    // matmul's own output (alive, so disjoint from every operand) and the result moves after.
    void* target = out;
    bool move_after = false;
    if (fused_) {
      bool clash = overlaps(out, out_bytes_, a, a_bytes_) ||
                   (b != nullptr && overlaps(out, out_bytes_, b, b_bytes_));
      for (std::size_t i = 0; i < operands_.size(); ++i) {
        const void* operand = value_ptr(ctx, operands_[i]);
        call_.bind(operand_slots_[i], const_cast<void*>(operand));
        clash = clash || overlaps(out, out_bytes_, operand, operand_bytes_[i]);
      }
      if (clash) {
        target = value_ptr(ctx, product_);
        move_after = true;
      }
    }
    call_.bind(slot_out_, narrow_out_ ? out_wide_.data() : target);
    call_.run(stream_);
    if (narrow_out_) store_f32(out_wide_.data(), out_dtype_, target, out_count_);
    if (move_after) std::memmove(out, target, out_bytes_);
  }

  std::uint64_t weight_copy_bytes() const override { return copy_bytes_; }

 private:
  std::uint64_t copy_bytes_ = 0;
  dnnl::stream stream_;
  PrimitiveCall call_;
  dnnl::memory scratchpad_;
  dnnl::memory weights_;
  void* weights_ptr_ = nullptr;
  ValueId a_ = 0, b_ = 0, product_ = 0, out_ = 0;
  DType a_dtype_ = DType::F32, b_dtype_ = DType::F32, out_dtype_ = DType::F32;
  bool widen_a_ = false, widen_b_ = false, narrow_out_ = false, fused_ = false;
  std::size_t a_count_ = 0, b_count_ = 0, out_count_ = 0;
  std::size_t a_bytes_ = 0, b_bytes_ = 0, out_bytes_ = 0;
  F32Scratch a_wide_, b_wide_, out_wide_;
  int slot_a_ = -1, slot_b_ = -1, slot_out_ = -1;
  std::vector<ValueId> operands_;
  std::vector<int> operand_slots_;
  std::vector<std::size_t> operand_bytes_;
};

// K = 0: every output element is an empty sum.
class ZeroFillKernel final : public CpuKernel {
 public:
  ZeroFillKernel(ValueId out, std::size_t bytes) : out_(out), bytes_(bytes) {}
  void run(const ExecContext& ctx) override {
    if (bytes_ > 0) std::memset(value_ptr(ctx, out_), 0, bytes_);
  }

 private:
  ValueId out_;
  std::size_t bytes_;
};

}  // namespace

bool native_bf16_matmul(const dnnl::engine& engine) {
  static const bool available = [&] {
    try {
      const dnnl::memory::desc a({16, 16}, dt::bf16, tag::ab), c({16, 16}, dt::bf16, tag::ab);
      const dnnl::memory::desc b({16, 16}, dt::bf16, tag::any);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine);
      return std::string_view(pd.impl_info_str()).rfind("ref", 0) != 0;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return available;
}

SupportResult supports_matmul(const GraphState& g, const Node& n) {
  if (g.input_of(n, 1).dtype == DType::F16) {
    static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    if (use_weight_rows_matmul(engine, g, n)) return SupportResult::yes();
    return SupportResult::no(
        "an f16 matmul operand other than a constant [N, K] weight (f16 weights are read by "
        "porta's own row kernels; oneDNN has no f16 matmul here)");
  }
  return require_f32_bf16({g.input_of(n, 0).dtype, g.input_of(n, 1).dtype});
}

bool matmul_accepts_post_ops(const GraphState& g, const Node& n) {
  const Geometry geo = geometry(g, n);
  if (geo.k == 0 || g.output_of(n, 0).shape.numel() == 0) return false;
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  if (use_weight_rows_matmul(engine, g, n)) return false;
  const DType a = g.input_of(n, 0).dtype;
  if (a == DType::F32) return true;
  return a == DType::BF16 && g.input_of(n, 1).dtype == DType::BF16 && native_bf16_matmul(engine);
}

std::unique_ptr<CpuKernel> lower_fused_matmul(CpuEnv& env, const GraphState& g, const Node& n,
                                              const MatmulEpilogue& epilogue) {
  return std::make_unique<MatmulKernel>(env, g, n, &epilogue);
}

std::unique_ptr<CpuKernel> lower_matmul(CpuEnv& env, const GraphState& g, const Node& n) {
  const ValueInfo& out = g.output_of(n, 0);
  if (out.shape.numel() == 0) return std::make_unique<NoopKernel>();
  if (geometry(g, n).k == 0)
    return std::make_unique<ZeroFillKernel>(
        n.outputs[0], static_cast<std::size_t>(out.shape.numel()) * dtype_size(out.dtype));
  if (use_weight_rows_matmul(env.engine, g, n)) return lower_weight_rows_matmul(env, g, n);
  return std::make_unique<MatmulKernel>(env, g, n, nullptr);
}

}  // namespace porta::detail::cpu

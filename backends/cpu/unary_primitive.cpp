#include "unary_primitive.hpp"

#include "primitive_call.hpp"
#include "widened_io.hpp"

namespace porta::detail::cpu {

namespace {

class UnaryPrimitiveKernel final : public CpuKernel {
 public:
  UnaryPrimitiveKernel(CpuEnv& env, const GraphState& g, const Node& n,
                       const UnaryPrimitiveFactory& factory)
      : stream_(env.stream), in_(n.inputs[0]), out_(n.outputs[0]) {
    const ValueInfo& x = g.input_of(n, 0);
    dnnl::primitive_desc pd;
    bool native = x.dtype == DType::F32;
    if (!native) {
      try {
        pd = factory(plain_desc(x.shape, x.dtype), env.engine);
        native = true;
      } catch (const dnnl::error&) {
        native = false;  // no kernel for this dtype here: compute in f32
      }
    }
    if (!pd) pd = factory(plain_desc(x.shape, DType::F32), env.engine);
    widened_ = !native;
    if (widened_) {
      src_ = F32Operand(g, n.inputs[0]);
      dst_ = F32Operand(g, n.outputs[0]);
    }
    call_ = PrimitiveCall(dnnl::primitive(pd.get()));
    if (pd.scratchpad_desc().get_size() > 0) {
      scratchpad_ = dnnl::memory(pd.scratchpad_desc(), env.engine);
      call_.add(DNNL_ARG_SCRATCHPAD, pd.scratchpad_desc(), env.engine,
                scratchpad_.get_data_handle());
    }
    src_slot_ = call_.add(DNNL_ARG_SRC, pd.src_desc(), env.engine);
    dst_slot_ = call_.add(DNNL_ARG_DST, pd.dst_desc(), env.engine);
  }

  void run(const ExecContext& ctx) override {
    if (widened_) {
      call_.bind(src_slot_, const_cast<float*>(src_.read(ctx)));
      call_.bind(dst_slot_, dst_.write(ctx));
      call_.run(stream_);
      dst_.finish(ctx);
      return;
    }
    call_.bind(src_slot_, value_ptr(ctx, in_));
    call_.bind(dst_slot_, value_ptr(ctx, out_));
    call_.run(stream_);
  }

 private:
  dnnl::stream stream_;
  ValueId in_, out_;
  bool widened_ = false;
  F32Operand src_, dst_;
  PrimitiveCall call_;
  dnnl::memory scratchpad_;
  int src_slot_ = -1, dst_slot_ = -1;
};

}  // namespace

std::unique_ptr<CpuKernel> lower_unary_primitive(CpuEnv& env, const GraphState& g, const Node& n,
                                                 const UnaryPrimitiveFactory& factory) {
  if (g.input_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<UnaryPrimitiveKernel>(env, g, n, factory);
}

}  // namespace porta::detail::cpu

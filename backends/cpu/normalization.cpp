// softmax (any axis) and layer_norm on oneDNN's primitives; rms_norm, which oneDNN 2.6 lacks, in
// a vectorised loop of our own (sum of squares in f32 lanes, one pass to scale).
#include <cmath>

#include "cpu_util.hpp"
#include "dense_ops.hpp"
#include "primitive_call.hpp"
#include "unary_primitive.hpp"
#include "widened_io.hpp"

namespace porta::detail::cpu {

namespace {

class LayerNormKernel final : public CpuKernel {
 public:
  LayerNormKernel(CpuEnv& env, const GraphState& g, const Node& n)
      : stream_(env.stream),
        x_(g, n.inputs[0]),
        y_(g, n.outputs[0]),
        scale_(g, n.inputs[1]),
        has_shift_(n.inputs.size() > 2) {
    if (has_shift_) shift_ = F32Operand(g, n.inputs[2]);
    const ValueInfo& x = g.input_of(n, 0);
    const float eps = std::get<NormAttrs>(n.attrs).eps;
    const auto flags =
        has_shift_ ? dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift
                   : dnnl::normalization_flags::use_scale;
    const dnnl::layer_normalization_forward::primitive_desc pd(
        dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference,
                                                plain_desc(x.shape, DType::F32), eps, flags),
        env.engine);
    call_ = PrimitiveCall(dnnl::layer_normalization_forward(pd));
    if (pd.scratchpad_desc().get_size() > 0) {
      scratchpad_ = dnnl::memory(pd.scratchpad_desc(), env.engine);
      call_.add(DNNL_ARG_SCRATCHPAD, pd.scratchpad_desc(), env.engine,
                scratchpad_.get_data_handle());
    }
    // Inference computes the statistics itself; a build that still wants them gets scratch.
    for (int arg : {DNNL_ARG_MEAN, DNNL_ARG_VARIANCE}) {
      const auto md = arg == DNNL_ARG_MEAN ? pd.mean_desc() : pd.variance_desc();
      if (md.get_size() > 0) {
        stats_.emplace_back(md, env.engine);
        call_.add(arg, md, env.engine, stats_.back().get_data_handle());
      }
    }
    src_slot_ = call_.add(DNNL_ARG_SRC, pd.src_desc(), env.engine);
    dst_slot_ = call_.add(DNNL_ARG_DST, pd.dst_desc(), env.engine);
    const dnnl::memory::desc channel({x.shape[-1]}, dnnl::memory::data_type::f32,
                                     dnnl::memory::format_tag::a);
    scale_slot_ = call_.add(DNNL_ARG_SCALE, channel, env.engine);
    if (has_shift_) shift_slot_ = call_.add(DNNL_ARG_SHIFT, channel, env.engine);
  }

  void run(const ExecContext& ctx) override {
    call_.bind(src_slot_, const_cast<float*>(x_.read(ctx)));
    call_.bind(dst_slot_, y_.write(ctx));
    call_.bind(scale_slot_, const_cast<float*>(scale_.read(ctx)));
    if (has_shift_) call_.bind(shift_slot_, const_cast<float*>(shift_.read(ctx)));
    call_.run(stream_);
    y_.finish(ctx);
  }

 private:
  dnnl::stream stream_;
  F32Operand x_, y_, scale_, shift_;
  bool has_shift_;
  PrimitiveCall call_;
  dnnl::memory scratchpad_;
  std::vector<dnnl::memory> stats_;
  int src_slot_ = -1, dst_slot_ = -1, scale_slot_ = -1, shift_slot_ = -1;
};

class RmsNormKernel final : public CpuKernel {
 public:
  RmsNormKernel(const GraphState& g, const Node& n)
      : x_(g, n.inputs[0]),
        weight_(g, n.inputs[1]),
        y_(g, n.outputs[0]),
        hidden_(g.input_of(n, 0).shape[-1]),
        eps_(std::get<NormAttrs>(n.attrs).eps) {}

  void run(const ExecContext& ctx) override {
    const float* x = x_.read(ctx);
    const float* w = weight_.read(ctx);
    float* y = y_.write(ctx);
    const std::int64_t h = hidden_;
    const std::int64_t rows = h == 0 ? 0 : static_cast<std::int64_t>(x_.count()) / h;
    parallel_for(rows, std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(h, 1)),
                 [&](std::int64_t begin, std::int64_t end) {
                   for (std::int64_t r = begin; r < end; ++r) {
                     const float* row = x + r * h;
                     float* out = y + r * h;
                     float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                     for (std::int64_t i = 0; i < h; ++i) sum += row[i] * row[i];
                     const float inv = static_cast<float>(
                         1.0 / std::sqrt(static_cast<double>(sum) / static_cast<double>(h) +
                                         static_cast<double>(eps_)));
#pragma omp simd
                     for (std::int64_t i = 0; i < h; ++i) out[i] = row[i] * inv * w[i];
                   }
                 });
    y_.finish(ctx);
  }

 private:
  F32Operand x_, weight_, y_;
  std::int64_t hidden_;
  float eps_;
};

}  // namespace

SupportResult supports_softmax(const GraphState& g, const Node& n) {
  return require_f32_bf16({g.input_of(n, 0).dtype});
}

std::unique_ptr<CpuKernel> lower_softmax(CpuEnv& env, const GraphState& g, const Node& n) {
  const Shape& shape = g.input_of(n, 0).shape;
  const int axis = shape.normalize_axis(std::get<AxisAttrs>(n.attrs).axis);
  return lower_unary_primitive(
      env, g, n, [axis](const dnnl::memory::desc& md, const dnnl::engine& engine) {
        return dnnl::softmax_forward::primitive_desc(
            dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, md, axis), engine);
      });
}

SupportResult supports_layer_norm(const GraphState& g, const Node& n) {
  for (std::size_t i = 0; i < n.inputs.size(); ++i)
    if (!is_f32_or_bf16(g.input_of(n, i).dtype)) return float_dtype_refusal(g.input_of(n, i).dtype);
  return SupportResult::yes();
}

std::unique_ptr<CpuKernel> lower_layer_norm(CpuEnv& env, const GraphState& g, const Node& n) {
  if (g.input_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<LayerNormKernel>(env, g, n);
}

SupportResult supports_rms_norm(const GraphState& g, const Node& n) {
  return require_f32_bf16({g.input_of(n, 0).dtype, g.input_of(n, 1).dtype});
}

std::unique_ptr<CpuKernel> lower_rms_norm(CpuEnv&, const GraphState& g, const Node& n) {
  if (g.input_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<RmsNormKernel>(g, n);
}

}  // namespace porta::detail::cpu

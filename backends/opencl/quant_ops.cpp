// The quantized ops on OpenCL (kernels/quant_gemm.cl, docs/quantization.md): quant_matmul and
// quant_grouped_matmul as one ragged GEMM that dequantizes the weight inside the kernel (int8 per
// channel or group, int4 nibbles with zero points, f8 e4m3 blocks; f32 accumulation), or under
// W8A8 quantizes the activations per token (or per tensor) first and sums int8 products exactly
// in integers; quant_moe_experts as its composition permute → gate, up → swiglu → down → combine
// on f32 scratch, rounded once.
#include <fmt/format.h>

#include "opencl_lowering.hpp"
#include "quant/quant_refs.hpp"

namespace porta::detail::opencl {

namespace {

constexpr std::size_t kQuantizeLocal = 64;  // a power of two: group_max's tree
constexpr std::size_t kColumnsPerItem = 4;  // QG_COLS in kernels/quant_gemm.cl

cl_int format_code(QuantFormat f) {
  switch (f) {
    case QuantFormat::Int8: return 0;
    case QuantFormat::Int4: return 1;
    case QuantFormat::F8E4M3: return 2;
    case QuantFormat::GgmlBlocks: return -1;  // refused by quant_supports
  }
  return 0;
}

// One quantized linear over P rows of K features into N outputs, per expert block of `offsets`.
struct QuantGemm {
  QuantAttrs attrs;
  cl_long P = 0, K = 0, N = 0, E = 1;
  Kernel gemm, quantize, zero_rows;
  const ClBuffer* codes = nullptr;   // W8A8: the activations' int8 codes [P, K]
  const ClBuffer* scales = nullptr;  // W8A8: their scales [P]

  bool w8a8() const { return attrs.activation != ActivationQuant::None; }
  cl_long group() const { return attrs.scheme.group_k <= 0 ? K : attrs.scheme.group_k; }
};

QuantGemm make_quant_gemm(Device& device, LoweredOp& op, const QuantAttrs& attrs, cl_long P,
                          cl_long K, cl_long N, cl_long E) {
  QuantGemm q;
  q.attrs = attrs;
  q.P = P;
  q.K = K;
  q.N = N;
  q.E = E;
  q.zero_rows = device.kernel("grouped_zero_rows");
  if (!q.w8a8()) {
    q.gemm = device.kernel("quant_gemm");
    return q;
  }
  q.gemm = device.kernel("quant_gemm_i8");
  q.quantize = device.kernel(attrs.activation == ActivationQuant::DynamicInt8
                                 ? "quantize_per_token"
                                 : "quantize_static");
  op.buffers.push_back(
      allocate_buffer(device, static_cast<std::size_t>(std::max<cl_long>(P * K, 1))));
  q.codes = op.buffers.back().get();
  op.buffers.push_back(allocate_buffer(
      device, static_cast<std::size_t>(std::max<cl_long>(P, 1)) * sizeof(float)));
  q.scales = op.buffers.back().get();
  return q;
}

// The weight's three inputs (zero: the scale again when symmetric, never read).
struct WeightArgs {
  DeviceArg data, scale, zero;
};

WeightArgs weight_args(const Bindings& b, const Node& n, int which) {
  const QuantInputs in = quant_inputs(n, which);
  const DeviceArg scale = b.at(n.inputs[in.scale]);
  return {b.at(n.inputs[in.data]), scale, in.zero ? b.at(n.inputs[*in.zero]) : scale};
}

void enqueue_quant_gemm(const QuantGemm& q, Enqueuer& queue, DeviceArg x, DType x_dtype,
                        const WeightArgs& w, DeviceArg offsets, DeviceArg out, DType out_dtype) {
  if (q.P == 0 || q.N == 0) return;
  const cl_int od = dtype_code(out_dtype);
  set_args(q.zero_rows.get(), offsets, out, od, q.P, q.N, q.E);
  queue.launch(q.zero_rows.get(), {static_cast<std::size_t>(q.P)}, {64}, "grouped_zero_rows");
  const QuantScheme& s = q.attrs.scheme;
  const cl_int sd = dtype_code(s.scale_dtype), has_zero = s.zero_point ? 1 : 0;
  const cl_long block_n = s.block_n, group = q.group();
  const std::vector<std::size_t> global{ceil_div(static_cast<std::size_t>(q.N), kColumnsPerItem),
                                        static_cast<std::size_t>(q.P)};
  if (!q.w8a8()) {
    set_args(q.gemm.get(), x, dtype_code(x_dtype), w.data, w.scale, sd, w.zero, has_zero,
             offsets, out, od, q.P, q.K, q.N, q.E, format_code(s.format), group, block_n);
    queue.launch(q.gemm.get(), global, {16, 1}, "quant_gemm");
    return;
  }
  if (q.attrs.activation == ActivationQuant::DynamicInt8) {
    set_args(q.quantize.get(), x, dtype_code(x_dtype), q.codes->mem(), q.scales->mem(), q.K,
             LocalBytes{kQuantizeLocal * sizeof(float)});
    queue.launch(q.quantize.get(), {static_cast<std::size_t>(q.P) * kQuantizeLocal},
                 {kQuantizeLocal}, "quantize_per_token");
  } else {
    set_args(q.quantize.get(), x, dtype_code(x_dtype), q.codes->mem(), q.scales->mem(), q.P, q.K,
             q.attrs.act_scale, q.attrs.act_offset);
    queue.launch(q.quantize.get(), {static_cast<std::size_t>(q.P * q.K)}, {64},
                 "quantize_static");
  }
  const cl_int x_offset_code =
      q.attrs.activation == ActivationQuant::StaticInt8 ? static_cast<cl_int>(q.attrs.act_offset)
                                                        : 0;
  set_args(q.gemm.get(), q.codes->mem(), q.scales->mem(), x_offset_code, w.data, w.scale, sd,
           w.zero, has_zero, offsets, out, od, q.P, q.K, q.N, q.E, group, block_n);
  queue.launch(q.gemm.get(), global, {16, 1}, "quant_gemm_i8");
}

const ClBuffer* f32_scratch(Device& device, LoweredOp& op, cl_long count) {
  op.buffers.push_back(allocate_buffer(
      device, static_cast<std::size_t>(std::max<cl_long>(count, 1)) * sizeof(float)));
  return op.buffers.back().get();
}

void quant_experts_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const auto& attrs = std::get<QuantAttrs>(n.attrs);
  const ValueInfo& x = g.input_of(n, 0);
  const cl_long T = x.shape[0], H = x.shape[1], K = g.input_of(n, 1).shape[1];
  const ValueInfo& gate_w = g.input_of(n, 5);
  const cl_long E = gate_w.shape[0], I = gate_w.shape[1];
  const cl_long P = g.input_of(n, 3).shape.numel();
  op.buffers.push_back(allocate_buffer(
      device, static_cast<std::size_t>(std::max<cl_long>(P * H, 1)) * dtype_size(x.dtype)));
  const ClBuffer* xp = op.buffers.back().get();
  const ClBuffer* gate = f32_scratch(device, op, P * I);
  const ClBuffer* up = f32_scratch(device, op, P * I);
  const ClBuffer* act = f32_scratch(device, op, P * I);
  const ClBuffer* down = f32_scratch(device, op, P * H);
  auto gemms = std::make_shared<std::vector<QuantGemm>>();
  gemms->push_back(make_quant_gemm(device, op, attrs, P, H, I, E));
  gemms->push_back(make_quant_gemm(device, op, attrs, P, H, I, E));
  gemms->push_back(make_quant_gemm(device, op, attrs, P, I, H, E));
  op.kernels.push_back(device.kernel("moe_permute_rows"));
  const cl_kernel permute = op.kernels.back().get();
  // With fp64 the SwiGLU is the reference's to the bit, and W8A8 then matches it exactly.
  const bool f64_swiglu = device.has_fp64();
  op.kernels.push_back(device.kernel(f64_swiglu ? "swiglu_f64" : "swiglu"));
  const cl_kernel swiglu = op.kernels.back().get();
  op.kernels.push_back(device.kernel("moe_combine_rows"));
  const cl_kernel combine = op.kernels.back().get();
  const cl_int element = static_cast<cl_int>(dtype_size(x.dtype));
  const cl_int f32 = dtype_code(DType::F32), out_dtype = dtype_code(g.output_of(n, 0).dtype);
  const std::string where = label(n);
  const IndexCheckLaunch check_offsets = add_offsets_check(device, op, where, E + 1, P);
  const IndexCheckLaunch check_perm = add_perm_check(device, op, where, P);
  const IndexCheckLaunch check_inv = add_inv_check(device, op, where, T * K, P);
  const DType xt = x.dtype;
  const Node node = n;
  op.implementation = fmt::format("porta quant_gemm{} (gate, up, down)",
                                  gemms->front().w8a8() ? "_i8" : "");
  op.run = [=](const Bindings& b, Enqueuer& q) {
    const auto& gm = *gemms;
    const std::vector<ValueId>& in = node.inputs;
    check_offsets.enqueue(b, q, b.at(in[2]));
    check_perm.enqueue(b, q, b.at(in[3]));
    check_inv.enqueue(b, q, b.at(in[4]));
    set_args(permute, b.at(in[0]), element, b.at(in[3]), b.of(*xp), P, H, T * K, K);
    q.launch(permute, {static_cast<std::size_t>(P * H)}, {64}, "moe_permute_rows");
    const DeviceArg offsets = b.at(in[2]);
    enqueue_quant_gemm(gm[0], q, b.of(*xp), xt, weight_args(b, node, 0), offsets, b.of(*gate),
                       DType::F32);
    enqueue_quant_gemm(gm[1], q, b.of(*xp), xt, weight_args(b, node, 1), offsets, b.of(*up),
                       DType::F32);
    if (f64_swiglu)
      set_args(swiglu, gate->mem(), up->mem(), act->mem(), P * I);
    else
      set_args(swiglu, b.of(*gate), b.of(*up), f32, b.of(*act), P * I);
    q.launch(swiglu, {static_cast<std::size_t>(P * I)}, {64}, "swiglu");
    enqueue_quant_gemm(gm[2], q, b.of(*act), DType::F32, weight_args(b, node, 2), offsets,
                       b.of(*down), DType::F32);
    set_args(combine, b.of(*down), f32, out_dtype, b.at(in[1]), b.at(in[4]), b.at(node.outputs[0]),
             T, K, H, P);
    q.launch(combine, {static_cast<std::size_t>(T * H)}, {64}, "moe_combine_rows");
  };
}

}  // namespace

SupportResult quant_supports(const Device& device, const GraphState& g, const Node& n) {
  const auto* attrs = std::get_if<QuantAttrs>(&n.attrs);
  if (attrs == nullptr) return SupportResult::no(fmt::format("{} without QuantAttrs", label(n)));
  if (auto r = need_float_storage(g, n, 0, 1); !r.supported) return r;
  if (attrs->scheme.format == QuantFormat::GgmlBlocks)
    return SupportResult::no(fmt::format(
        "{}: {} weights: the OpenCL kernels have no ggml block decoder (the node runs on the "
        "fallback backend)",
        label(n), describe(attrs->scheme)));
  if (attrs->activation != ActivationQuant::None && !device.exact_division())
    return SupportResult::no(fmt::format(
        "{}: W8A8 quantizes activations with a true f32 division, and the device has no "
        "correctly rounded single-precision divide",
        label(n)));
  if (n.op == OpKind::QuantGroupedMatmul && g.input_of(n, 1).dtype != DType::I32)
    return SupportResult::no(fmt::format("{}: offsets must be i32", label(n)));
  if (n.op == OpKind::QuantMoeExperts &&
      (g.input_of(n, 1).dtype != DType::F32 || g.input_of(n, 2).dtype != DType::I32 ||
       g.input_of(n, 3).dtype != DType::I32 || g.input_of(n, 4).dtype != DType::I32))
    return SupportResult::no(
        fmt::format("{}: weights must be f32, offsets, perm and inv i32", label(n)));
  return SupportResult::yes();
}

void quant_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  if (n.op == OpKind::QuantMoeExperts) return quant_experts_lower(device, g, n, op);
  const auto& attrs = std::get<QuantAttrs>(n.attrs);
  const ValueInfo& x = g.input_of(n, 0);
  const cl_long K = x.shape[-1];
  const bool grouped = n.op == OpKind::QuantGroupedMatmul;
  const ValueInfo& data = g.input_of(n, grouped ? 2 : 1);
  const cl_long P = K == 0 ? 0 : x.shape.numel() / K;
  const cl_long E = grouped ? data.shape[0] : 1, N = data.shape[grouped ? 1 : 0];
  auto gemm = std::make_shared<QuantGemm>(make_quant_gemm(device, op, attrs, P, K, N, E));
  op.implementation = fmt::format("porta quant_gemm{}", gemm->w8a8() ? "_i8" : "");
  const ClBuffer* all_rows = nullptr;  // quant_matmul: offsets {0, P}, one expert
  std::optional<IndexCheckLaunch> check;
  if (grouped) {
    check = add_offsets_check(device, op, label(n), E + 1, P);
  } else {
    const std::int32_t span[2] = {0, static_cast<std::int32_t>(P)};
    op.buffers.push_back(upload_buffer(device, span, sizeof(span)));
    all_rows = op.buffers.back().get();
  }
  const DType xt = x.dtype, yt = g.output_of(n, 0).dtype;
  const Node node = n;
  op.run = [=](const Bindings& b, Enqueuer& q) {
    const DeviceArg offsets = grouped ? b.at(node.inputs[1]) : b.of(*all_rows);
    if (check) check->enqueue(b, q, offsets);
    enqueue_quant_gemm(*gemm, q, b.at(node.inputs[0]), xt, weight_args(b, node, 0), offsets,
                       b.at(node.outputs[0]), yt);
  };
}

}  // namespace porta::detail::opencl

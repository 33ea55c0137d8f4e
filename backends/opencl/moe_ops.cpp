// Lowerings of the MoE ops: the router (kernels/moe_router.cl), moe_permute and moe_combine
// (kernels/moe.cl) and the ragged grouped expert GEMM (grouped_gemm_ops.cpp). Routing tables
// stay on the device from the router to the combine: nothing about the routing is read back.
#include <cmath>

#include <fmt/format.h>

#include <porta/moe.hpp>
#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

SupportResult router_supports(const Device& device, const GraphState& g, const Node& n) {
  const auto* a = std::get_if<moe::RouterAttrs>(&n.attrs);
  if (a == nullptr) return SupportResult::no("moe_router node without RouterAttrs");
  if (a->mode != moe::Mode::TokenChoice)
    return SupportResult::no(fmt::format("{}: mode {} has no opencl kernel (token_choice only)",
                                         label(n), moe::to_string(a->mode)));
  if (!device.has_fp64())
    return SupportResult::no(fmt::format(
        "{}: the device has no cl_khr_fp64; the router's scores are computed in double to "
        "choose exactly the reference's experts",
        label(n)));
  const std::size_t expected = 1 + (a->use_bias ? 1 : 0) + (a->use_valid ? 1 : 0);
  if (n.inputs.size() != expected || n.outputs.size() != 9)
    return SupportResult::no(fmt::format(
        "{} with {} inputs and {} outputs: the opencl router takes logits, a bias and a valid "
        "mask",
        label(n), n.inputs.size(), n.outputs.size()));
  if (a->use_valid) {
    const ValueInfo& valid = g.input_of(n, a->use_bias ? 2 : 1);
    if (valid.dtype != DType::I8 && !is_index(valid.dtype))
      return SupportResult::no(fmt::format("{}: the valid mask must be i8, i32 or i64", label(n)));
  }
  const std::int64_t E = a->num_experts, K = a->top_k, G = a->num_groups, TG = a->topk_groups;
  if (E < 1 || K < 1 || K > E || G < 1 || E % G != 0 || TG < 1 || TG > G || K > TG * (E / G))
    return SupportResult::no(
        fmt::format("{}: E = {}, K = {}, G = {}, TG = {} do not fit", label(n), E, K, G, TG));
  if (G > 64)
    return SupportResult::no(
        fmt::format("{}: {} groups (the opencl kernel keeps at most 64)", label(n), G));
  if (G > 1 && a->group_score == moe::GroupScore::Top2Sum && E / G < 2)
    return SupportResult::no(fmt::format("{}: top2_sum needs two experts per group", label(n)));
  if (a->block_size < 1 || !(a->capacity_factor >= 0.0f))
    return SupportResult::no(
        fmt::format("{}: block_size or capacity_factor out of range", label(n)));
  const ValueInfo& logits = g.input_of(n, 0);
  if (!is_float_storage(logits.dtype) || logits.shape.rank() != 2 || logits.shape[1] != E)
    return SupportResult::no(
        fmt::format("{}: logits must be [T, {}] f32, f16 or bf16", label(n), E));
  if (a->use_bias && (g.input_of(n, 1).dtype != DType::F32 || g.input_of(n, 1).shape.numel() != E))
    return SupportResult::no(fmt::format("{}: the bias must be f32 [{}]", label(n), E));
  const std::int64_t T = logits.shape[0];
  const std::int64_t perm_rows = T * K + (a->block_size > 1 ? E * (a->block_size - 1) : 0);
  if (g.output_of(n, 0).shape.numel() != T * K || g.output_of(n, 4).shape.numel() != perm_rows)
    return SupportResult::no(fmt::format("{}: outputs of an unexpected size", label(n)));
  for (std::size_t i : {0u, 2u, 3u, 4u, 5u, 6u, 7u})
    if (g.output_of(n, i).dtype != DType::I32)
      return SupportResult::no(fmt::format("{}: output {} is not i32", label(n), i));
  return SupportResult::yes();
}

void router_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const auto& a = std::get<moe::RouterAttrs>(n.attrs);
  const ValueInfo& logits = g.input_of(n, 0);
  const cl_long T = logits.shape[0], E = a.num_experts, K = a.top_k;
  const cl_long assignments = T * K;
  const cl_float capacity_factor = a.capacity_factor;
  const cl_long block = a.block_size;
  const cl_long perm_rows = g.output_of(n, 4).shape.numel();
  const auto tokens_by_experts = static_cast<std::size_t>(std::max<cl_long>(1, T * E));
  op.buffers.push_back(allocate_buffer(device, tokens_by_experts * sizeof(float)));
  const ClBuffer* scores = op.buffers.back().get();
  op.buffers.push_back(allocate_buffer(device, tokens_by_experts * sizeof(float)));
  const ClBuffer* ranked = op.buffers.back().get();
  op.buffers.push_back(
      allocate_buffer(device, static_cast<std::size_t>(std::max<cl_long>(1, assignments)) * 4));
  const ClBuffer* raw_ids = op.buffers.back().get();
  op.kernels.push_back(device.kernel("router_tokens"));
  const cl_kernel tokens_kernel = op.kernels.back().get();
  op.kernels.push_back(device.kernel("router_tables"));
  const cl_kernel tables_kernel = op.kernels.back().get();
  const std::size_t tables_local = device.work_group_size(tables_kernel, 256);

  const cl_int logits_dtype = dtype_code(logits.dtype);
  const cl_int has_bias = a.use_bias ? 1 : 0;
  const cl_int has_valid = a.use_valid ? 1 : 0;
  const std::size_t valid_at = a.use_bias ? 2 : 1;
  const cl_int valid_dtype = a.use_valid ? dtype_code(g.input_of(n, valid_at).dtype) : 0;
  const cl_int score = static_cast<cl_int>(a.score);
  const cl_int select_logit = a.select_on == moe::SelectOn::Logit ? 1 : 0;
  const cl_int top2 = a.group_score == moe::GroupScore::Top2Sum ? 1 : 0;
  const cl_int renormalize = a.renormalize ? 1 : 0;
  const double renorm_eps = a.renorm_eps, scale = a.scale;
  const cl_long G = a.num_groups, TG = a.topk_groups;
  const std::vector<ValueId> in(n.inputs.begin(), n.inputs.end());
  const std::vector<ValueId> out(n.outputs.begin(), n.outputs.end());
  op.run = [=](const Bindings& b, Enqueuer& q) {
    const DeviceArg bias = has_bias ? b.at(in[1]) : b.at(in[0]);
    const DeviceArg valid = has_valid ? b.at(in[valid_at]) : b.at(in[0]);
    set_args(tokens_kernel, b.at(in[0]), logits_dtype, bias, has_bias, valid, valid_dtype,
             has_valid, scores->mem(), ranked->mem(), raw_ids->mem(), b.at(out[1]), b.at(out[7]), T,
             E, K, score, select_logit, G, TG, top2, renormalize, renorm_eps, scale);
    q.launch(tokens_kernel, {static_cast<std::size_t>(T)}, {64}, "router_tokens");
    set_args(tables_kernel, raw_ids->mem(), scores->mem(), b.at(out[0]), b.at(out[1]), b.at(out[2]),
             b.at(out[3]), b.at(out[4]), b.at(out[5]), b.at(out[6]), b.at(out[8]), T, E, K,
             capacity_factor, block, perm_rows);
    q.launch(tables_kernel, {tables_local}, {tables_local}, "router_tables");
  };
}

}  // namespace

SupportResult moe_supports(const Device& device, const GraphState& g, const Node& n) {
  if (n.op == OpKind::MoeRouter) {
    return router_supports(device, g, n);
  } else if (n.op == OpKind::MoePermute) {
    if (!std::holds_alternative<MoePermuteAttrs>(n.attrs) ||
        std::get<MoePermuteAttrs>(n.attrs).top_k < 1)
      return SupportResult::no(fmt::format("{} needs MoePermuteAttrs with top_k >= 1", label(n)));
    if (g.input_of(n, 1).dtype != DType::I32 || g.input_of(n, 0).shape.rank() != 2)
      return SupportResult::no(fmt::format("{}: x must be [T, H] and perm i32", label(n)));
    const std::size_t element = dtype_size(g.input_of(n, 0).dtype);
    if (element != 1 && element != 2 && element != 4 && element != 8)
      return SupportResult::no(fmt::format("{}: elements of {} bytes", label(n), element));
    return SupportResult::yes();

  } else if (n.op == OpKind::GroupedMatmul) {
    if (auto r = need_float_storage(g, n, 0, 2); !r.supported) return r;
    if (g.input_of(n, 2).dtype != DType::I32)
      return SupportResult::no(fmt::format("{}: offsets must be i32", label(n)));
    if (const std::string why = grouped_gemm_unfit(device); !why.empty())
      return SupportResult::no(fmt::format("{}: {}", label(n), why));
    return SupportResult::yes();

  } else if (n.op == OpKind::MoeCombine) {
    if (auto r = need_float_storage(g, n, 0, 1); !r.supported) return r;
    if (g.input_of(n, 1).dtype != DType::F32 || g.input_of(n, 2).dtype != DType::I32)
      return SupportResult::no(fmt::format("{}: weights must be f32 and inv i32", label(n)));
    return SupportResult::yes();
  } else if (n.op == OpKind::MoeExperts) {
    const auto* attrs = std::get_if<moe::ExpertsAttrs>(&n.attrs);
    if (attrs == nullptr)
      return SupportResult::no(fmt::format("{} without ExpertsAttrs", label(n)));
    std::size_t expected = 8;
    if (attrs->has_shared) expected += attrs->shared_gate == moe::SharedGate::Sigmoid ? 4 : 3;
    if (n.inputs.size() != expected)
      return SupportResult::no(
          fmt::format("{} with {} inputs (expected {})", label(n), n.inputs.size(), expected));
    if (auto r = need_float_storage(g, n, 0, 1); !r.supported) return r;
    if (auto r = need_float_storage(g, n, 5, n.inputs.size()); !r.supported) return r;
    if (g.input_of(n, 1).dtype != DType::F32 || g.input_of(n, 2).dtype != DType::I32 ||
        g.input_of(n, 3).dtype != DType::I32 || g.input_of(n, 4).dtype != DType::I32)
      return SupportResult::no(
          fmt::format("{}: weights must be f32, offsets, perm and inv i32", label(n)));
    if (const std::string why = grouped_gemm_unfit(device); !why.empty())
      return SupportResult::no(fmt::format("{}: {}", label(n), why));
    return SupportResult::yes();
  }
  return SupportResult::no(fmt::format("{} is not an MoE op", label(n)));
}

namespace {

// moe_experts as the composition it is defined by (see lib/reference/moe_experts.cpp):
// combine(grouped(swiglu(grouped(permute(x), gate), grouped(permute(x), up)), down)), plus the
// optional shared expert through the same grouped GEMM with one "expert" covering every token.
// Intermediates are f32 scratch owned by the plan; the result is rounded once.
void experts_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const auto& attrs = std::get<moe::ExpertsAttrs>(n.attrs);
  const ValueInfo& x = g.input_of(n, 0);
  const ValueInfo& gate_w = g.input_of(n, 5);
  const cl_long T = x.shape[0], H = x.shape[1], K = g.input_of(n, 1).shape[1];
  const cl_long E = gate_w.shape[0], I = gate_w.shape[1];
  const cl_long P = g.input_of(n, 3).shape.numel();
  const auto f32_scratch = [&](cl_long count) {
    op.buffers.push_back(allocate_buffer(
        device, static_cast<std::size_t>(std::max<cl_long>(count, 1)) * sizeof(float)));
    return op.buffers.back().get();
  };
  op.buffers.push_back(allocate_buffer(
      device, static_cast<std::size_t>(std::max<cl_long>(P * H, 1)) * dtype_size(x.dtype)));
  const ClBuffer* xp = op.buffers.back().get();
  const ClBuffer* gate = f32_scratch(P * I);
  const ClBuffer* up = f32_scratch(P * I);
  const ClBuffer* act = f32_scratch(P * I);
  const ClBuffer* down = f32_scratch(P * H);
  auto gemms = std::make_shared<std::vector<GroupedGemm>>();
  gemms->push_back(make_grouped_gemm(device, P, H, I, E, x.dtype, gate_w.dtype, DType::F32));
  op.implementation = describe_grouped_gemm(gemms->front()) + " (gate, up, down)";
  gemms->push_back(
      make_grouped_gemm(device, P, H, I, E, x.dtype, g.input_of(n, 6).dtype, DType::F32));
  gemms->push_back(
      make_grouped_gemm(device, P, I, H, E, DType::F32, g.input_of(n, 7).dtype, DType::F32));
  op.kernels.push_back(device.kernel("moe_permute_rows"));
  const cl_kernel permute = op.kernels.back().get();
  op.kernels.push_back(device.kernel("swiglu"));
  const cl_kernel swiglu = op.kernels.back().get();
  op.kernels.push_back(device.kernel("swiglu"));
  const cl_kernel shared_swiglu = op.kernels.back().get();
  op.kernels.push_back(device.kernel("moe_combine_rows"));
  const cl_kernel combine = op.kernels.back().get();
  op.kernels.push_back(device.kernel("experts_finish"));
  const cl_kernel finish = op.kernels.back().get();

  const bool shared = attrs.has_shared;
  const bool gated = shared && attrs.shared_gate == moe::SharedGate::Sigmoid;
  const cl_long Is = shared ? g.input_of(n, 8).shape[0] : 0;
  const ClBuffer* routed = shared ? f32_scratch(T * H) : nullptr;
  const ClBuffer* s_gate = shared ? f32_scratch(T * Is) : nullptr;
  const ClBuffer* s_up = shared ? f32_scratch(T * Is) : nullptr;
  const ClBuffer* s_act = shared ? f32_scratch(T * Is) : nullptr;
  const ClBuffer* s_out = shared ? f32_scratch(T * H) : nullptr;
  const ClBuffer* logit = gated ? f32_scratch(T) : nullptr;
  const ClBuffer* all_tokens = nullptr;  // offsets {0, T}: one expert covering every token
  if (shared) {
    const std::int32_t span[2] = {0, static_cast<std::int32_t>(T)};
    op.buffers.push_back(upload_buffer(device, span, sizeof(span)));
    all_tokens = op.buffers.back().get();
    gemms->push_back(
        make_grouped_gemm(device, T, H, Is, 1, x.dtype, g.input_of(n, 8).dtype, DType::F32));
    gemms->push_back(
        make_grouped_gemm(device, T, H, Is, 1, x.dtype, g.input_of(n, 9).dtype, DType::F32));
    gemms->push_back(
        make_grouped_gemm(device, T, Is, H, 1, DType::F32, g.input_of(n, 10).dtype, DType::F32));
    if (gated)
      gemms->push_back(
          make_grouped_gemm(device, T, H, 1, 1, x.dtype, g.input_of(n, 11).dtype, DType::F32));
  }
  const cl_int element = static_cast<cl_int>(dtype_size(x.dtype));
  const cl_int f32 = dtype_code(DType::F32), out_dtype = dtype_code(g.output_of(n, 0).dtype);
  const std::string where = label(n);
  const IndexCheckLaunch check_offsets = add_offsets_check(device, op, where, E + 1, P);
  const IndexCheckLaunch check_perm = add_perm_check(device, op, where, P);
  const IndexCheckLaunch check_inv = add_inv_check(device, op, where, T * K, P);
  const std::vector<ValueId> in(n.inputs.begin(), n.inputs.end());
  const ValueId y = n.outputs[0];
  op.run = [=](const Bindings& b, Enqueuer& q) {
    const auto& gm = *gemms;
    check_offsets.enqueue(b, q, b.at(in[2]));
    check_perm.enqueue(b, q, b.at(in[3]));
    check_inv.enqueue(b, q, b.at(in[4]));
    set_args(permute, b.at(in[0]), element, b.at(in[3]), b.of(*xp), P, H, T * K, K);
    q.launch(permute, {static_cast<std::size_t>(P * H)}, {64}, "moe_permute_rows");
    enqueue_grouped_gemm(gm[0], q, b.of(*xp), b.at(in[5]), b.at(in[2]), b.of(*gate));
    enqueue_grouped_gemm(gm[1], q, b.of(*xp), b.at(in[6]), b.at(in[2]), b.of(*up));
    set_args(swiglu, b.of(*gate), b.of(*up), f32, b.of(*act), P * I);
    q.launch(swiglu, {static_cast<std::size_t>(P * I)}, {64}, "swiglu");
    enqueue_grouped_gemm(gm[2], q, b.of(*act), b.at(in[7]), b.at(in[2]), b.of(*down));
    const DeviceArg combined = shared ? b.of(*routed) : b.at(y);
    set_args(combine, b.of(*down), f32, shared ? f32 : out_dtype, b.at(in[1]), b.at(in[4]),
             combined, T, K, H, P);
    q.launch(combine, {static_cast<std::size_t>(T * H)}, {64}, "moe_combine_rows");
    if (!shared) return;
    const DeviceArg span = b.of(*all_tokens);
    enqueue_grouped_gemm(gm[3], q, b.at(in[0]), b.at(in[8]), span, b.of(*s_gate));
    enqueue_grouped_gemm(gm[4], q, b.at(in[0]), b.at(in[9]), span, b.of(*s_up));
    set_args(shared_swiglu, b.of(*s_gate), b.of(*s_up), f32, b.of(*s_act), T * Is);
    q.launch(shared_swiglu, {static_cast<std::size_t>(T * Is)}, {64}, "swiglu");
    enqueue_grouped_gemm(gm[5], q, b.of(*s_act), b.at(in[10]), span, b.of(*s_out));
    if (gated) enqueue_grouped_gemm(gm[6], q, b.at(in[0]), b.at(in[11]), span, b.of(*logit));
    set_args(finish, routed->mem(), s_out->mem(), gated ? logit->mem() : s_out->mem(),
             cl_int{gated ? 1 : 0}, b.at(y), out_dtype, T, H);
    q.launch(finish, {static_cast<std::size_t>(T * H)}, {64}, "experts_finish");
  };
}

}  // namespace

void moe_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  if (n.op == OpKind::MoeRouter) return router_lower(device, g, n, op);
  if (n.op == OpKind::MoeExperts) return experts_lower(device, g, n, op);
  const ValueId x = n.inputs[0], second = n.inputs[1], y = n.outputs[0];
  if (n.op == OpKind::MoePermute) {
    const ValueInfo& xi = g.input_of(n, 0);
    op.kernels.push_back(device.kernel("moe_permute_rows"));
    const cl_kernel k = op.kernels.back().get();
    const cl_int element = static_cast<cl_int>(dtype_size(xi.dtype));
    const cl_long rows = g.input_of(n, 1).shape.numel(), hidden = xi.shape[1];
    const cl_long top_k = std::get<MoePermuteAttrs>(n.attrs).top_k;
    const cl_long assignments = xi.shape[0] * top_k;
    const IndexCheckLaunch check = add_perm_check(device, op, label(n), rows);
    op.run = [=](const Bindings& b, Enqueuer& q) {
      check.enqueue(b, q, b.at(second));
      set_args(k, b.at(x), element, b.at(second), b.at(y), rows, hidden, assignments, top_k);
      q.launch(k, {static_cast<std::size_t>(rows * hidden)}, {64}, "moe_permute_rows");
    };
    return;
  }
  if (n.op == OpKind::MoeCombine) {
    const ValueInfo& yp = g.input_of(n, 0);
    const ValueInfo& weights = g.input_of(n, 1);
    op.kernels.push_back(device.kernel("moe_combine_rows"));
    const cl_kernel k = op.kernels.back().get();
    const cl_int dtype = dtype_code(yp.dtype);
    const cl_long tokens = weights.shape[0], top_k = weights.shape[1], hidden = yp.shape[1],
                  yp_rows = yp.shape[0];
    const ValueId inv = n.inputs[2];
    const IndexCheckLaunch check =
        add_inv_check(device, op, label(n), g.input_of(n, 2).shape.numel(), yp_rows);
    op.run = [=](const Bindings& b, Enqueuer& q) {
      check.enqueue(b, q, b.at(inv));
      set_args(k, b.at(x), dtype, dtype, b.at(second), b.at(inv), b.at(y), tokens, top_k, hidden,
               yp_rows);
      q.launch(k, {static_cast<std::size_t>(tokens * hidden)}, {64}, "moe_combine_rows");
    };
    return;
  }
  // grouped_matmul
  const ValueInfo& rows = g.input_of(n, 0);
  const ValueInfo& w = g.input_of(n, 1);
  auto gemm = std::make_shared<GroupedGemm>(make_grouped_gemm(device, rows.shape[0], rows.shape[1],
                                                              w.shape[1], w.shape[0], rows.dtype,
                                                              w.dtype, g.output_of(n, 0).dtype));
  op.implementation = describe_grouped_gemm(*gemm);
  const ValueId offsets = n.inputs[2];
  const IndexCheckLaunch check =
      add_offsets_check(device, op, label(n), g.input_of(n, 2).shape.numel(), rows.shape[0]);
  op.run = [=](const Bindings& b, Enqueuer& q) {
    check.enqueue(b, q, b.at(offsets));
    enqueue_grouped_gemm(*gemm, q, b.at(x), b.at(second), b.at(offsets), b.at(y));
  };
}

}  // namespace porta::detail::opencl

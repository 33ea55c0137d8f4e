// The cube ops' functional kernels (see functional.hpp for the numerics).
#include "functional.hpp"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "comm/expert_dispatch.hpp"
#include "gemm.hpp"
#include "quant/quant_refs.hpp"
#include "reference/kernel_util.hpp"
#include "reference/moe_internal.hpp"

namespace porta::detail::npu_sim {

namespace {

using reference::node_label;

// The cube's operand dtype for a value stored as `t`: fp16 and bf16 as they are, f32 as f32.
DType operand_dtype(DType t) { return t == DType::F16 || t == DType::BF16 ? t : DType::F32; }

// Rounds f32 results once into `out` (FixPipe's cast).
void store_rounded(const float* values, std::size_t count, void* out, DType dtype) {
  switch (dtype) {
    case DType::F32: std::memcpy(out, values, count * sizeof(float)); return;
    case DType::F16: {
      auto* h = static_cast<std::uint16_t*>(out);
      for (std::size_t i = 0; i < count; ++i) h[i] = f32_to_f16_bits(values[i]);
      return;
    }
    case DType::BF16: {
      auto* h = static_cast<std::uint16_t*>(out);
      for (std::size_t i = 0; i < count; ++i) h[i] = f32_to_bf16_bits(values[i]);
      return;
    }
    case DType::F8E4M3:
    case DType::I8:
    case DType::I32:
    case DType::I64:
      for (std::size_t i = 0; i < count; ++i) store_from_f32(out, dtype, i, values[i]);
  }
}

void round_in_place(std::vector<float>& v, DType t) {
  if (t == DType::F32) return;
  for (float& x : v) x = round_to(x, t);
}

std::vector<float> widen_all(const TensorRef& t) {
  std::vector<float> out(static_cast<std::size_t>(t.shape().numel()));
  widen(t.host(), t.dtype(), static_cast<std::int64_t>(out.size()), out.data());
  return out;
}

Shape batch_shape(const Shape& s) {
  return Shape(std::vector<std::int64_t>(s.dims().begin(), s.dims().end() - 2));
}

float silu_times(float gate, float up) {
  return static_cast<float>(gate / (1.0f + std::exp(-gate)) * up);
}

// rows [m, k] (f32, already in the device dtype) times each expert's w [E, n, k]^T over its block
// of rows; the output rounded to `t` (the GEMM kernel's FixPipe cast).
std::vector<float> grouped_gemm(const float* rows, std::int64_t k, const TensorRef& w,
                                std::int64_t w_offset_experts,
                                std::span<const std::int64_t> offsets, std::int64_t m, DType t) {
  const std::int64_t experts = static_cast<std::int64_t>(offsets.size()) - 1;
  const std::int64_t n = w.shape()[1];
  std::vector<float> out(static_cast<std::size_t>(m * n), 0.0f);
  const auto* w_bytes = static_cast<const char*>(w.host());
  const std::size_t expert_bytes = static_cast<std::size_t>(n * k) * dtype_size(w.dtype());
  for (std::int64_t e = 0; e < experts; ++e) {
    const std::int64_t first = offsets[static_cast<std::size_t>(e)];
    const std::int64_t count = offsets[static_cast<std::size_t>(e + 1)] - first;
    if (count <= 0) continue;
    // nn.Linear weights are read in place: no packing on the host either.
    gemm_nt(rows + first * k, k,
            w_bytes + static_cast<std::size_t>(e + w_offset_experts) * expert_bytes, w.dtype(), n,
            k, count, out.data() + first * n, n);
  }
  round_in_place(out, t);
  return out;
}

// A dense nn.Linear x[m, k] . w[n, k]^T rounded to `t`.
std::vector<float> linear(const float* x, std::int64_t m, std::int64_t k, const TensorRef& w,
                          DType t) {
  const std::int64_t n = w.shape()[0];
  std::vector<float> out(static_cast<std::size_t>(m * n));
  gemm_nt(x, k, w.host(), w.dtype(), n, k, m, out.data(), n);
  round_in_place(out, t);
  return out;
}

// The weight-only antiquant of one [N, K] matrix as the vector cores do it ahead of the cube:
// codes minus zero (exact in fp16/bf16: at most 255 in magnitude) times the scale held in the
// activation dtype, the product rounded to it. A product of two fp16 (11-bit) or bf16 (8-bit)
// significands is exact in f32, so rounding it once equals the device's fp16/bf16 multiply. For
// f32 activations both roundings vanish and the values are docs/quantization.md's exactly.
std::vector<float> antiquant(const QuantMatrix& w, DType t) {
  std::vector<float> out(static_cast<std::size_t>(w.n * w.k));
  std::vector<std::int32_t> codes(static_cast<std::size_t>(w.k));
  const std::int64_t group = w.group();
  for (std::int64_t row = 0; row < w.n; ++row) {
    centred_codes_row(w, row, codes.data());
    float* dst = out.data() + row * w.k;
    for (std::int64_t g = 0; g < w.groups(); ++g) {
      const float s = round_to(w.scale_at(row, g), t);
      for (std::int64_t c = g * group; c < std::min(w.k, (g + 1) * group); ++c)
        dst[c] = round_to(static_cast<float>(codes[static_cast<std::size_t>(c)]) * s, t);
    }
  }
  return out;
}

// rows [num_rows, k] (values already in the activation dtype t) times expert e's quantized
// weight over its block of rows, rounded to `round` (the kernel's output cast). W8A8: the
// activations are quantized per token on the vector cores and the cube sums int8 products into
// int32 exactly; the scaling in f32 is docs/quantization.md's, so this is the reference's
// quant_linear_reference, bit for bit. Weight-only: antiquant above, then the cube's f32 GEMM.
std::vector<float> quant_rows(const ExecContext& ctx, const Node& n, int which, const float* rows,
                              std::int64_t num_rows, std::int64_t k, std::int64_t out_features,
                              std::span<const std::int64_t> offsets, DType t, DType round) {
  const auto& a = std::get<QuantAttrs>(n.attrs);
  const QuantInputs in = quant_inputs(n, which);
  std::vector<float> out(static_cast<std::size_t>(num_rows * out_features), 0.0f);
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e) {
    const std::int64_t first = offsets[e], count = offsets[e + 1] - offsets[e];
    if (count <= 0) continue;
    const QuantMatrix w = quant_matrix(ctx, n, in, static_cast<std::int64_t>(e), out_features, k);
    float* dst = out.data() + first * out_features;
    if (a.activation != ActivationQuant::None) {
      quant_linear_reference(rows + first * k, count, w, a.activation,
                             {a.act_scale, a.act_offset}, dst);
    } else {
      const auto dense = antiquant(w, operand_dtype(t));
      gemm_nt(rows + first * k, k, dense.data(), DType::F32, out_features, k, count, dst,
              out_features);
    }
  }
  round_in_place(out, round);
  return out;
}

}  // namespace

float round_to(float value, DType dtype) {
  switch (dtype) {
    case DType::F16: return f16_bits_to_f32(f32_to_f16_bits(value));
    case DType::BF16: return bf16_bits_to_f32(f32_to_bf16_bits(value));
    case DType::F32:
    case DType::F8E4M3:
    case DType::I8:
    case DType::I32:
    case DType::I64: return value;  // the cube's f32 results are stored as they are
  }
  return value;
}

void run_matmul(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& attrs = std::get<MatmulAttrs>(n.attrs);
  const TensorRef& a_ref = ctx.input(n, 0);
  const TensorRef& b_ref = ctx.input(n, 1);
  const TensorRef& out_ref = ctx.output(n, 0);
  const Shape& as = a_ref.shape();
  const Shape& bs = b_ref.shape();
  const Shape& os = out_ref.shape();
  const std::int64_t m = attrs.transpose_a ? as[-1] : as[-2];
  const std::int64_t k = attrs.transpose_a ? as[-2] : as[-1];
  const std::int64_t n_cols = attrs.transpose_b ? bs[-2] : bs[-1];
  if (os.numel() == 0) return;
  const DType a_type = a_ref.dtype(), b_type = b_ref.dtype();
  const DType round_a = operand_dtype(a_type), round_b = operand_dtype(b_type);
  const std::size_t a_es = dtype_size(a_type), b_es = dtype_size(b_type);
  const Shape out_batch = batch_shape(os);
  reference::BroadcastWalker walk(out_batch, {batch_shape(as), batch_shape(bs)});
  std::vector<float> a_mat(static_cast<std::size_t>(m * k)),
      c(static_cast<std::size_t>(m * n_cols));
  std::vector<float> column(static_cast<std::size_t>(attrs.transpose_a ? m : 0));
  const auto* a_bytes = static_cast<const char*>(a_ref.host());
  const auto* b_bytes = static_cast<const char*>(b_ref.host());
  auto* out_bytes = static_cast<char*>(out_ref.host());
  const std::size_t out_es = dtype_size(out_ref.dtype());
  std::int64_t packed_index = -1;
  PackedB b;
  for (std::int64_t batch = 0; batch < out_batch.numel(); ++batch, walk.next()) {
    const char* a_src = a_bytes + static_cast<std::size_t>(walk.index(0) * m * k) * a_es;
    if (!attrs.transpose_a) {
      widen(a_src, a_type, m * k, a_mat.data(), round_a);
    } else {  // a is [K, M]: widen each of its K rows and scatter it into column p of [M, K]
      for (std::int64_t p = 0; p < k; ++p) {
        widen(a_src + static_cast<std::size_t>(p * m) * a_es, a_type, m, column.data(), round_a);
        for (std::int64_t i = 0; i < m; ++i)
          a_mat[static_cast<std::size_t>(i * k + p)] = column[static_cast<std::size_t>(i)];
      }
    }
    if (walk.index(1) != packed_index) {  // a broadcast b is packed once
      packed_index = walk.index(1);
      b = pack_b(b_bytes + static_cast<std::size_t>(packed_index * k * n_cols) * b_es, b_type, k,
                 n_cols, attrs.transpose_b, round_b);
    }
    gemm_f32(a_mat.data(), k, b, m, c.data(), n_cols);
    store_rounded(c.data(), c.size(),
                  out_bytes + static_cast<std::size_t>(batch * m * n_cols) * out_es,
                  out_ref.dtype());
  }
}

void run_grouped_matmul(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& rows_ref = ctx.input(n, 0);
  const TensorRef& w_ref = ctx.input(n, 1);
  const auto offsets = reference::load_indices(n, ctx.input(n, 2), "offsets");
  const std::int64_t num_rows = rows_ref.shape()[0];
  reference::check_offsets(node_label(n), offsets, num_rows);
  const auto rows = widen_all(rows_ref);
  const TensorRef& out = ctx.output(n, 0);
  const auto result =
      grouped_gemm(rows.data(), rows_ref.shape()[1], w_ref, 0, offsets, num_rows, DType::F32);
  store_rounded(result.data(), result.size(), out.host(), out.dtype());
}

void run_moe_experts(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& attrs = std::get<moe::ExpertsAttrs>(n.attrs);
  const TensorRef& x_ref = ctx.input(n, 0);
  const TensorRef& weights_ref = ctx.input(n, 1);
  const TensorRef& gate_ref = ctx.input(n, 5);
  const std::int64_t tokens = x_ref.shape()[0];
  const std::int64_t hidden = x_ref.shape()[1];
  const std::int64_t top_k = weights_ref.shape()[1];
  const std::int64_t inner = gate_ref.shape()[1];
  const DType t = x_ref.dtype();
  const auto [offsets, perm, inv, rows] = reference::load_expert_routing(n, ctx);

  const auto x = widen_all(x_ref);
  const auto weights = widen_all(weights_ref);
  // The kernels CANN runs for a MoE FFN, each rounding its output to the activation dtype:
  // gather (exact), gate and up GEMMs, SwiGLU, down GEMM, the weighted combine.
  const auto xp = reference::permute_rows(x.data(), tokens, hidden, perm, top_k);
  const auto gate = grouped_gemm(xp.data(), hidden, gate_ref, 0, offsets, rows, t);
  const auto up = grouped_gemm(xp.data(), hidden, ctx.input(n, 6), 0, offsets, rows, t);
  std::vector<float> act(gate.size());
  for (std::size_t i = 0; i < act.size(); ++i) act[i] = round_to(silu_times(gate[i], up[i]), t);
  const auto down = grouped_gemm(act.data(), inner, ctx.input(n, 7), 0, offsets, rows, t);
  auto out = reference::combine_rows(down.data(), hidden, weights.data(), inv, tokens, top_k);
  if (attrs.has_shared) {
    round_in_place(out, t);
    const TensorRef& s_gate = ctx.input(n, 8);
    const std::int64_t s_inner = s_gate.shape()[0];
    const auto sg = linear(x.data(), tokens, hidden, s_gate, t);
    const auto su = linear(x.data(), tokens, hidden, ctx.input(n, 9), t);
    std::vector<float> s_act(sg.size());
    for (std::size_t i = 0; i < s_act.size(); ++i) s_act[i] = round_to(silu_times(sg[i], su[i]), t);
    auto shared = linear(s_act.data(), tokens, s_inner, ctx.input(n, 10), t);
    if (attrs.shared_gate == moe::SharedGate::Sigmoid) {
      const auto logit = linear(x.data(), tokens, hidden, ctx.input(n, 11), DType::F32);
      const auto h = static_cast<std::size_t>(hidden);
      for (std::size_t tok = 0; tok < static_cast<std::size_t>(tokens); ++tok) {
        const float factor = 1.0f / (1.0f + std::exp(-logit[tok]));
        for (std::size_t j = 0; j < h; ++j)
          shared[tok * h + j] = round_to(factor * shared[tok * h + j], t);
      }
    }
    for (std::size_t i = 0; i < out.size(); ++i) out[i] += shared[i];
  }
  const TensorRef& out_ref = ctx.output(n, 0);
  store_rounded(out.data(), out.size(), out_ref.host(), out_ref.dtype());
}

std::vector<std::int64_t> expert_rows(const GraphState&, const Node& n, const ExecContext& ctx) {
  if (n.op == OpKind::MoeExpertsEp) {
    // The rows this rank's slots receive: every expert's kept (non-padding) assignments, split
    // over its replicas as the dispatch splits them.
    const auto& a = std::get<ExpertParallelAttrs>(n.attrs);
    const auto offsets = reference::load_indices(n, ctx.input(n, 2), "offsets");
    const auto perm = reference::load_indices(n, ctx.input(n, 3), "perm");
    const std::int64_t assignments = ctx.input(n, 1).shape().numel();
    std::vector<std::int64_t> kept(offsets.size() - 1, 0);
    for (std::size_t e = 0; e + 1 < offsets.size(); ++e)
      for (std::int64_t i = std::max<std::int64_t>(0, offsets[e]);
           i < std::min(offsets[e + 1], static_cast<std::int64_t>(perm.size())); ++i)
        kept[e] += perm[static_cast<std::size_t>(i)] < assignments ? 1 : 0;
    return ep::slot_rows(a.placement, a.rank, kept);
  }
  if (n.op != OpKind::GroupedMatmul && n.op != OpKind::MoeExperts) return {};
  const auto offsets = reference::load_indices(n, ctx.input(n, 2), "offsets");
  std::vector<std::int64_t> counts;
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e)
    counts.push_back(std::max<std::int64_t>(0, offsets[e + 1] - offsets[e]));
  return counts;
}

void run_quant_matmul(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& x_ref = ctx.input(n, 0);
  const std::int64_t k = x_ref.shape()[-1];
  const std::int64_t rows = k == 0 ? 0 : x_ref.shape().numel() / k;
  const std::int64_t out_features = ctx.input(n, 1).shape()[0];
  const auto x = widen_all(x_ref);
  const std::vector<std::int64_t> whole{0, rows};
  const auto out = quant_rows(ctx, n, 0, x.data(), rows, k, out_features, whole, x_ref.dtype(),
                              DType::F32);
  const TensorRef& out_ref = ctx.output(n, 0);
  store_rounded(out.data(), out.size(), out_ref.host(), out_ref.dtype());
}

void run_quant_grouped_matmul(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& rows_ref = ctx.input(n, 0);
  const auto offsets = reference::load_indices(n, ctx.input(n, 1), "offsets");
  const std::int64_t num_rows = rows_ref.shape()[0];
  reference::check_offsets(node_label(n), offsets, num_rows);
  const auto rows = widen_all(rows_ref);
  const auto out = quant_rows(ctx, n, 0, rows.data(), num_rows, rows_ref.shape()[1],
                              ctx.input(n, 2).shape()[1], offsets, rows_ref.dtype(), DType::F32);
  const TensorRef& out_ref = ctx.output(n, 0);
  store_rounded(out.data(), out.size(), out_ref.host(), out_ref.dtype());
}

// The kernels of a quantized MoE FFN, each rounding its output to the activation dtype as in
// run_moe_experts: gather, gate and up, SwiGLU, down (its input quantized per token again under
// W8A8), the weighted combine.
void run_quant_moe_experts(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& x_ref = ctx.input(n, 0);
  const TensorRef& weights_ref = ctx.input(n, 1);
  const std::int64_t tokens = x_ref.shape()[0];
  const std::int64_t hidden = x_ref.shape()[1];
  const std::int64_t top_k = weights_ref.shape()[1];
  const std::int64_t inner = ctx.input(n, 5).shape()[1];
  const DType t = x_ref.dtype();
  const auto [offsets, perm, inv, rows] = reference::load_expert_routing(n, ctx);
  const auto x = widen_all(x_ref);
  const auto weights = widen_all(weights_ref);
  const auto xp = reference::permute_rows(x.data(), tokens, hidden, perm, top_k);
  const auto gate = quant_rows(ctx, n, 0, xp.data(), rows, hidden, inner, offsets, t, t);
  const auto up = quant_rows(ctx, n, 1, xp.data(), rows, hidden, inner, offsets, t, t);
  // The reference's SwiGLU values (f32 vector compute) rounded to t: with f32 activations the
  // requantized down-projection input, and so the W8A8 integer sums, equal the reference's.
  auto act = reference::swiglu_values(gate, up);
  round_in_place(act, t);
  const auto down = quant_rows(ctx, n, 2, act.data(), rows, inner, hidden, offsets, t, t);
  const auto out = reference::combine_rows(down.data(), hidden, weights.data(), inv, tokens, top_k);
  const TensorRef& out_ref = ctx.output(n, 0);
  store_rounded(out.data(), out.size(), out_ref.host(), out_ref.dtype());
}

}  // namespace porta::detail::npu_sim

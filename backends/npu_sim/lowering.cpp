// Op -> kernels (see lowering.hpp). Vector instruction sequences are counted per 256-byte repeat
// in three classes (simple, exp, div), whose cycle costs come from the profile.
#include "lowering.hpp"

#include "collective_timing.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "comm/expert_dispatch.hpp"
#include "graph/catalogue.hpp"
#include "quant/quant_refs.hpp"

namespace porta::detail::npu_sim {

namespace {

bool is_quant(OpKind op) {
  return op == OpKind::QuantMatmul || op == OpKind::QuantGroupedMatmul ||
         op == OpKind::QuantMoeExperts;
}
bool w8a8(const Node& n) {
  return is_quant(n.op) && std::get<QuantAttrs>(n.attrs).activation != ActivationQuant::None;
}
double numel(const ValueInfo& v) { return static_cast<double>(v.shape.numel()); }
double es(DType t) { return static_cast<double>(dtype_size(t)); }

// Instruction mix of one repeat.
struct Mix {
  double simple = 0, exp = 0, div = 0;
};
double cycles(const DeviceProfile& p, Mix m) {
  return m.simple * p.vector_cycles_simple + m.exp * p.vector_cycles_exp +
         m.div * p.vector_cycles_div;
}

// fp16 computes natively on the vector unit; bf16 (no bf16 arithmetic on 910B) and ops that need
// f32 (reductions, transcendentals of fp16 inputs) compute in f32 with a cast in and one out.
Mix with_casts(Mix m, DType stored, bool needs_f32) {
  if (stored == DType::BF16 || (stored == DType::F16 && needs_f32)) m.simple += 2;
  return m;
}
double compute_bytes(DType stored, bool needs_f32) {
  return stored == DType::F16 && !needs_f32 ? 2.0 : 4.0;
}

class Kernels {
 public:
  Kernels(const DeviceProfile& p, SpanSink* sink) : p_(p), sink_(sink) {}
  template <class F>
  void add(F&& time, bool launched = true) {
    if (sink_ != nullptr && launched) sink_->origin_us += p_.launch_overhead_us;
    KernelResult r = time(sink_);
    r.launched = launched;
    if (sink_ != nullptr) sink_->origin_us += r.time_us;
    out_.push_back(std::move(r));
  }
  std::vector<KernelResult> take() { return std::move(out_); }

 private:
  const DeviceProfile& p_;
  SpanSink* sink_;
  std::vector<KernelResult> out_;
};

std::vector<std::int64_t> balanced(std::int64_t rows, std::int64_t experts) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(experts),
                                experts > 0 ? rows / experts : 0);
  for (std::int64_t e = 0; e < rows % std::max<std::int64_t>(experts, 1); ++e)
    ++out[static_cast<std::size_t>(e)];
  return out;
}

GemmProblem grouped(const std::vector<std::int64_t>& rows, std::int64_t n, std::int64_t k,
                    DType t) {
  GemmProblem prob;
  prob.dtype = t;
  prob.out_dtype = t;
  for (auto m : rows) prob.groups.push_back({m, n, k});
  return prob;
}

DType cube_dtype(DType t) { return t == DType::F16 || t == DType::BF16 ? t : DType::F32; }

VectorWork elementwise(const DeviceProfile& p, const GraphState& g, const Node& n, Mix mix,
                       bool needs_f32, const std::string& what) {
  const ValueInfo& out = g.output_of(n, 0);
  VectorWork w;
  w.what = what;
  w.row_elems = out.shape.numel();
  w.out_bytes_per_elem = es(out.dtype);
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    const ValueInfo& in = g.input_of(n, i);
    if (numel(in) == numel(out) || numel(in) * es(in.dtype) > static_cast<double>(p.ub_bytes) / 8)
      w.in_bytes_per_elem += es(in.dtype) * numel(in) / std::max(1.0, numel(out));
    else
      w.fixed_bytes += numel(in) * es(in.dtype);  // a small broadcast operand, loaded once
  }
  w.compute_bytes = compute_bytes(out.dtype, needs_f32);
  w.cycles_per_repeat = cycles(p, with_casts(mix, out.dtype, needs_f32));
  return w;
}

VectorWork rowwise(const DeviceProfile& p, const ValueInfo& x, std::int64_t row, Mix mix,
                   double passes, const std::string& what) {
  VectorWork w;
  w.what = what;
  w.row_elems = row;
  w.rows = row > 0 ? x.shape.numel() / row : 0;
  w.in_bytes_per_elem = es(x.dtype);
  w.out_bytes_per_elem = es(x.dtype);
  w.compute_bytes = 4;
  w.cycles_per_repeat = cycles(p, with_casts(mix, x.dtype, true));
  w.row_passes = passes;
  return w;
}

// Copy-like ops: contiguous runs of `run` elements (a DMA each).
GatherWork copy_runs(const std::string& what, double elems, double run, double esize) {
  GatherWork w;
  w.what = what;
  run = std::max(1.0, run);
  w.segments = static_cast<std::int64_t>(std::ceil(elems / run));
  w.segment_bytes = run * esize;
  w.out_bytes = elems * esize;
  return w;
}

// What the expert FFN kernels of moe_experts (and of one rank's moe_experts_ep) work on.
struct ExpertsWork {
  DType t = DType::F32;  // activations
  std::int64_t tokens = 0, hidden = 0, top_k = 0, inner = 0;
  std::int64_t permuted = 0;         // rows the permute gathers
  std::int64_t ffn_rows = 0;         // rows through SwiGLU
  std::vector<std::int64_t> counts;  // rows per expert (or slot) of the grouped GEMMs
  bool has_shared = false, sigmoid_gate = false;
  std::int64_t s_inner = 0;  // the shared expert's I
};

void lower_expert_ffn(const DeviceProfile& p, const ExpertsWork& w, Kernels& k);

void lower_moe_experts(const DeviceProfile& p, const GraphState& g, const Node& n,
                       const std::vector<std::int64_t>& rows_per_expert, Kernels& k) {
  const auto& attrs = std::get<moe::ExpertsAttrs>(n.attrs);
  ExpertsWork w;
  w.t = g.input_of(n, 0).dtype;
  w.tokens = g.input_of(n, 0).shape[0];
  w.hidden = g.input_of(n, 0).shape[1];
  w.top_k = g.input_of(n, 1).shape[1];
  w.permuted = w.ffn_rows = g.input_of(n, 3).shape[0];
  w.inner = g.input_of(n, 5).shape[1];
  w.counts = rows_per_expert.empty() ? balanced(w.permuted, g.input_of(n, 5).shape[0])
                                     : rows_per_expert;
  w.has_shared = attrs.has_shared;
  w.sigmoid_gate = attrs.shared_gate == moe::SharedGate::Sigmoid;
  if (w.has_shared) w.s_inner = g.input_of(n, 8).shape[0];
  lower_expert_ffn(p, w, k);
}

// Permute, gate and up, SwiGLU, down, combine, and the shared expert.
void lower_expert_ffn(const DeviceProfile& p, const ExpertsWork& work, Kernels& k) {
  const DType t = work.t;
  const std::int64_t tokens = work.tokens, hidden = work.hidden, top_k = work.top_k;
  const std::int64_t rows = work.permuted, inner = work.inner;
  const auto& counts = work.counts;
  const DType ct = cube_dtype(t);
  k.add([&](SpanSink* s) {
    return time_gather(p,
                       copy_runs("moe permute", static_cast<double>(rows * hidden),
                                 static_cast<double>(hidden), es(t)),
                       s);
  });
  // gate and up as one GEMM of width 2I (their weights side by side), as CANN's fused kernels do
  k.add([&](SpanSink* s) {
    return time_gemm(p, grouped(counts, 2 * inner, hidden, ct), nullptr, s);
  });
  const auto swiglu = [&](std::int64_t r, std::int64_t width) {
    VectorWork w;
    w.what = "swiglu";
    w.row_elems = r * width;
    w.in_bytes_per_elem = 2 * es(t);
    w.out_bytes_per_elem = es(t);
    w.compute_bytes = 4;
    w.cycles_per_repeat = cycles(p, with_casts(Mix{4, 1, 1}, t, true));
    w.flops = static_cast<double>(r * width) * 4;
    return w;
  };
  k.add([&](SpanSink* s) { return time_vector(p, swiglu(work.ffn_rows, inner), s); });
  k.add([&](SpanSink* s) { return time_gemm(p, grouped(counts, hidden, inner, ct), nullptr, s); });
  k.add([&](SpanSink* s) {
    GatherWork w = copy_runs("moe combine", static_cast<double>(tokens * top_k * hidden),
                             static_cast<double>(hidden), es(t));
    w.out_bytes = static_cast<double>(tokens * hidden) * es(t);
    const double repeats = std::ceil(static_cast<double>(hidden) * 4 / p.vector_repeat_bytes);
    w.vector_cycles = static_cast<double>(tokens * top_k) * repeats * cycles(p, Mix{3, 0, 0});
    w.flops = 2.0 * static_cast<double>(tokens * top_k * hidden);
    return time_gather(p, w, s);
  });
  if (!work.has_shared) return;
  const std::int64_t s_inner = work.s_inner;
  GemmProblem up;
  up.dtype = up.out_dtype = ct;
  up.groups = {{tokens, 2 * s_inner + (work.sigmoid_gate ? 1 : 0), hidden}};
  k.add([&](SpanSink* s) { return time_gemm(p, up, nullptr, s); });
  k.add([&](SpanSink* s) { return time_vector(p, swiglu(tokens, s_inner), s); });
  GemmProblem down;
  down.dtype = down.out_dtype = ct;
  down.groups = {{tokens, hidden, s_inner}};
  k.add([&](SpanSink* s) { return time_gemm(p, down, nullptr, s); });
  k.add([&](SpanSink* s) {
    VectorWork w;
    w.what = "shared gate and add";
    w.row_elems = tokens * hidden;
    w.in_bytes_per_elem = 2 * es(t);
    w.out_bytes_per_elem = es(t);
    w.compute_bytes = compute_bytes(t, false);
    w.cycles_per_repeat = cycles(p, with_casts(Mix{2, 0, 0}, t, false));
    w.flops = static_cast<double>(tokens * hidden) * 2;
    return time_vector(p, w, s);
  });
}

// One rank's moe_experts_ep: the FFN kernels of moe_experts on its share of the tokens
// (permute and combine of T/ranks tokens' rows, the shared expert on them) and on the rows its
// slots receive, plus the exchanges: its permuted rows out and back (two all_to_all of those
// rows) and the ranks' outputs gathered (all_gather of [T, H]), each timed by the interconnect
// model the collective ops use. `rows_per_slot` empty: experts get T·K / E rows each.
void lower_moe_experts_ep(const DeviceProfile& p, const GraphState& g, const Node& n,
                          const std::vector<std::int64_t>& rows_per_slot, Kernels& k) {
  const auto& a = std::get<ExpertParallelAttrs>(n.attrs);
  const ValueInfo& x = g.input_of(n, 0);
  const std::int64_t tokens = x.shape[0];
  const auto ranks = static_cast<int>(a.placement.ranks());
  ExpertsWork w;
  w.t = x.dtype;
  w.tokens = ep::token_range(tokens, ranks, a.rank).size();
  w.hidden = x.shape[1];
  w.top_k = g.input_of(n, 1).shape[1];
  w.permuted = w.tokens * w.top_k;
  w.inner = g.input_of(n, 5).shape[1];
  w.counts = rows_per_slot.empty()
                 ? ep::slot_rows(a.placement, a.rank,
                                 balanced(tokens * w.top_k, a.placement.num_experts))
                 : rows_per_slot;
  w.ffn_rows = std::accumulate(w.counts.begin(), w.counts.end(), std::int64_t{0});
  w.has_shared = a.experts.has_shared;
  w.sigmoid_gate = a.experts.shared_gate == moe::SharedGate::Sigmoid;
  if (w.has_shared) w.s_inner = g.input_of(n, 8).shape[0];
  lower_expert_ffn(p, w, k);
  const double rows_bytes = static_cast<double>(w.permuted * w.hidden) * es(w.t);
  for (int i = 0; i < 2; ++i)
    k.add([&](SpanSink*) { return time_exchange(p, plan::Collective::AllToAll, ranks, rows_bytes); });
  k.add([&](SpanSink*) {
    return time_exchange(p, plan::Collective::AllGather, ranks,
                         static_cast<double>(tokens * w.hidden) * es(w.t));
  });
}

// ---- quantized weights (docs/npu-sim.md, "Quantized weights")

// Bytes per logical weight element that weight `which` of a quantized op streams from HBM: its
// codes (int4: half a byte) plus its scales and zero points.
double quant_bytes_per_elem(const GraphState& g, const Node& n, int which) {
  const QuantInputs in = quant_inputs(n, which);
  const ValueInfo& data = g.input_of(n, in.data);
  const ValueInfo& scale = g.input_of(n, in.scale);
  double bytes = numel(data) * es(data.dtype) + numel(scale) * es(scale.dtype);
  if (in.zero) bytes += numel(g.input_of(n, *in.zero));
  const bool int4 = std::get<QuantAttrs>(n.attrs).scheme.format == QuantFormat::Int4;
  return bytes / std::max(1.0, numel(data) * (int4 ? 2.0 : 1.0));
}

// One quantized linear over `counts` rows per expert ([rows, kdim] in dtype t, out [rows, n]):
// - W8A8: the activations are quantized on the vector cores (dynamic: a max pass and a quantize
//   pass per token; static: one pass), the cube multiplies int8 at the profile's int8 rate into
//   int32 (one K-slice per scale group, each written out as int32), and one vector kernel applies
//   the group scales, sums the groups and multiplies by the token scale;
// - weight-only: the vector cores antiquantize the weights of the experts that got rows
//   ((q - z) · s into the activation dtype, costed as compute: the bytes are the GEMM's B stream)
//   and the cube runs the activation-dtype GEMM.
// Either way the cube's B stream is the weight at its quantized size (codes, scales, zeros).
void quant_linear(const DeviceProfile& p, const QuantAttrs& a, const std::vector<std::int64_t>& counts,
                  std::int64_t n_out, std::int64_t kdim, DType t, double b_bytes, Kernels& k) {
  const bool w8a8 = a.activation != ActivationQuant::None;
  const std::int64_t rows = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
  const std::int64_t group = a.scheme.group_k <= 0 ? kdim : std::min(a.scheme.group_k, kdim);
  const std::int64_t groups = kdim == 0 ? 1 : (kdim + group - 1) / group;
  if (w8a8) {
    VectorWork q;
    q.what = a.activation == ActivationQuant::DynamicInt8 ? "per-token int8 quantization"
                                                          : "static int8 quantization";
    q.row_elems = kdim;
    q.rows = rows;
    q.in_bytes_per_elem = es(t);
    q.out_bytes_per_elem = 1.0 + (a.activation == ActivationQuant::DynamicInt8 ? 4.0 : 0.0) /
                                     static_cast<double>(std::max<std::int64_t>(kdim, 1));
    q.compute_bytes = 4;
    // dynamic: |x| and max (pass 1); divide, round, clamp, cast (pass 2)
    const bool dynamic = a.activation == ActivationQuant::DynamicInt8;
    q.cycles_per_repeat = cycles(p, with_casts(dynamic ? Mix{5, 0, 1} : Mix{4, 0, 1}, t, true));
    q.row_passes = dynamic ? 2 : 1;
    q.flops = static_cast<double>(rows * kdim) * (dynamic ? 4 : 3);
    k.add([&](SpanSink* s) { return time_vector(p, q, s); });
  } else {
    VectorWork aq;
    aq.what = "antiquant";
    std::int64_t experts_used = 0;
    for (auto c : counts) experts_used += c > 0 ? 1 : 0;
    aq.row_elems = experts_used * n_out * kdim;
    aq.compute_bytes = 2;  // fp16/bf16 operands for the cube; f32 for f32 activations
    if (cube_dtype(t) == DType::F32) aq.compute_bytes = 4;
    // unpack (int4) or widen, subtract the zero, multiply by the scale, cast
    aq.cycles_per_repeat = cycles(p, Mix{a.scheme.format == QuantFormat::Int4 ? 4.0 : 3.0, 0, 0});
    aq.flops = 2.0 * static_cast<double>(aq.row_elems);
    // inside the fused weight-quant GEMM kernel (no launch of its own)
    k.add([&](SpanSink* s) { return time_vector(p, aq, s); }, false);
  }
  // Per-channel W8A8: FixPipe applies the channel scale on the way out of L0C and the token
  // scale is the fused epilogue of the same kernel (CANN's QuantBatchMatmul), so the output
  // leaves in the activation dtype. Grouped scales have no such path: every K-group's int32 sum
  // is written out and a vector epilogue (in the same kernel) scales and sums them.
  const bool partials = w8a8 && groups > 1;
  GemmProblem prob;
  prob.dtype = w8a8 ? DType::I8 : cube_dtype(t);
  prob.out_dtype = partials ? DType::I32 : t;
  prob.b_gm_bytes = b_bytes;
  for (auto m : counts)
    for (std::int64_t g = 0; g < (partials ? groups : 1); ++g)
      prob.groups.push_back({m, n_out, partials ? std::min(group, kdim - g * group) : kdim});
  k.add([&](SpanSink* s) { return time_gemm(p, prob, nullptr, s); });
  if (!partials) return;
  VectorWork e;
  e.what = "int8 dequant epilogue";
  e.row_elems = rows * n_out;
  e.in_bytes_per_elem = 4.0 * static_cast<double>(groups);
  e.out_bytes_per_elem = es(t);
  e.fixed_bytes = static_cast<double>(n_out * groups) * 4 + static_cast<double>(rows) * 4;
  e.compute_bytes = 4;
  e.cycles_per_repeat =
      cycles(p, with_casts(Mix{2.0 * static_cast<double>(groups) + 1, 0, 0}, t, false));
  e.flops = static_cast<double>(rows * n_out) * (2.0 * static_cast<double>(groups) + 1);
  k.add([&](SpanSink* s) { return time_vector(p, e, s); }, false);
}

void lower_quant(const DeviceProfile& p, const GraphState& g, const Node& n,
                 const std::vector<std::int64_t>& rows_per_expert, Kernels& k) {
  const auto& a = std::get<QuantAttrs>(n.attrs);
  const ValueInfo& x = g.input_of(n, 0);
  const DType t = x.dtype;
  const std::int64_t kdim = x.shape[-1];
  if (n.op == OpKind::QuantMatmul) {
    const std::int64_t rows = kdim == 0 ? 0 : x.shape.numel() / kdim;
    return quant_linear(p, a, {rows}, g.input_of(n, 1).shape[0], kdim, t,
                        quant_bytes_per_elem(g, n, 0), k);
  }
  const Shape& w = g.input_of(n, n.op == OpKind::QuantGroupedMatmul ? 2 : 5).shape;
  const std::int64_t rows = g.input_of(n, n.op == OpKind::QuantGroupedMatmul ? 0 : 3).shape[0];
  const auto counts = rows_per_expert.empty() ? balanced(rows, w[0]) : rows_per_expert;
  if (n.op == OpKind::QuantGroupedMatmul)
    return quant_linear(p, a, counts, w[1], kdim, t, quant_bytes_per_elem(g, n, 0), k);
  // quant_moe_experts: permute, gate+up as one GEMM of width 2I, SwiGLU, down, combine
  const std::int64_t tokens = x.shape[0], hidden = x.shape[1];
  const std::int64_t top_k = g.input_of(n, 1).shape[1];
  const std::int64_t inner = w[1];
  k.add([&](SpanSink* s) {
    return time_gather(p,
                       copy_runs("moe permute", static_cast<double>(rows * hidden),
                                 static_cast<double>(hidden), es(t)),
                       s);
  });
  const double gate_up_bytes = (quant_bytes_per_elem(g, n, 0) + quant_bytes_per_elem(g, n, 1)) / 2;
  quant_linear(p, a, counts, 2 * inner, hidden, t, gate_up_bytes, k);
  VectorWork sw;
  sw.what = "swiglu";
  sw.row_elems = rows * inner;
  sw.in_bytes_per_elem = 2 * es(t);
  sw.out_bytes_per_elem = es(t);
  sw.compute_bytes = 4;
  sw.cycles_per_repeat = cycles(p, with_casts(Mix{4, 1, 1}, t, true));
  sw.flops = static_cast<double>(rows * inner) * 4;
  k.add([&](SpanSink* s) { return time_vector(p, sw, s); });
  quant_linear(p, a, counts, hidden, inner, t, quant_bytes_per_elem(g, n, 2), k);
  k.add([&](SpanSink* s) {
    GatherWork c = copy_runs("moe combine", static_cast<double>(tokens * top_k * hidden),
                             static_cast<double>(hidden), es(t));
    c.out_bytes = static_cast<double>(tokens * hidden) * es(t);
    const double repeats = std::ceil(static_cast<double>(hidden) * 4 / p.vector_repeat_bytes);
    c.vector_cycles = static_cast<double>(tokens * top_k) * repeats * cycles(p, Mix{3, 0, 0});
    c.flops = 2.0 * static_cast<double>(tokens * top_k * hidden);
    return time_gather(p, c, s);
  });
}

void lower_ascend(const DeviceProfile& p, const GraphState& g, const Node& n,
                  const std::vector<std::int64_t>& rows_per_expert, Kernels& k) {
  const ValueInfo& out = g.output_of(n, 0);
  const double flops = op_cost(g, n).flops;
  const auto vector = [&](VectorWork w) {
    if (w.flops == 0) w.flops = flops;
    k.add([&](SpanSink* s) { return time_vector(p, w, s); });
  };
  const auto gather = [&](GatherWork w) {
    if (w.flops == 0) w.flops = flops;
    k.add([&](SpanSink* s) { return time_gather(p, w, s); });
  };
  const std::string name(op_name(n.op));
  switch (n.op) {
    case OpKind::Matmul: {
      const auto& a = std::get<MatmulAttrs>(n.attrs);
      const Shape& sa = g.input_of(n, 0).shape;
      const Shape& sb = g.input_of(n, 1).shape;
      const std::int64_t m = a.transpose_a ? sa[-1] : sa[-2];
      const std::int64_t kk = a.transpose_a ? sa[-2] : sa[-1];
      const std::int64_t nn = a.transpose_b ? sb[-2] : sb[-1];
      const std::int64_t batch = out.shape.numel() / std::max<std::int64_t>(1, m * nn);
      GemmProblem prob;
      prob.dtype = cube_dtype(g.input_of(n, 0).dtype);
      prob.out_dtype = out.dtype;
      if (sb.rank() == 2 && !a.transpose_a) {
        prob.groups = {{batch * m, nn, kk}};  // a shared weight: the batch folds into M
      } else {
        prob.groups.assign(static_cast<std::size_t>(batch), GemmGroup{m, nn, kk});
        prob.b_shared = sb.rank() == 2;
      }
      k.add([&](SpanSink* s) { return time_gemm(p, prob, nullptr, s); });
      return;
    }
    case OpKind::GroupedMatmul: {
      const Shape& rows = g.input_of(n, 0).shape;
      const Shape& w = g.input_of(n, 1).shape;
      const auto counts = rows_per_expert.empty() ? balanced(rows[0], w[0]) : rows_per_expert;
      k.add([&](SpanSink* s) {
        return time_gemm(p, grouped(counts, w[1], w[2], cube_dtype(out.dtype)), nullptr, s);
      });
      return;
    }
    case OpKind::MoeExperts: return lower_moe_experts(p, g, n, rows_per_expert, k);
    case OpKind::AllToAll:
    case OpKind::AllGather:
    case OpKind::AllReduce:
    case OpKind::ReduceScatter: return k.add([&](SpanSink*) { return time_collective(p, g, n); });
    case OpKind::MoeExpertsEp: return lower_moe_experts_ep(p, g, n, rows_per_expert, k);
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul: return vector(elementwise(p, g, n, Mix{1, 0, 0}, false, name));
    case OpKind::Div: return vector(elementwise(p, g, n, Mix{0, 0, 1}, false, name));
    case OpKind::Exp: return vector(elementwise(p, g, n, Mix{0, 1, 0}, false, name));
    case OpKind::Relu: return vector(elementwise(p, g, n, Mix{1, 0, 0}, false, name));
    case OpKind::Sigmoid: return vector(elementwise(p, g, n, Mix{2, 1, 1}, true, name));
    case OpKind::Silu: return vector(elementwise(p, g, n, Mix{3, 1, 1}, true, name));
    case OpKind::Swiglu: return vector(elementwise(p, g, n, Mix{4, 1, 1}, true, name));
    case OpKind::Gelu: {
      const bool tanh = std::get<GeluAttrs>(n.attrs).approximation == GeluApproximation::Tanh;
      return vector(elementwise(p, g, n, tanh ? Mix{6, 1, 1} : Mix{9, 1, 1}, true, name));
    }
    case OpKind::Cast: {
      VectorWork w = elementwise(p, g, n, Mix{1, 0, 0}, false, name);
      w.compute_bytes = std::max(es(g.input_of(n, 0).dtype), es(out.dtype));
      w.cycles_per_repeat = cycles(p, Mix{1, 0, 0});
      return vector(w);
    }
    case OpKind::Softmax: {
      const int rank = out.shape.rank();
      int axis = std::get<AxisAttrs>(n.attrs).axis;
      if (axis < 0) axis += rank;
      return vector(rowwise(p, g.input_of(n, 0), out.shape[axis], Mix{5, 1, 1}, 3, name));
    }
    case OpKind::RmsNorm:
    case OpKind::LayerNorm: {
      const ValueInfo& x = g.input_of(n, 0);
      VectorWork w = rowwise(p, x, x.shape[-1],
                             n.op == OpKind::RmsNorm ? Mix{4, 0, 0} : Mix{7, 0, 0}, 2, name);
      for (std::size_t i = 1; i < n.inputs.size(); ++i)
        w.fixed_bytes += numel(g.input_of(n, i)) * es(g.input_of(n, i).dtype);
      return vector(w);
    }
    case OpKind::Rope: {
      const ValueInfo& x = g.input_of(n, 0);
      VectorWork w = rowwise(p, x, x.shape[-1], Mix{4, 0, 0}, 1, name);
      // cos and sin of each position (f32, the rotated half of D), read once per row
      w.in_bytes_per_elem += 4.0;
      return vector(w);
    }
    case OpKind::TopK: {
      const ValueInfo& x = g.input_of(n, 0);
      const double kk = static_cast<double>(std::get<TopKAttrs>(n.attrs).k);
      VectorWork w = rowwise(p, x, x.shape[-1], Mix{3 * kk, 0, 0}, kk, name);
      w.out_bytes_per_elem = kk * (es(x.dtype) + 4) / static_cast<double>(x.shape[-1]);
      return vector(w);
    }
    case OpKind::MoeRouter: {
      const auto& a = std::get<moe::RouterAttrs>(n.attrs);
      const ValueInfo& logits = g.input_of(n, 0);
      const double kk = static_cast<double>(a.top_k);
      const double groups = a.num_groups > 1 ? 2.0 * static_cast<double>(a.topk_groups) : 0.0;
      VectorWork w = rowwise(p, logits, logits.shape[1], Mix{5 + 3 * kk + groups, 1, 1}, 1, name);
      // ids and weights [T, K]; the routing tables (perm, inv, offsets) come from a second pass
      // over the T*K assignments, counted as bytes written.
      w.out_bytes_per_elem = kk * 16.0 / static_cast<double>(logits.shape[1]);
      return vector(w);
    }
    case OpKind::MoePermute: {
      const ValueInfo& x = g.input_of(n, 0);
      return gather(copy_runs(name, numel(out), static_cast<double>(x.shape[1]), es(x.dtype)));
    }
    case OpKind::MoeCombine: {
      const ValueInfo& yp = g.input_of(n, 0);
      const ValueInfo& w = g.input_of(n, 1);
      const double hidden = static_cast<double>(yp.shape[1]);
      const double assignments = numel(w);
      GatherWork gw = copy_runs(name, assignments * hidden, hidden, es(yp.dtype));
      gw.out_bytes = numel(out) * es(out.dtype);
      gw.vector_cycles =
          assignments * std::ceil(hidden * 4 / p.vector_repeat_bytes) * cycles(p, Mix{3, 0, 0});
      return gather(gw);
    }
    case OpKind::Embedding: {
      const ValueInfo& table = g.input_of(n, 0);
      return gather(
          copy_runs(name, numel(out), static_cast<double>(table.shape[1]), es(table.dtype)));
    }
    case OpKind::QuantEmbedding: {  // each row's codes gathered, dequantized on the vector cores
      const ValueInfo& data = g.input_of(n, 1);
      const double width = static_cast<double>(out.shape[-1]);
      const double rows = numel(out) / std::max(width, 1.0);
      const double row_bytes = static_cast<double>(data.shape[1]) * es(data.dtype);
      GatherWork gw = copy_runs(name, rows * row_bytes, row_bytes, 1.0);
      gw.out_bytes = numel(out) * es(out.dtype);
      gw.vector_cycles =
          rows * std::ceil(width * 4 / p.vector_repeat_bytes) * cycles(p, Mix{3, 0, 0});
      return gather(gw);
    }
    case OpKind::Slice: {
      const auto& a = std::get<SliceAttrs>(n.attrs);
      const Shape& s = out.shape;
      const int axis = a.axis < 0 ? a.axis + s.rank() : a.axis;
      double inner = 1;
      for (int d = axis + 1; d < s.rank(); ++d) inner *= static_cast<double>(s[d]);
      const double run = a.step == 1 ? inner * static_cast<double>(s[axis]) : inner;
      return gather(copy_runs(name, numel(out), run, es(out.dtype)));
    }
    case OpKind::Concat: {
      const int rank = out.shape.rank();
      int axis = std::get<AxisAttrs>(n.attrs).axis;
      if (axis < 0) axis += rank;
      double inner = 1;
      for (int d = axis + 1; d < rank; ++d) inner *= static_cast<double>(out.shape[d]);
      GatherWork total;
      total.what = name;
      for (std::size_t i = 0; i < n.inputs.size(); ++i) {
        const ValueInfo& in = g.input_of(n, i);
        const auto part =
            copy_runs(name, numel(in), inner * static_cast<double>(in.shape[axis]), es(in.dtype));
        total.segments += part.segments;
        total.out_bytes += part.out_bytes;
      }
      total.segment_bytes =
          total.segments > 0 ? total.out_bytes / static_cast<double>(total.segments) : 0;
      return gather(total);
    }
    case OpKind::Permute: {
      const auto& perm = std::get<PermuteAttrs>(n.attrs).perm;
      const int rank = out.shape.rank();
      if (!perm.empty() && perm.back() == rank - 1)  // rows move whole: a gather of rows
        return gather(
            copy_runs(name, numel(out), static_cast<double>(out.shape[-1]), es(out.dtype)));
      // the last axis moves: transposed through UB in 16x16 blocks (two instructions a repeat)
      VectorWork w = elementwise(p, g, n, Mix{2, 0, 0}, false, name);
      w.compute_bytes = es(out.dtype);
      w.cycles_per_repeat = cycles(p, Mix{2, 0, 0});
      return vector(w);
    }
    case OpKind::Reshape:
      k.add(
          [&](SpanSink*) {
            KernelResult r;
            r.kernel = "view";
            r.tiling = "reshape: a view, no kernel";
            return r;
          },
          false);
      return;
    case OpKind::Attention: {  // no tile model yet: a roofline on the cube (docs/npu-sim.md)
      const auto cost = op_cost(g, n);
      k.add([&](SpanSink*) {
        return time_roofline(p, name, cost.flops, cost.bytes, cube_dtype(out.dtype), true);
      });
      return;
    }
    case OpKind::QuantMatmul:
    case OpKind::QuantGroupedMatmul:
    case OpKind::QuantMoeExperts: return lower_quant(p, g, n, rows_per_expert, k);
  }
  throw Error(ErrorCode::Internal,
              fmt::format("npu-sim: no timing model for op kind {}", static_cast<int>(n.op)));
}

}  // namespace

std::vector<KernelResult> lower_node(const DeviceProfile& p, const GraphState& g, const Node& n,
                                     const std::vector<std::int64_t>& rows_per_expert,
                                     SpanSink* sink) {
  Kernels k(p, sink);
  if (p.model == porta::npu_sim::ModelKind::Roofline) {
    const auto cost = op_cost(g, n);
    const bool cube = n.op == OpKind::Matmul || n.op == OpKind::GroupedMatmul ||
                      n.op == OpKind::MoeExperts || n.op == OpKind::Attention ||
                      is_quant(n.op);
    if (n.op == OpKind::AllToAll || n.op == OpKind::AllGather || n.op == OpKind::AllReduce ||
        n.op == OpKind::ReduceScatter) {
      k.add([&](SpanSink*) { return time_collective(p, g, n); });
    } else if (n.op == OpKind::Reshape) {
      k.add(
          [&](SpanSink*) {
            KernelResult r;
            r.kernel = "view";
            r.tiling = "reshape: a view, no kernel";
            return r;
          },
          false);
    } else {
      k.add([&](SpanSink*) {
        return time_roofline(p, std::string(op_name(n.op)), cost.flops, cost.bytes,
                             w8a8(n) ? DType::I8 : cube_dtype(g.output_of(n, 0).dtype), cube);
      });
    }
    return k.take();
  }
  lower_ascend(p, g, n, rows_per_expert, k);
  return k.take();
}

OpReport time_node(const DeviceProfile& p, const GraphState& g, const Node& n,
                   const std::vector<std::int64_t>& rows_per_expert, SpanSink* sink) {
  if (sink != nullptr) sink->op = n.name;
  const auto kernels = lower_node(p, g, n, rows_per_expert, sink);
  DType t = g.output_of(n, 0).dtype;
  if (n.op == OpKind::Matmul || n.op == OpKind::GroupedMatmul || n.op == OpKind::MoeExperts ||
      n.op == OpKind::MoeExpertsEp)
    t = cube_dtype(g.input_of(n, 0).dtype);
  if (is_quant(n.op)) t = w8a8(n) ? DType::I8 : cube_dtype(g.input_of(n, 0).dtype);
  return compose(p, n.name, std::string(op_name(n.op)), kernels, t);
}

}  // namespace porta::detail::npu_sim

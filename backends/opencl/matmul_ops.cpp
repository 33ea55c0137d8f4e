// matmul through CLBlast: one Gemm when there is no batch (or when a weight without batch dims
// lets the batch fold into M), GemmStridedBatched when both operands carry the full batch, and
// GemmBatched with per-item offsets for any other broadcast. CLBlast computes in f32 here: f16
// and bf16 operands (bf16 weights stay bf16 in device memory) are widened into plan-owned
// scratch by our convert kernel, and a narrower output is rounded once from the f32 result.
#include <clblast.h>
#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

constexpr std::size_t kLocal = 64;

void check_clblast(clblast::StatusCode status, const char* routine) {
  if (status == clblast::StatusCode::kSuccess) return;
  const auto code = static_cast<int>(status);
  throw Error(code == CL_MEM_OBJECT_ALLOCATION_FAILURE || code == CL_OUT_OF_HOST_MEMORY
                  ? ErrorCode::OutOfMemory
                  : ErrorCode::Backend,
              fmt::format("opencl: CLBlast {} failed with status {}", routine, code));
}

std::size_t f32_offset(const DeviceArg& arg) {
  if (arg.offset % sizeof(float) != 0)
    throw Error(
        ErrorCode::Internal,
        fmt::format("opencl: a matmul operand at byte offset {} is not f32-aligned", arg.offset));
  return static_cast<std::size_t>(arg.offset / sizeof(float));
}

// An operand or result as f32 in device memory: the value itself, or plan scratch it is widened
// into (or narrowed from).
struct F32View {
  ValueId value = 0;
  DType dtype = DType::F32;
  cl_long count = 0;
  const ClBuffer* scratch = nullptr;  // null: the value is f32 already
  cl_kernel convert = nullptr;
};

F32View make_view(Device& device, LoweredOp& op, ValueId value, const ValueInfo& info) {
  F32View v;
  v.value = value;
  v.dtype = info.dtype;
  v.count = info.shape.numel();
  if (info.dtype == DType::F32) return v;
  op.buffers.push_back(allocate_buffer(device, static_cast<std::size_t>(v.count) * sizeof(float)));
  v.scratch = op.buffers.back().get();
  op.kernels.push_back(device.kernel("convert"));
  v.convert = op.kernels.back().get();
  return v;
}

DeviceArg widen(const F32View& v, const Bindings& b, Enqueuer& q) {
  if (v.scratch == nullptr) return b.at(v.value);
  set_args(v.convert, b.at(v.value), dtype_code(v.dtype), b.of(*v.scratch), dtype_code(DType::F32),
           v.count);
  q.launch(v.convert, {static_cast<std::size_t>(v.count)}, {kLocal}, "convert");
  return b.of(*v.scratch);
}

DeviceArg result_target(const F32View& v, const Bindings& b) {
  return v.scratch == nullptr ? b.at(v.value) : b.of(*v.scratch);
}

void narrow(const F32View& v, const Bindings& b, Enqueuer& q) {
  if (v.scratch == nullptr) return;
  set_args(v.convert, b.of(*v.scratch), dtype_code(DType::F32), b.at(v.value), dtype_code(v.dtype),
           v.count);
  q.launch(v.convert, {static_cast<std::size_t>(v.count)}, {kLocal}, "convert");
}

enum class BatchMode { Single, Strided, Listed };

}  // namespace

SupportResult matmul_supports(const Device&, const GraphState& g, const Node& n) {
  if (n.inputs.size() != 2 || !std::holds_alternative<MatmulAttrs>(n.attrs))
    return SupportResult::no(fmt::format("{} is not a two-operand matmul", label(n)));
  if (auto r = need_float_storage(g, n, 0, 2); !r.supported) return r;
  if (!is_float_storage(g.output_of(n, 0).dtype))
    return SupportResult::no(
        fmt::format("{} output is {}", label(n), dtype_name(g.output_of(n, 0).dtype)));
  return SupportResult::yes();
}

void matmul_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const auto& attrs = std::get<MatmulAttrs>(n.attrs);
  const ValueInfo& a = g.input_of(n, 0);
  const ValueInfo& bi = g.input_of(n, 1);
  const ValueInfo& out = g.output_of(n, 0);
  const std::int64_t M = out.shape[-2], N = out.shape[-1];
  const std::int64_t K = attrs.transpose_a ? a.shape[-2] : a.shape[-1];
  const int batch_rank = out.shape.rank() - 2;
  const Shape batch(
      std::vector<std::int64_t>(out.shape.dims().begin(), out.shape.dims().end() - 2));
  const Shape a_batch(std::vector<std::int64_t>(a.shape.dims().begin(), a.shape.dims().end() - 2));
  const Shape b_batch(
      std::vector<std::int64_t>(bi.shape.dims().begin(), bi.shape.dims().end() - 2));
  const std::int64_t batches = batch.numel();

  F32View va = make_view(device, op, n.inputs[0], a);
  F32View vb = make_view(device, op, n.inputs[1], bi);
  F32View vc = make_view(device, op, n.outputs[0], out);

  // Per-item element offsets of each operand within its value, batch dims broadcast.
  std::vector<std::size_t> a_items, b_items, c_items;
  const auto sa = broadcast_strides(a_batch, batch), sb = broadcast_strides(b_batch, batch);
  for (std::int64_t item = 0; item < batches; ++item) {
    std::int64_t rest = item, ia = 0, ib = 0;
    for (int d = batch_rank - 1; d >= 0; --d) {
      const auto dd = static_cast<std::size_t>(d);
      const std::int64_t c = rest % batch[d];
      rest /= batch[d];
      ia += c * sa[dd];
      ib += c * sb[dd];
    }
    a_items.push_back(static_cast<std::size_t>(ia * M * K));
    b_items.push_back(static_cast<std::size_t>(ib * K * N));
    c_items.push_back(static_cast<std::size_t>(item * M * N));
  }
  const bool b_shared = std::all_of(b_items.begin(), b_items.end(), [](auto o) { return o == 0; });
  const bool a_full = a_batch == batch, b_full = b_batch == batch;
  std::size_t m = static_cast<std::size_t>(M);
  BatchMode mode = BatchMode::Listed;
  if (batches <= 1) {
    mode = BatchMode::Single;
  } else if (b_shared && a_full && !attrs.transpose_a) {
    mode = BatchMode::Single;  // [batch·M, K] · [K, N] in one call
    m = static_cast<std::size_t>(M * batches);
  } else if (a_full && b_full) {
    mode = BatchMode::Strided;
  }
  op.implementation =
      fmt::format("CLBlast {}<float>{}",
                  mode == BatchMode::Single    ? "Gemm"
                  : mode == BatchMode::Strided ? "GemmStridedBatched"
                                               : "GemmBatched",
                  g.input_of(n, 0).dtype == DType::F32 && g.input_of(n, 1).dtype == DType::F32
                      ? ""
                      : ", operands widened to f32 on the device");
  const auto layout = clblast::Layout::kRowMajor;
  const auto ta = attrs.transpose_a ? clblast::Transpose::kYes : clblast::Transpose::kNo;
  const auto tb = attrs.transpose_b ? clblast::Transpose::kYes : clblast::Transpose::kNo;
  const std::size_t lda = static_cast<std::size_t>(attrs.transpose_a ? M : K);
  const std::size_t ldb = static_cast<std::size_t>(attrs.transpose_b ? K : N);
  const std::size_t ldc = static_cast<std::size_t>(N);
  const auto nn = static_cast<std::size_t>(N), kk = static_cast<std::size_t>(K);
  const auto count = static_cast<std::size_t>(batches);
  const std::size_t out_bytes = static_cast<std::size_t>(out.shape.numel()) * sizeof(float);

  op.run = [=](const Bindings& b, Enqueuer& q) {
    if (m == 0 || nn == 0 || count == 0) return;
    const DeviceArg c_arg = result_target(vc, b);
    cl_command_queue queue = q.queue();
    if (kk == 0) {  // an empty sum: zeros
      const float zero = 0.0f;
      check_cl(clEnqueueFillBuffer(queue, c_arg.mem, &zero, sizeof(zero), c_arg.offset, out_bytes,
                                   0, nullptr, q.event_slot()),
               "zero-filling a matmul with K = 0");
      narrow(vc, b, q);
      return;
    }
    const DeviceArg a_arg = widen(va, b, q);
    const DeviceArg b_arg = widen(vb, b, q);
    const std::size_t a0 = f32_offset(a_arg), b0 = f32_offset(b_arg), c0 = f32_offset(c_arg);
    if (mode == BatchMode::Single) {
      check_clblast(
          clblast::Gemm<float>(layout, ta, tb, m, nn, kk, 1.0f, a_arg.mem, a0, lda, b_arg.mem, b0,
                               ldb, 0.0f, c_arg.mem, c0, ldc, &queue, q.event_slot()),
          "Gemm");
    } else if (mode == BatchMode::Strided) {
      check_clblast(
          clblast::GemmStridedBatched<float>(layout, ta, tb, m, nn, kk, 1.0f, a_arg.mem, a0, lda,
                                             m * kk, b_arg.mem, b0, ldb, kk * nn, 0.0f, c_arg.mem,
                                             c0, ldc, m * nn, count, &queue, q.event_slot()),
          "GemmStridedBatched");
    } else {
      std::vector<std::size_t> ao(a_items), bo(b_items), co(c_items);
      for (auto& o : ao) o += a0;
      for (auto& o : bo) o += b0;
      for (auto& o : co) o += c0;
      const std::vector<float> alphas(count, 1.0f), betas(count, 0.0f);
      check_clblast(
          clblast::GemmBatched<float>(layout, ta, tb, m, nn, kk, alphas.data(), a_arg.mem,
                                      ao.data(), lda, b_arg.mem, bo.data(), ldb, betas.data(),
                                      c_arg.mem, co.data(), ldc, count, &queue, q.event_slot()),
          "GemmBatched");
    }
    narrow(vc, b, q);
  };
}

}  // namespace porta::detail::opencl

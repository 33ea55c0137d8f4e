// The cpu moe_experts_ep: the expert-parallel exchange (lib/comm/expert_dispatch, the host code
// the reference and the cpu collectives share) around the cpu backend's own expert kernels. This
// rank permutes its share of the token rows to the ranks holding their experts, the rows it
// receives run through moe_experts' grouped GEMM + SwiGLU + GEMM (moe::expert_ffn_rows) on the
// weights of its slots, read in place through TensorRef::part (never gathered), the results come
// back and are combined per token in ascending k (moe::combine_f32, moe_experts' order), the
// shared expert is added on this rank's tokens, and the ranks' token rows are gathered.
#include <cmath>
#include <optional>
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "comm/expert_dispatch.hpp"
#include "cpu_kernel.hpp"
#include "moe/moe_cpu.hpp"
#include "reference/collective_util.hpp"

namespace porta::detail::cpu {

namespace {

const float* as_f32(const TensorRef& t, std::vector<float>& scratch) {
  if (t.dtype() == DType::F32) return t.host_as<const float>();
  scratch.resize(static_cast<std::size_t>(t.shape().numel()));
  moe::widen_to_f32(t.host(), t.dtype(), t.shape().numel(), scratch.data());
  return scratch.data();
}

std::vector<std::int64_t> widen_indices(const TensorRef& t) {
  const auto* p = t.host_as<const std::int32_t>();
  return std::vector<std::int64_t>(p, p + t.shape().numel());
}

class ExpertsEpKernel final : public CpuKernel {
 public:
  ExpertsEpKernel(CpuEnv& env, const GraphState& g, const Node& n)
      : node_(n),
        attrs_(std::get<ExpertParallelAttrs>(n.attrs)),
        label_(moe::node_label(g, n)),
        gate_(env, g.input_of(n, 5).shape[1], g.input_of(n, 5).shape[2], g.input_of(n, 5).dtype),
        up_(env, g.input_of(n, 6).shape[1], g.input_of(n, 6).shape[2], g.input_of(n, 6).dtype),
        down_(env, g.input_of(n, 7).shape[1], g.input_of(n, 7).shape[2], g.input_of(n, 7).dtype) {
    if (attrs_.experts.has_shared) {
      for (std::size_t i = 0; i < 3; ++i) {
        const ValueInfo& w = g.input_of(n, 8 + i);
        shared_[i].emplace(env, w.shape[0], w.shape[1], w.dtype);
      }
    }
  }

  void run(const ExecContext& ctx) override {
    Communicator& comm = reference::communicator_for(node_, ctx, attrs_.placement.ranks());
    if (comm.rank() != attrs_.rank)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: built for rank {} but runs on rank {}", label_, attrs_.rank,
                              comm.rank()));
    const TensorRef& x_ref = ctx.input(node_, 0);
    const std::int64_t T = x_ref.shape()[0], H = x_ref.shape()[1];
    const std::int64_t K = ctx.input(node_, 1).shape()[1];
    const std::int64_t E = attrs_.placement.num_experts;
    const auto offsets = widen_indices(ctx.input(node_, 2));
    const auto perm = widen_indices(ctx.input(node_, 3));
    const auto* inv = ctx.input(node_, 4).host_as<const std::int32_t>();
    const auto P = static_cast<std::int64_t>(perm.size());
    // The routing is every rank's, so a failed check fails on every rank alike.
    moe::check_offsets(label_, ctx.input(node_, 2).host_as<const std::int32_t>(), E + 1, P);
    moe::check_perm(label_, ctx.input(node_, 3).host_as<const std::int32_t>(), P);
    moe::check_inv(label_, inv, T * K, P);

    const float* x = as_f32(x_ref, x_);
    const TensorRef &wg = ctx.input(node_, 5), &wu = ctx.input(node_, 6),
                    &wd = ctx.input(node_, 7);
    const auto slots = static_cast<std::int64_t>(wg.shape()[0]);
    const ep::LocalExperts local = [&](const float* rows, std::int64_t count,
                                       std::span<const std::int64_t> slot_offsets, float* out) {
      slot_offsets_.assign(slot_offsets.begin(), slot_offsets.end());
      moe::expert_ffn_rows(gate_, up_, down_, rows, count, wg, wu, wd, slots,
                           slot_offsets_.data(), gate_rows_, up_rows_, out);
    };
    const ep::DispatchInput in{&attrs_.placement, offsets, perm, T, K, H, x};
    const auto yp = ep::dispatch_to_experts(comm, in, local);

    const auto mine = ep::token_range(T, comm.size(), comm.rank());
    part_.resize(static_cast<std::size_t>(mine.size() * H));
    moe::combine_f32(yp.data(), H, ctx.input(node_, 1).host_as<const float>() + mine.first * K,
                     inv + mine.first * K, mine.size(), K, part_.data());
    if (attrs_.experts.has_shared) add_shared(ctx, x + mine.first * H, mine.size(), H);

    std::vector<std::int64_t> bytes(static_cast<std::size_t>(comm.size()));
    for (int r = 0; r < comm.size(); ++r)
      bytes[static_cast<std::size_t>(r)] = ep::token_range(T, comm.size(), r).size() * H *
                                           static_cast<std::int64_t>(sizeof(float));
    const TensorRef& out_ref = ctx.output(node_, 0);
    float* out = out_ref.host_as<float>();
    if (out_ref.dtype() != DType::F32) {
      result_.resize(static_cast<std::size_t>(T * H));
      out = result_.data();
    }
    comm.all_gather(part_.data(), static_cast<std::int64_t>(part_.size() * sizeof(float)), out,
                    bytes);
    if (out_ref.dtype() != DType::F32)
      moe::narrow_from_f32(out, out_ref.dtype(), T * H, out_ref.host());
  }

 private:
  // The shared expert on this rank's `tokens` rows x, scaled per token by sigmoid(x · w) when
  // gated, added onto part_: moe_experts' add_shared, on a slice of the tokens.
  void add_shared(const ExecContext& ctx, const float* x, std::int64_t tokens, std::int64_t H) {
    const std::int32_t all[2] = {0, static_cast<std::int32_t>(tokens)};
    s_down_.resize(static_cast<std::size_t>(tokens * H));
    moe::expert_ffn_rows(*shared_[0], *shared_[1], *shared_[2], x, tokens, ctx.input(node_, 8),
                         ctx.input(node_, 9), ctx.input(node_, 10), 1, all, gate_rows_, up_rows_,
                         s_down_.data());
    std::vector<float> factor(static_cast<std::size_t>(tokens), 1.0f);
    if (attrs_.experts.shared_gate == porta::moe::SharedGate::Sigmoid) {
      const TensorRef& gw = ctx.input(node_, 11);
      std::vector<float> logit(static_cast<std::size_t>(tokens));
      for (std::int64_t t0 = 0; t0 < tokens; t0 += moe::ExpertGemm::kSmallRows) {
        const std::int64_t rows = std::min<std::int64_t>(moe::ExpertGemm::kSmallRows, tokens - t0);
        moe::small_gemm(x + t0 * H, H, rows, gw.host(), gw.dtype(), H, 0, 1, logit.data() + t0, 1);
      }
      for (std::size_t t = 0; t < factor.size(); ++t) factor[t] = 1.0f / (1.0f + std::exp(-logit[t]));
    }
    for (std::size_t t = 0; t < factor.size(); ++t)
      for (std::size_t j = 0; j < static_cast<std::size_t>(H); ++j)
        part_[t * static_cast<std::size_t>(H) + j] +=
            factor[t] * s_down_[t * static_cast<std::size_t>(H) + j];
  }

  Node node_;
  ExpertParallelAttrs attrs_;
  std::string label_;
  moe::ExpertGemm gate_, up_, down_;
  std::optional<moe::ExpertGemm> shared_[3];
  std::vector<float> x_, gate_rows_, up_rows_, part_, s_down_, result_;
  std::vector<std::int32_t> slot_offsets_;
};

}  // namespace

SupportResult experts_ep_supports(const GraphState& g, const Node& n) {
  const auto* a = std::get_if<ExpertParallelAttrs>(&n.attrs);
  if (a == nullptr) return SupportResult::no("moe_experts_ep node without ExpertParallelAttrs");
  const DType x = g.input_of(n, 0).dtype;
  if (x != DType::F32 && x != DType::BF16 && x != DType::F16)
    return SupportResult::no("moe_experts_ep x must be f32, bf16 or f16");
  return moe::expert_weights_supported(g, n, "moe_experts_ep");
}

std::unique_ptr<CpuKernel> lower_experts_ep(CpuEnv& env, const GraphState& g, const Node& n) {
  return std::make_unique<ExpertsEpKernel>(env, g, n);
}

}  // namespace porta::detail::cpu

// attention: softmax(scale · q·kᵀ) · v per query head, causal or not, grouped-query, optionally
// after a KV cache prefix read at cache_len (checked at run time). oneDNN 2.6 has no attention
// primitive; this is ours: per block of query rows (a few tokens, all heads sharing one kv head
// or one head's tokens) the scores and the weighted values are two f32 GEMMs through oneDNN's
// sgemm, with a max-subtracted softmax and the causal mask between them, blocks in parallel,
// per-slot scratch sized at compile time.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>

#include "cpu_util.hpp"
#include "dense_ops.hpp"
#include "widened_io.hpp"

namespace porta::detail::cpu {

namespace {

class AttentionKernel final : public CpuKernel {
 public:
  AttentionKernel(const GraphState& g, const Node& n)
      : q_(g, n.inputs[0]), k_(g, n.inputs[1]), v_(g, n.inputs[2]), out_(g, n.outputs[0]) {
    const auto& attrs = std::get<AttentionAttrs>(n.attrs);
    const Shape& q = g.input_of(n, 0).shape;
    const Shape& k = g.input_of(n, 1).shape;
    const Shape& v = g.input_of(n, 2).shape;
    q_tokens_ = q[0];
    q_heads_ = q[1];
    key_dim_ = q[2];
    kv_tokens_ = k[0];
    kv_heads_ = k[1];
    value_dim_ = v[2];
    causal_ = attrs.causal;
    scale_ = attrs.scale != 0.0f
                 ? attrs.scale
                 : static_cast<float>(1.0 / std::sqrt(static_cast<double>(key_dim_)));
    if (attrs.kv_cache) {
      with_cache_ = true;
      k_cache_ = F32Operand(g, n.inputs[3]);
      v_cache_ = F32Operand(g, n.inputs[4]);
      cache_len_ = n.inputs[5];
      cache_len_i64_ = g.input_of(n, 5).dtype == DType::I64;
      capacity_ = g.input_of(n, 3).shape[0];
    }
    label_ = fmt::format("attention '{}'", n.name);
    // One kv head (MQA, MLA's shared latent): every query head of a token block reads the same
    // keys, so the block's rows are all its (token, head) pairs, contiguous in q. Else one head's
    // tokens, strided by the heads. About 128 query rows per block.
    one_kv_head_ = kv_heads_ == 1;
    block_tokens_ =
        one_kv_head_ ? std::max<std::int64_t>(1, 128 / std::max<std::int64_t>(q_heads_, 1)) : 64;
    block_tokens_ =
        std::clamp<std::int64_t>(block_tokens_, 1, std::max<std::int64_t>(q_tokens_, 1));
    const std::int64_t rows = block_tokens_ * (one_kv_head_ ? q_heads_ : 1);
    slots_ = std::max<std::int64_t>(cpu_threads(), 1);
    slot_stride_ = rows * (capacity_ + kv_tokens_) + rows;
    scratch_ = F32Scratch(static_cast<std::size_t>(slots_ * slot_stride_));
  }

  void run(const ExecContext& ctx) override {
    std::int64_t cached = 0;
    if (with_cache_) {
      const void* p = value_ptr(ctx, cache_len_);
      cached = cache_len_i64_ ? *static_cast<const std::int64_t*>(p)
                              : *static_cast<const std::int32_t*>(p);
      if (cached < 0 || cached > capacity_)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("cpu backend: {}: cache_len {} is outside [0, {}] (the cache "
                                "holds {} positions)",
                                label_, cached, capacity_, capacity_));
    }
    const float* q = q_.read(ctx);
    const float* k = k_.read(ctx);
    const float* v = v_.read(ctx);
    const float* kc =
        with_cache_
            ? k_cache_.read_prefix(ctx, static_cast<std::size_t>(cached * kv_heads_ * key_dim_))
            : nullptr;
    const float* vc =
        with_cache_
            ? v_cache_.read_prefix(ctx, static_cast<std::size_t>(cached * kv_heads_ * value_dim_))
            : nullptr;
    float* out = out_.write(ctx);
    const std::int64_t keys = cached + kv_tokens_;
    // Work items: (block of query tokens, kv head or query head). Round-robin over the slots so
    // that each slot gets early (short, causal) and late (long) blocks alike.
    const std::int64_t blocks = (q_tokens_ + block_tokens_ - 1) / block_tokens_;
    const std::int64_t per_block = one_kv_head_ ? 1 : q_heads_;
    const std::int64_t items = blocks * per_block;
    const std::int64_t slots = std::min<std::int64_t>(slots_, items);
    // Decode over one kv head (MQA, MLA's latent) at a long enough context: the token's heads
    // split into one group per thread, each its own pair of GEMMs (MLA at 128 cached positions:
    // 2.4 M multiply-adds a layer, about 120 us on one thread).
    const std::int64_t head_groups =
        one_kv_head_ && q_tokens_ == 1 && slots_ > 1 &&
                keys * (key_dim_ + value_dim_) * q_heads_ >= kSplitHeadsWork
            ? std::min(slots_, q_heads_)
            : 1;
    if (head_groups > 1) {
      parallel_for(head_groups, 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t g = begin; g < end; ++g) {
          const std::int64_t first = g * q_heads_ / head_groups;
          run_item(0, first, q, k, v, kc, vc, cached, keys, out, scratch_.data() + g * slot_stride_,
                   (g + 1) * q_heads_ / head_groups - first);
        }
      });
      out_.finish(ctx);
      return;
    }
    // One block (decode: a token's heads over one kv head): sgemm would split it across the
    // threads, two barriers per GEMM for ~20 MFLOP; on one thread it is a fraction of a
    // millisecond, and no thread waits for another the OS descheduled.
    if (items == 1) {
      const int threads = omp_get_max_threads();
      omp_set_num_threads(1);
      try {
        run_item(0, 0, q, k, v, kc, vc, cached, keys, out, scratch_.data(), q_heads_);
      } catch (...) {
        omp_set_num_threads(threads);
        throw;
      }
      omp_set_num_threads(threads);
      out_.finish(ctx);
      return;
    }
    parallel_for(slots, 1, [&](std::int64_t slot_begin, std::int64_t slot_end) {
      for (std::int64_t slot = slot_begin; slot < slot_end; ++slot)
        for (std::int64_t item = slot; item < items; item += slots)
          run_item(item / per_block, item % per_block, q, k, v, kc, vc, cached, keys, out,
                   scratch_.data() + slot * slot_stride_, q_heads_);
    });
    out_.finish(ctx);
  }

 private:
  // softmax(scale · Q·Kᵀ) · V for one block of query rows as two GEMMs (oneDNN's sgemm, over the
  // cached keys then the new ones), the causal mask applied per row between them. `scratch`
  // holds the block's scores [rows, visible] and the rows' 1 / Σ. Over one kv head, the block
  // is its tokens' heads [head, head + heads) (all q_heads_ unless decode splits them); over
  // several, query head `head` alone (`heads` unused).
  void run_item(std::int64_t block, std::int64_t head, const float* q, const float* k,
                const float* v, const float* kc, const float* vc, std::int64_t cached,
                std::int64_t keys, float* out, float* scratch, std::int64_t heads) const {
    const std::int64_t i0 = block * block_tokens_;
    const std::int64_t nt = std::min(block_tokens_, q_tokens_ - i0);
    const std::int64_t group = q_heads_ / std::max<std::int64_t>(kv_heads_, 1);
    const std::int64_t rows = one_kv_head_ ? nt * heads : nt;
    const std::int64_t gkv = one_kv_head_ ? 0 : head / group;
    // Row r's query token, and where its q and output rows are.
    const std::int64_t heads_per_token = one_kv_head_ ? heads : 1;
    const float* qa = q + (i0 * q_heads_ + head) * key_dim_;
    const std::int64_t lda = one_kv_head_ ? key_dim_ : q_heads_ * key_dim_;
    float* o = out + (i0 * q_heads_ + head) * value_dim_;
    const std::int64_t ldo = one_kv_head_ ? value_dim_ : q_heads_ * value_dim_;
    auto visible_of = [&](std::int64_t i) {
      return causal_ ? std::clamp<std::int64_t>(keys - q_tokens_ + i + 1, 0, keys) : keys;
    };
    const std::int64_t width = visible_of(i0 + nt - 1);  // the block's widest row
    if (width == 0 || value_dim_ == 0) {
      for (std::int64_t r = 0; r < rows; ++r) std::fill_n(o + r * ldo, value_dim_, 0.0f);
      return;
    }
    float* scores = scratch;
    float* inv = scratch + rows * width;
    const std::int64_t ldk = kv_heads_ * key_dim_, ldv = kv_heads_ * value_dim_;
    const std::int64_t from_cache = std::min(cached, width), fresh = width - from_cache;
    if (from_cache > 0)
      sgemm('N', 'T', rows, from_cache, key_dim_, scale_, qa, lda, kc + gkv * key_dim_, ldk, 0.0f,
            scores, width);
    if (fresh > 0)
      sgemm('N', 'T', rows, fresh, key_dim_, scale_, qa, lda, k + gkv * key_dim_, ldk, 0.0f,
            scores + from_cache, width);
    for (std::int64_t r = 0; r < rows; ++r) {
      float* s = scores + r * width;
      const std::int64_t visible = visible_of(i0 + r / heads_per_token);
      float max_score = -std::numeric_limits<float>::infinity();
      for (std::int64_t j = 0; j < visible; ++j) max_score = std::max(max_score, s[j]);
      float sum = 0.0f;
      for (std::int64_t j = 0; j < visible; ++j) {
        s[j] = std::exp(s[j] - max_score);
        sum += s[j];
      }
      std::fill(s + visible, s + width, 0.0f);
      inv[r] = visible > 0 ? 1.0f / sum : 0.0f;
    }
    if (from_cache > 0)
      sgemm('N', 'N', rows, value_dim_, from_cache, 1.0f, scores, width, vc + gkv * value_dim_, ldv,
            0.0f, o, ldo);
    if (fresh > 0)
      sgemm('N', 'N', rows, value_dim_, fresh, 1.0f, scores + from_cache, width,
            v + gkv * value_dim_, ldv, from_cache > 0 ? 1.0f : 0.0f, o, ldo);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < value_dim_; ++c) o[r * ldo + c] *= inv[r];
  }

  // Row-major C = alpha · op(A) · op(B) + beta · C through oneDNN's sgemm (single-threaded
  // inside our parallel region).
  void sgemm(char ta, char tb, std::int64_t m, std::int64_t n, std::int64_t kk, float alpha,
             const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
             float* c, std::int64_t ldc) const {
    const dnnl_status_t status = dnnl_sgemm(ta, tb, m, n, kk, alpha, a, lda, b, ldb, beta, c, ldc);
    if (status != dnnl_success)
      throw Error(ErrorCode::Backend,
                  fmt::format("cpu backend: {}: oneDNN sgemm {}x{}x{} failed (status {})", label_,
                              m, n, kk, static_cast<int>(status)));
  }

  // Multiply-adds of a decode step over one kv head from which its heads are split.
  static constexpr std::int64_t kSplitHeadsWork = std::int64_t{1} << 20;

  F32Operand q_, k_, v_, out_, k_cache_, v_cache_;
  bool with_cache_ = false, cache_len_i64_ = false, causal_ = true, one_kv_head_ = false;
  ValueId cache_len_ = 0;
  std::int64_t q_tokens_ = 0, q_heads_ = 0, key_dim_ = 0, kv_tokens_ = 0, kv_heads_ = 0;
  std::int64_t value_dim_ = 0, capacity_ = 0, block_tokens_ = 1, slots_ = 1, slot_stride_ = 0;
  float scale_ = 1.0f;
  std::string label_;
  F32Scratch scratch_;
};

}  // namespace

SupportResult supports_attention(const GraphState& g, const Node& n) {
  for (std::size_t i = 0; i < std::min<std::size_t>(n.inputs.size(), 5); ++i)
    if (!is_f32_or_bf16(g.input_of(n, i).dtype)) return float_dtype_refusal(g.input_of(n, i).dtype);
  return SupportResult::yes();
}

std::unique_ptr<CpuKernel> lower_attention(CpuEnv&, const GraphState& g, const Node& n) {
  if (g.output_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<AttentionKernel>(g, n);
}

}  // namespace porta::detail::cpu

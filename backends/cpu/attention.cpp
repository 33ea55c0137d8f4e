// attention: softmax(scale · q·kᵀ) · v per query head, causal or not, grouped-query, optionally
// after a KV cache prefix read at cache_len (checked at run time). oneDNN 2.6 has no attention
// primitive; this is a loop of our own over (query token, head) pairs in parallel, with f32
// vectorised dot products, a max-subtracted softmax and per-thread scratch sized at compile time.
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

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
    stride_ = capacity_ + kv_tokens_ + value_dim_;
    scratch_ = F32Scratch(static_cast<std::size_t>(cpu_threads()) *
                          static_cast<std::size_t>(std::max<std::int64_t>(stride_, 1)));
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
    const std::int64_t group = q_heads_ / std::max<std::int64_t>(kv_heads_, 1);
    const std::int64_t dk = key_dim_, dv = value_dim_, hkv = kv_heads_;

    // One scratch slice per chunk (never per OpenMP thread number, which belongs to the caller's
    // team when run() is called from inside a parallel region).
    const std::int64_t pairs = q_tokens_ * q_heads_;
    const std::int64_t work = pairs * std::max<std::int64_t>(keys * (dk + dv), 1);
    const std::int64_t chunks =
        std::clamp<std::int64_t>(work / 4096, 1, std::min<std::int64_t>(cpu_threads(), pairs));
    parallel_for(chunks, 1, [&](std::int64_t chunk_begin, std::int64_t chunk_end) {
      for (std::int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
        const std::int64_t begin = pairs * chunk / chunks, end = pairs * (chunk + 1) / chunks;
        float* scores = scratch_.data() + chunk * stride_;
        float* acc = scores + capacity_ + kv_tokens_;
        for (std::int64_t pair = begin; pair < end; ++pair) {
          const std::int64_t i = pair / q_heads_, h = pair % q_heads_, gkv = h / group;
          float* o = out + pair * dv;
          const std::int64_t visible =
              causal_ ? std::clamp<std::int64_t>(keys - q_tokens_ + i + 1, 0, keys) : keys;
          if (visible == 0) {
            std::fill(o, o + dv, 0.0f);
            continue;
          }
          const float* query = q + pair * dk;
          float max_score = -std::numeric_limits<float>::infinity();
          for (std::int64_t j = 0; j < visible; ++j) {
            const float* key =
                j < cached ? kc + (j * hkv + gkv) * dk : k + ((j - cached) * hkv + gkv) * dk;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (std::int64_t c = 0; c < dk; ++c) dot += query[c] * key[c];
            scores[j] = dot * scale_;
            max_score = std::max(max_score, scores[j]);
          }
          float sum = 0.0f;
          for (std::int64_t j = 0; j < visible; ++j) {
            scores[j] = std::exp(scores[j] - max_score);
            sum += scores[j];
          }
          std::fill(acc, acc + dv, 0.0f);
          for (std::int64_t j = 0; j < visible; ++j) {
            const float* value =
                j < cached ? vc + (j * hkv + gkv) * dv : v + ((j - cached) * hkv + gkv) * dv;
            const float w = scores[j];
#pragma omp simd
            for (std::int64_t c = 0; c < dv; ++c) acc[c] += w * value[c];
          }
          const float inv = 1.0f / sum;
          for (std::int64_t c = 0; c < dv; ++c) o[c] = acc[c] * inv;
        }
      }
    });
    out_.finish(ctx);
  }

 private:
  F32Operand q_, k_, v_, out_, k_cache_, v_cache_;
  bool with_cache_ = false, cache_len_i64_ = false, causal_ = true;
  ValueId cache_len_ = 0;
  std::int64_t q_tokens_ = 0, q_heads_ = 0, key_dim_ = 0, kv_tokens_ = 0, kv_heads_ = 0;
  std::int64_t value_dim_ = 0, capacity_ = 0, stride_ = 0;
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

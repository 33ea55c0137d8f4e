// Loading: every tensor the config implies, under its Hugging Face name, checked for presence,
// dtype and shape; quantized linear weights (FP8, compressed-tensors, msModelSlim) converted to
// the canonical QuantizedTensor by their format's reader (lib/model/quant_formats.hpp), or
// dequantised when LoadOptions::dequantize says so; per-expert matrices stacked for moe_experts
// as a table of views (no copy); MLA's kv_b_proj split per head for the absorbed attention (a
// small copy). Everything else is a view of the mapping. Every copy is counted in LoadStats with
// its reason.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>

#include <fmt/format.h>

#include <porta/io.hpp>

#include "model/model_impl.hpp"

namespace porta::model {

namespace {

class Loader {
 public:
  Loader(const TensorSource& source, const LoadOptions& options, Model::Impl& out,
         const QuantFormatReader* reader)
      : src_(source), options_(options), out_(out), c_(out.config), reader_(reader) {
    if (reader_) out_.quant_format = reader_->name();
  }

  void load_all() {
    const auto h = c_.hidden_size;
    // A GGUF keeps it in its blocks, gathered by quant_embedding.
    keep_linear_weight("model.embed_tokens.weight", "model.embed_tokens.weight",
                       {c_.vocab_size, h}, Use::EmbeddingTable);
    for (std::int64_t l = 0; l < c_.num_layers; ++l) {
      const std::string p = PreparedNames::layer(l);
      keep(p + "input_layernorm.weight", {h});
      keep(p + "post_attention_layernorm.weight", {h});
      if (c_.mla)
        load_mla(l);
      else
        load_attention(l);
      if (c_.is_moe_layer(l))
        load_moe(l);
      else
        load_dense_mlp(p + "mlp.", c_.intermediate_size);
    }
    keep("model.norm.weight", {h});
    if (src_.contains("lm_head.weight") || !c_.tie_word_embeddings) {
      keep_linear_weight("lm_head.weight", "lm_head.weight", {c_.vocab_size, h});
      out_.lm_head_name = "lm_head.weight";
    } else {
      out_.lm_head_name = "model.embed_tokens.weight";
    }
  }

 private:
  void copied(const std::string& why, std::uint64_t bytes) {
    out_.stats.copied_bytes += bytes;
    out_.stats.copies[why] += bytes;
  }

  // The tensor `name` with shape `expected`, dequantised or converted as the options say.
  Tensor fetch(const std::string& name, const Shape& expected) {
    if (!src_.contains(name))
      throw Error(
          ErrorCode::NotFound,
          fmt::format("{}: tensor '{}' is missing (config.json implies {} for {} '{}')", src_.where,
                      name, expected.to_string(), family_name(c_.family), c_.model_type));
    Tensor t = src_.get(name);
    if (t.shape() != expected)
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("{}: tensor '{}' has shape {} but config.json implies {}", src_.where,
                              name, t.shape().to_string(), expected.to_string()));
    ++out_.stats.tensors;
    if (t.dtype() == DType::F8E4M3) {
      if (!c_.fp8_block)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{}: tensor '{}' is f8_e4m3 but config.json has no "
                                "quantization_config.weight_block_size",
                                src_.where, name));
      const std::string scale_name = name + "_scale_inv";
      if (!src_.contains(scale_name))
        throw Error(ErrorCode::NotFound,
                    fmt::format("{}: tensor '{}' is missing (the block scales of the f8_e4m3 "
                                "weight '{}')",
                                src_.where, scale_name, name));
      const DType to = options_.weight_dtype.value_or(options_.fp8_dtype);
      t = dequantize_fp8(t, src_.get(scale_name), *c_.fp8_block,
                         to == DType::F32 ? DType::F32 : DType::BF16, name);
      if (t.dtype() != to) t = t.to(to);
      out_.stats.dequantized_bytes += t.nbytes();
      return t;
    }
    if (!is_floating(t.dtype()))
      throw Error(ErrorCode::DTypeMismatch,
                  fmt::format("{}: tensor '{}' is {}; weights must be floating point", src_.where,
                              name, dtype_name(t.dtype())));
    if (options_.weight_dtype && t.dtype() != *options_.weight_dtype) {
      t = t.to(*options_.weight_dtype);
      copied(fmt::format("converted to {} (--weight-dtype)", dtype_name(t.dtype())), t.nbytes());
    } else {
      out_.stats.mapped_bytes += t.nbytes();
    }
    return t;
  }

  void keep(const std::string& name, const Shape& expected) {
    out_.weights[name] = fetch(name, expected);
  }

  // What a weight is to its format's reader: a linear layer's, or the embedding table (which a
  // format may keep quantized for quant_embedding to gather).
  enum class Use { Linear, EmbeddingTable };

  // The weight as its format's reader gives it: nullopt when stored unquantized.
  std::optional<QuantizedWeight> quantized(const std::string& name, const Shape& expected,
                                           Use use = Use::Linear) {
    if (!reader_) return std::nullopt;
    const CopyReport report = [this](const std::string& why, std::uint64_t bytes) {
      copied(why, bytes);
    };
    auto q = use == Use::Linear ? reader_->linear(src_, name, expected, report)
                                : reader_->embedding_table(src_, name, expected, report);
    if (q) ++out_.stats.tensors;
    return q;
  }
  Tensor dequantized(const QuantizedWeight& q) {
    const DType to = options_.weight_dtype.value_or(options_.fp8_dtype);
    Tensor t = dequantize(q.weight);
    if (t.dtype() != to) t = t.to(to);
    out_.stats.dequantized_bytes += t.nbytes();
    return t;
  }
  void keep_quantized(const std::string& prepared, QuantizedWeight q) {
    out_.stats.quantized_tensors += 1;
    out_.stats.quantized_bytes += q.weight.nbytes();
    out_.quantized[prepared] = std::move(q);
  }
  // A linear weight (or the embedding table): kept quantized when the checkpoint quantized it
  // (unless LoadOptions::dequantize), else as fetch() gives it.
  void keep_linear_weight(const std::string& prepared, const std::string& name,
                          const Shape& expected, Use use = Use::Linear) {
    auto q = quantized(name, expected, use);
    if (!q)
      out_.weights[prepared] = fetch(name, expected);
    else if (options_.dequantize)
      out_.weights[prepared] = dequantized(*q);
    else
      keep_quantized(prepared, std::move(*q));
  }
  void keep_as(const std::string& prepared, const std::string& name, const Shape& expected) {
    keep_linear_weight(prepared, name, expected);
  }
  void keep_linear(const std::string& prefix, std::int64_t out_features, std::int64_t in_features,
                   bool bias = false) {
    keep_linear_weight(prefix + ".weight", prefix + ".weight", {out_features, in_features});
    if (!bias) return;
    // The bias is added to f32 activations, so it is kept in f32 (a small copy).
    Tensor b = fetch(prefix + ".bias", {out_features});
    if (b.dtype() != DType::F32) {
      b = b.to(DType::F32);
      copied("biases widened to f32", b.nbytes());
    }
    out_.weights[prefix + ".bias"] = b;
  }

  void load_mla(std::int64_t l) {
    const std::string p = PreparedNames::layer(l) + "self_attn.";
    const auto h = c_.hidden_size;
    const auto nh = c_.num_heads;
    const auto qk = c_.query_head_dim();
    const auto r = c_.kv_lora_rank;
    if (c_.q_lora_rank > 0) {
      keep_linear(p + "q_a_proj", c_.q_lora_rank, h);
      keep(p + "q_a_layernorm.weight", {c_.q_lora_rank});
      keep_linear(p + "q_b_proj", nh * qk, c_.q_lora_rank);
    } else {
      keep_linear(p + "q_proj", nh * qk, h);
    }
    keep_linear(p + "kv_a_proj_with_mqa", r + c_.qk_rope_head_dim, h);
    keep(p + "kv_a_layernorm.weight", {r});
    keep_linear(p + "o_proj", h, nh * c_.v_head_dim);

    // kv_b_proj [H·(nope + v), r] -> per head [r, nope] (keys, transposed) and [v, r] (values):
    // the absorbed form attends over the cached latent directly (see docs/models.md). Both halves
    // end up [out, in] per head, the layout the backends stream rows of.
    const auto nope = c_.qk_nope_head_dim;
    const auto vd = c_.v_head_dim;
    if (take_kv_b_half(PreparedNames::k_absorb(l), PreparedNames::kv_b_key_half(l),
                       {nh, r, nope})) {
      if (!take_kv_b_half(PreparedNames::v_absorb(l), PreparedNames::kv_b_value_half(l),
                          {nh, vd, r}))
        throw Error(
            ErrorCode::NotFound,
            fmt::format("{}: '{}' is missing (its key half '{}' is there)", src_.where,
                        PreparedNames::kv_b_value_half(l), PreparedNames::kv_b_key_half(l)));
      return;
    }
    const Shape shape{nh * (nope + vd), r};
    const auto kv_b_q = quantized(p + "kv_b_proj.weight", shape);
    Tensor keys;  // [H·nope, r]
    if (kv_b_q && !options_.dequantize && kv_b_q->weight.scheme.format == QuantFormat::GgmlBlocks) {
      // ggml blocks run along r, so the value half stays packed (whole rows, regathered per
      // head); the key half is multiplied by its columns, so it is dequantized to be transposed.
      QuantizedWeight values = *kv_b_q;
      values.weight =
          packed_head_rows(kv_b_q->weight, nh, nope, vd, {nh, vd, r}, PreparedNames::v_absorb(l));
      copied("MLA kv_b_proj's value half, packed rows regathered per head",
             values.weight.data.nbytes());
      keys = dequantized(
          {packed_head_rows(kv_b_q->weight, nh, 0, nope, {nh * nope, r}, p + "kv_b_proj.weight"),
           kv_b_q->activation, kv_b_q->input});
      keep_quantized(PreparedNames::v_absorb(l), std::move(values));
    } else {
      // A quantized kv_b_proj of another format is dequantised: its halves feed batched matmuls.
      const Tensor kv_b = kv_b_q ? dequantized(*kv_b_q) : fetch(p + "kv_b_proj.weight", shape);
      keys = head_rows(kv_b, nh, 0, nope);
      out_.weights[PreparedNames::v_absorb(l)] = head_rows(kv_b, nh, nope, vd).reshape({nh, vd, r});
      copied("MLA kv_b_proj split per head into its key and value halves (absorbed attention)",
             kv_b.nbytes());
    }
    out_.weights[PreparedNames::k_absorb(l)] = transposed_heads(keys, nh);
  }

  // Rows [first, first + count) of each of the `heads` groups of kv_b's rows (nope + v per head),
  // as a [heads · count, ...] tensor: whole rows, so packed blocks move as they are.
  static Tensor head_rows(const Tensor& t, std::int64_t heads, std::int64_t first,
                          std::int64_t count) {
    const std::int64_t per_head = t.shape()[0] / heads;
    const std::size_t row = static_cast<std::size_t>(t.shape()[1]) * dtype_size(t.dtype());
    Tensor out = Tensor::empty({heads * count, t.shape()[1]}, t.dtype());
    const auto* src = static_cast<const std::byte*>(t.data());
    auto* dst = static_cast<std::byte*>(out.data());
    for (std::int64_t h = 0; h < heads; ++h)
      std::memcpy(dst + static_cast<std::size_t>(h * count) * row,
                  src + static_cast<std::size_t>(h * per_head + first) * row,
                  static_cast<std::size_t>(count) * row);
    return out;
  }
  // head_rows() of a kv_b kept in ggml blocks (each row whole blocks), as packed weights of
  // logical shape `logical` ([heads · count, r] or [heads, count, r]).
  static QuantizedTensor packed_head_rows(const QuantizedTensor& w, std::int64_t heads,
                                          std::int64_t first, std::int64_t count,
                                          const Shape& logical, const std::string& name) {
    QuantizedTensor out = w;
    out.data = head_rows(w.data, heads, first, count).reshape(quant_data_shape(logical, w.scheme));
    out.shape = logical;
    out.scale = Tensor::view(nullptr, quant_scale_shape(logical, w.scheme), w.scheme.scale_dtype);
    validate(out, name);
    return out;
  }
  // [heads · n, m] -> [heads, m, n]: each head's rows become its columns.
  static Tensor transposed_heads(const Tensor& t, std::int64_t heads) {
    const std::int64_t n = t.shape()[0] / heads, m = t.shape()[1];
    const std::size_t size = dtype_size(t.dtype());
    Tensor out = Tensor::empty({heads, m, n}, t.dtype());
    const auto* src = static_cast<const std::byte*>(t.data());
    auto* dst = static_cast<std::byte*>(out.data());
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < m; ++j)
          std::memcpy(dst + static_cast<std::size_t>((h * m + j) * n + i) * size,
                      src + static_cast<std::size_t>((h * n + i) * m + j) * size, size);
    return out;
  }

  // A half of kv_b_proj the source stores already split (PreparedNames::kv_b_key_half): kept as
  // keep_linear_weight keeps a matrix. False when the source has no such tensor.
  bool take_kv_b_half(const std::string& prepared, const std::string& name, const Shape& expected) {
    if (!src_.contains(name) && !(reader_ && reader_->holds(name))) return false;
    keep_linear_weight(prepared, name, expected);
    return true;
  }

  void load_attention(std::int64_t l) {
    const std::string p = PreparedNames::layer(l) + "self_attn.";
    const auto h = c_.hidden_size;
    const auto d = c_.head_dim;
    keep_linear(p + "q_proj", c_.num_heads * d, h, c_.attention_bias);
    keep_linear(p + "k_proj", c_.num_kv_heads * d, h, c_.attention_bias);
    keep_linear(p + "v_proj", c_.num_kv_heads * d, h, c_.attention_bias);
    keep_linear(p + "o_proj", h, c_.num_heads * d);
    if (c_.qk_norm) {
      keep(p + "q_norm.weight", {d});
      keep(p + "k_norm.weight", {d});
    }
  }

  void load_dense_mlp(const std::string& p, std::int64_t inter) {
    keep_linear(p + "gate_proj", inter, c_.hidden_size);
    keep_linear(p + "up_proj", inter, c_.hidden_size);
    keep_linear(p + "down_proj", c_.hidden_size, inter);
  }

  // Experts e = 0..E-1 of `names(e)`, each [rows, cols], as one [E, rows, cols] tensor whose
  // parts stay where they are (views of the mapping): Tensor::stack_views, no copy.
  // Under expert parallelism only `experts` (this rank's slots), in slot order: the others are
  // never fetched, so their pages are never touched.
  void stack(const std::string& prepared, const std::function<std::string(std::int64_t)>& names,
             std::int64_t rows, std::int64_t cols, const std::vector<std::int64_t>& experts) {
    std::vector<Tensor> parts;
    std::vector<QuantizedWeight> qparts;
    parts.reserve(experts.size());
    for (const std::int64_t e : experts) {
      auto q = quantized(names(e), {rows, cols});
      if (q && !options_.dequantize) {
        if (!parts.empty())
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("{}: expert tensor '{}' is quantized but the first expert's is not",
                                  src_.where, names(e)));
        if (!qparts.empty() && (q->weight.scheme != qparts.front().weight.scheme ||
                                q->activation != qparts.front().activation ||
                                q->input != qparts.front().input))
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("{}: expert tensor '{}' is quantized as {} but the first expert's as {} "
                                  "(scheme): one layer's experts share one scheme",
                                  src_.where, names(e), describe(q->weight.scheme),
                                  describe(qparts.front().weight.scheme)));
        qparts.push_back(std::move(*q));
        continue;
      }
      if (!qparts.empty())
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{}: expert tensor '{}' is not quantized but the first expert's is",
                                src_.where, names(e)));
      Tensor t = q ? dequantized(*q) : fetch(names(e), {rows, cols});
      if (!parts.empty() && t.dtype() != parts.front().dtype()) {
        t = t.to(parts.front().dtype());
        copied("experts stored in mixed dtypes, converted to the first expert's", t.nbytes());
      }
      parts.push_back(std::move(t));
    }
    if (qparts.empty()) {
      out_.weights[prepared] = Tensor::stack_views(parts);
      return;
    }
    // [E, N, K] codes, scales and zero points: tables of views, like float experts.
    auto gather = [&](Tensor QuantizedTensor::*field) {
      std::vector<Tensor> v;
      for (const auto& q : qparts) v.push_back(q.weight.*field);
      return Tensor::stack_views(v);
    };
    QuantizedWeight stacked = qparts.front();
    stacked.weight.data = gather(&QuantizedTensor::data);
    stacked.weight.scale = gather(&QuantizedTensor::scale);
    if (stacked.weight.scheme.zero_point) stacked.weight.zero = gather(&QuantizedTensor::zero);
    stacked.weight.shape = Shape{static_cast<std::int64_t>(experts.size()), rows, cols};
    validate(stacked.weight, prepared);
    out_.stats.quantized_tensors += experts.size() - 1;
    keep_quantized(prepared, std::move(stacked));
  }

  // The experts of MoE layer `l` this process holds: all of them, or under expert parallelism
  // its rank's slots.
  std::vector<std::int64_t> local_experts(std::int64_t l) const {
    std::vector<std::int64_t> all;
    if (!options_.ep_placement) {
      for (std::int64_t e = 0; e < c_.num_experts; ++e) all.push_back(e);
      return all;
    }
    const auto it = options_.ep_placement->layers.find(l);
    if (it == options_.ep_placement->layers.end())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("the expert placement has no entry for MoE layer {}", l));
    const ep::ExpertPlacement& p = it->second;
    if (p.num_experts != c_.num_experts)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("the expert placement of layer {} is for {} experts; the model has {}",
                              l, p.num_experts, c_.num_experts));
    if (options_.ep_rank < 0 || options_.ep_rank >= p.ranks())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("rank {} is not among the {} ranks of layer {}'s placement",
                              options_.ep_rank, p.ranks(), l));
    return p.rank_experts[static_cast<std::size_t>(options_.ep_rank)];
  }

  void load_moe(std::int64_t l) {
    const std::string p = PreparedNames::layer(l);
    const auto h = c_.hidden_size;
    const auto e = c_.num_experts;
    const auto inter = c_.moe_intermediate_size;
    const bool mixtral = c_.family == Family::Mixtral;
    const std::string block = p + (mixtral ? "block_sparse_moe." : "mlp.");
    keep_as(PreparedNames::moe(l, "gate"), block + "gate.weight", {e, h});
    if (c_.router.use_bias) {
      Tensor bias = fetch(block + "gate.e_score_correction_bias", {e});
      if (bias.dtype() != DType::F32) {
        bias = bias.to(DType::F32);
        copied("biases widened to f32", bias.nbytes());
      }
      out_.weights[PreparedNames::moe(l, "bias")] = bias;
    }
    const std::string experts = block + "experts.";
    auto expert = [&](const char* hf) {
      return
          [&experts, hf](std::int64_t i) { return fmt::format("{}{}.{}.weight", experts, i, hf); };
    };
    const auto mine = local_experts(l);
    stack(PreparedNames::moe(l, "experts.gate"), expert(mixtral ? "w1" : "gate_proj"), inter, h,
          mine);
    stack(PreparedNames::moe(l, "experts.up"), expert(mixtral ? "w3" : "up_proj"), inter, h, mine);
    stack(PreparedNames::moe(l, "experts.down"), expert(mixtral ? "w2" : "down_proj"), h, inter,
          mine);
    if (c_.shared_intermediate_size > 0) {
      const auto is = c_.shared_intermediate_size;
      const std::string s =
          block + (c_.family == Family::Qwen2Moe ? "shared_expert." : "shared_experts.");
      keep_as(PreparedNames::moe(l, "shared.gate"), s + "gate_proj.weight", {is, h});
      keep_as(PreparedNames::moe(l, "shared.up"), s + "up_proj.weight", {is, h});
      keep_as(PreparedNames::moe(l, "shared.down"), s + "down_proj.weight", {h, is});
      if (c_.shared_expert_gated)
        keep_as(PreparedNames::moe(l, "shared_gate"), block + "shared_expert_gate.weight", {1, h});
    }
  }

  const TensorSource& src_;
  const LoadOptions& options_;
  Model::Impl& out_;
  const ModelConfig& c_;
  const QuantFormatReader* reader_;
};

void check_options(const LoadOptions& options) {
  if (options.fp8_dtype != DType::BF16 && options.fp8_dtype != DType::F32)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("LoadOptions::fp8_dtype must be bf16 or f32, not {}",
                            dtype_name(options.fp8_dtype)));
  if (options.weight_dtype &&
      (!is_floating(*options.weight_dtype) || *options.weight_dtype == DType::F8E4M3))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("LoadOptions::weight_dtype must be f32, bf16 or f16, not {}",
                            dtype_name(*options.weight_dtype)));
}

}  // namespace

const Tensor& Model::Impl::get(const std::string& name) const {
  const auto it = weights.find(name);
  if (it == weights.end())
    throw Error(ErrorCode::NotFound, fmt::format("the model has no weight '{}'", name));
  return it->second;
}

Model Model::load(const std::string& dir, const LoadOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  check_options(options);
  auto impl = std::make_shared<Impl>();
  impl->config = load_config(dir);
  const auto checkpoint = io::Checkpoint::open(dir);
  const TensorSource source{fmt::format("checkpoint '{}'", dir),
                            [&](const std::string& name) { return checkpoint.contains(name); },
                            [&](const std::string& name) { return checkpoint.get(name); }};
  const auto reader = open_quant_format(dir, impl->config);
  Loader(source, options, *impl, reader.get()).load_all();
  impl->ep_placement = options.ep_placement;
  impl->ep_rank = options.ep_rank;
  if (options.prefault) prefault_weights(*impl);
  impl->stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Model model;
  model.impl_ = std::move(impl);
  return model;
}

Model Model::from_tensors(ModelConfig config, const std::map<std::string, Tensor>& tensors,
                          const LoadOptions& options) {
  check_options(options);
  auto impl = std::make_shared<Impl>();
  impl->config = std::move(config);
  const TensorSource source{"the given tensors",
                            [&](const std::string& name) { return tensors.count(name) != 0; },
                            [&](const std::string& name) { return tensors.at(name); }};
  const auto reader = open_quant_format("", impl->config);
  Loader(source, options, *impl, reader.get()).load_all();
  impl->ep_placement = options.ep_placement;
  impl->ep_rank = options.ep_rank;
  Model model;
  model.impl_ = std::move(impl);
  return model;
}

Model Model::Impl::from_source(ModelConfig config, const TensorSource& source,
                               const LoadOptions& options, const QuantFormatReader* reader,
                               const std::function<void(LoadStats&)>& stats) {
  const auto start = std::chrono::steady_clock::now();
  check_options(options);
  auto impl = std::make_shared<Impl>();
  impl->config = std::move(config);
  Loader(source, options, *impl, reader).load_all();
  impl->ep_placement = options.ep_placement;
  impl->ep_rank = options.ep_rank;
  if (options.prefault) prefault_weights(*impl);
  impl->stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (stats) stats(impl->stats);
  Model model;
  model.impl_ = std::move(impl);
  return model;
}

const ModelConfig& Model::config() const { return impl_->config; }
const LoadStats& Model::stats() const { return impl_->stats; }
const Tensor& Model::weight(const std::string& name) const { return impl_->get(name); }
const QuantizedWeight* Model::quantized_weight(const std::string& name) const {
  const auto it = impl_->quantized.find(name);
  return it == impl_->quantized.end() ? nullptr : &it->second;
}
std::vector<std::string> Model::quantized_weight_names() const {
  std::vector<std::string> out;
  for (const auto& [name, q] : impl_->quantized) out.push_back(name);
  return out;
}
const std::string& Model::quant_format() const { return impl_->quant_format; }

std::vector<CacheSlot> Model::cache_slots() const {
  const ModelConfig& c = impl_->config;
  if (c.mla) return {{"latent", 1, c.kv_lora_rank + c.qk_rope_head_dim}};
  return {{"k", c.num_kv_heads, c.head_dim}, {"v", c.num_kv_heads, c.head_dim}};
}

std::string cache_input_name(std::int64_t layer, const std::string& slot) {
  return fmt::format("cache.{}.{}", layer, slot);
}
std::string cache_output_name(std::int64_t layer, const std::string& slot) {
  return fmt::format("new.{}.{}", layer, slot);
}

std::uint64_t Model::weight_bytes() const {
  std::uint64_t total = 0;
  for (const auto& [name, t] : impl_->weights) total += t.nbytes();
  for (const auto& [name, q] : impl_->quantized) total += q.weight.nbytes();
  return total;
}

std::uint64_t Model::decode_bytes_per_token() const {
  const ModelConfig& c = impl_->config;
  std::uint64_t total = 0;
  for (const auto& [name, t] : impl_->weights) {
    if (name == "model.embed_tokens.weight") {
      total += t.nbytes() / static_cast<std::uint64_t>(c.vocab_size);  // one row
      if (impl_->lm_head_name == name) total += t.nbytes();
    } else if (name.find(".moe.experts.") != std::string::npos) {
      total += t.nbytes() / static_cast<std::uint64_t>(c.num_experts) *
               static_cast<std::uint64_t>(c.top_k);
    } else {
      total += t.nbytes();
    }
  }
  for (const auto& [name, q] : impl_->quantized) {
    const std::uint64_t bytes = q.weight.nbytes();
    if (name == "model.embed_tokens.weight") {  // a quantized table: one row, as above
      total += bytes / static_cast<std::uint64_t>(c.vocab_size);
      if (impl_->lm_head_name == name) total += bytes;
      continue;
    }
    total += name.find(".moe.experts.") != std::string::npos
                 ? bytes / static_cast<std::uint64_t>(c.num_experts) * static_cast<std::uint64_t>(c.top_k)
                 : bytes;
  }
  return total;
}

}  // namespace porta::model

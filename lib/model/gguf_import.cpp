// GGUF tensors -> the Hugging Face tensors porta's loader expects: float tensors (views of the
// mapping, or dequantized), and matrices kept as ggml blocks viewing the mapping.
#include <porta/model/gguf.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/model/checkpoint_gen.hpp>
#include <porta/quant.hpp>

#include "model/gguf_names.hpp"
#include "model/model_impl.hpp"

namespace porta::model {

namespace {

using gguf::GgmlType;
using gguf::GgufFile;

class Importer {
 public:
  Importer(const GgufFile& f, const ModelConfig& c, DType to, bool keep_blocks)
      : f_(f), c_(c), to_(to), keep_blocks_(keep_blocks) {}

  GgufTensors run() {
    for (const auto& [hf, shape] : expected_tensors(c_)) {
      const detail::GgufName n = detail::gguf_name_of(hf, c_);
      if (n.layout == detail::GgufLayout::KvB && keep_blocks_ && !f_.contains(n.gguf)) {
        split_kv_b(hf, n);
        continue;
      }
      made_ = Made::View;
      if (auto q = packed(hf, shape, n)) {
        add_packed(hf, std::move(*q));
        continue;
      }
      add_tensor(hf, convert(hf, shape, n));
    }
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(ErrorCode code, const std::string& gguf_name, const std::string& hf,
                         const std::string& why) const {
    throw Error(code, fmt::format("'{}': tensor '{}' (Hugging Face '{}') {}", f_.path(), gguf_name,
                                  hf, why));
  }

  // The GGUF tensor `name` as a porta tensor (outermost-first shape): a view for f32/f16/bf16,
  // dequantized for block types. Cached: merged expert tensors serve many Hugging Face names.
  Tensor fetch(const std::string& name, const std::string& hf) {
    if (const auto it = cache_.find(name); it != cache_.end()) return it->second;
    if (!f_.contains(name))
      fail(ErrorCode::NotFound, name, hf,
           fmt::format("is missing (the {} config implies it)", family_name(c_.family)));
    const gguf::TensorInfo& info = f_.tensor(name);
    Tensor t;
    switch (info.type) {
      case GgmlType::F32:
      case GgmlType::F16:
      case GgmlType::BF16: t = f_.view(name); break;
      default: {
        const auto traits = gguf::type_traits(static_cast<std::uint32_t>(info.type));
        if (!traits || !traits->dequantizable)
          fail(ErrorCode::Unsupported, name, hf,
               fmt::format("is {}, a type porta cannot dequantize yet", gguf::type_name(info.type)));
        t = f_.dequantized(name, to_);
        out_.dequantized.emplace_back(name, std::string(gguf::type_name(info.type)));
      }
    }
    cache_[name] = t;
    return t;
  }
  // fetch(), noting what the tensor it gives is made of.
  Tensor fetch_noted(const std::string& name, const std::string& hf) {
    Tensor t = fetch(name, hf);
    if (!is_plain(f_.tensor(name).type)) made_ = Made::Dequantized;
    return t;
  }
  void note_copy(const char* reason) {
    if (made_ == Made::View) {
      made_ = Made::Copied;
      copy_reason_ = reason;
    }
  }

  // The matrix `hf` as ggml blocks viewing the mapping, when it is kept packed: a rank-2 weight
  // in a type with kernels (the embedding table too: quant_embedding gathers its rows), stored
  // whole (Same, and deepseek2's attn_kv_b), as a slice of the merged experts (ExpertSlice) or
  // with llama's permuted q/k rows (reordered in packed form, a copy of whole rows). nullopt:
  // convert() it.
  std::optional<QuantizedTensor> packed(const std::string& hf, const Shape& shape,
                                        const detail::GgufName& n) {
    if (!keep_blocks_ || shape.rank() != 2) return std::nullopt;
    std::int64_t expert = 0, count = 1;
    if (n.layout == detail::GgufLayout::ExpertSlice) {
      if (!f_.contains(n.gguf)) return std::nullopt;  // old per-expert files: convert() finds them
      expert = n.expert;
      count = c_.num_experts;
    } else if (n.layout == detail::GgufLayout::KvB) {
      if (!f_.contains(n.gguf)) return std::nullopt;  // split files: split_kv_b()
    } else if (n.layout != detail::GgufLayout::Same &&
               n.layout != detail::GgufLayout::PermutedRows) {
      return std::nullopt;
    }
    auto q = packed_view(hf, n.gguf, shape, expert, count);
    if (q && n.layout == detail::GgufLayout::PermutedRows)
      q->data = unpermuted_blocks(hf, q->data, n);
    return q;
  }
  // Matrix `expert` of the GGUF tensor `name` ([count, ...shape], or `shape` when count is 1) as
  // ggml blocks viewing the mapping; nullopt when its type has no kernels or its shape differs
  // (a [1, H] gate stored as a vector of H, or a wrong one: convert() reshapes or reports it).
  std::optional<QuantizedTensor> packed_view(const std::string& hf, const std::string& name,
                                             const Shape& shape, std::int64_t expert,
                                             std::int64_t count) {
    if (!f_.contains(name) || !gguf_keeps_packed(f_.tensor(name).type)) return std::nullopt;
    const gguf::TensorInfo& info = f_.tensor(name);
    if (info.shape() != (count > 1 ? Shape{count, shape[0], shape[1]} : shape)) return std::nullopt;
    QuantizedTensor q;
    q.scheme = ggml_scheme(info.type);
    q.shape = shape;
    const Shape data_shape = quant_data_shape(shape, q.scheme);
    const auto bytes = static_cast<std::size_t>(data_shape.numel());
    const auto all = f_.data(name);
    auto* first = const_cast<std::byte*>(all.data()) + static_cast<std::size_t>(expert) * bytes;
    q.data = Tensor::view(first, data_shape, DType::I8, f_.owner());
    q.scale = Tensor::view(nullptr, quant_scale_shape(shape, q.scheme), q.scheme.scale_dtype);
    validate(q, hf);
    if (expert == 0) out_.packed.emplace_back(name, std::string(gguf::type_name(info.type)));
    out_.block_sources[hf] = name;
    return q;
  }
  void add_packed(const std::string& hf, QuantizedTensor q) {
    if (made_ == Made::View)
      out_.mapped_bytes += q.data.nbytes();
    else
      out_.made[hf] = copy_reason_;
    out_.blocks[hf] = std::move(q);
  }
  void add_tensor(const std::string& hf, Tensor t) {
    if (made_ == Made::Dequantized) out_.made[hf] = kGgufDequantized;
    if (made_ == Made::Copied) out_.made[hf] = copy_reason_;
    out_.tensors[hf] = std::move(t);
  }

  // A file that stores kv_b_proj split (attn_k_b [H, r, nope], attn_v_b [H, v, r]) already holds
  // the two halves the absorbed attention multiplies by: they go to the loader as they are,
  // under PreparedNames' half names, packed when their type has kernels.
  void split_kv_b(const std::string& hf, const detail::GgufName& n) {
    const auto [k_name, v_name] = split_kv_b_names(hf, n);
    const auto heads = c_.num_heads, r = c_.kv_lora_rank;
    split_half(PreparedNames::kv_b_key_half(n.layer), k_name, {heads, r, c_.qk_nope_head_dim});
    split_half(PreparedNames::kv_b_value_half(n.layer), v_name, {heads, c_.v_head_dim, r});
  }
  void split_half(const std::string& half, const std::string& name, const Shape& shape) {
    made_ = Made::View;
    if (auto q = packed_view(half, name, shape, 0, 1)) return add_packed(half, std::move(*q));
    const Tensor t = fetch_noted(name, half);
    check_shape(t, shape, name, half);
    count_view(t, name);
    add_tensor(half, t);
  }
  std::pair<std::string, std::string> split_kv_b_names(const std::string& hf,
                                                       const detail::GgufName& n) const {
    const std::string blk = fmt::format("blk.{}.", n.layer);
    std::pair<std::string, std::string> names{blk + "attn_k_b.weight", blk + "attn_v_b.weight"};
    if (!f_.contains(names.first) || !f_.contains(names.second))
      fail(ErrorCode::NotFound, n.gguf, hf,
           fmt::format("is missing, and so is its split form '{}' + '{}'", names.first,
                       names.second));
    return names;
  }
  // llama's q/k rows put back in Hugging Face order, whole packed rows at a time.
  Tensor unpermuted_blocks(const std::string& hf, const Tensor& data, const detail::GgufName& n) {
    const auto rows = data.shape()[0];
    if (rows % n.heads != 0 || (rows / n.heads) % 2 != 0)
      fail(ErrorCode::ShapeMismatch, n.gguf, hf,
           fmt::format("has {} rows, not {} heads of an even size", rows, n.heads));
    Tensor out = Tensor::empty(data.shape(), DType::I8);
    detail::permute_rows(static_cast<const std::byte*>(data.data()),
                         static_cast<std::byte*>(out.data()), n.heads, rows,
                         static_cast<std::size_t>(data.shape()[1]), true);
    note_copy("llama q/k rows reordered (packed blocks)");
    return out;
  }

  void check_shape(const Tensor& t, const Shape& expected, const std::string& name,
                   const std::string& hf) const {
    if (t.shape() != expected)
      fail(ErrorCode::ShapeMismatch, name, hf,
           fmt::format("has shape {} (GGUF dims reversed) but the config implies {}",
                       t.shape().to_string(), expected.to_string()));
  }

  void count_view(const Tensor& t, const std::string& name) {
    const auto type = f_.tensor(name).type;
    if (type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16)
      out_.mapped_bytes += t.nbytes();
  }

  Tensor convert(const std::string& hf, const Shape& shape, const detail::GgufName& n) {
    switch (n.layout) {
      case detail::GgufLayout::Same: return same(hf, shape, n.gguf);
      case detail::GgufLayout::PermutedRows: return unpermute(hf, shape, n);
      case detail::GgufLayout::ExpertSlice: return expert(hf, shape, n);
      case detail::GgufLayout::KvB: return kv_b(hf, shape, n);
    }
    fail(ErrorCode::Internal, n.gguf, hf, "has an unknown layout");
  }

  Tensor same(const std::string& hf, const Shape& shape, const std::string& name) {
    Tensor t = fetch_noted(name, hf);
    // Qwen2-MoE's shared_expert_gate [1, H] may be stored as a vector of H.
    if (shape.rank() == 2 && shape[0] == 1 && t.shape() == Shape{shape[1]}) t = t.reshape(shape);
    check_shape(t, shape, name, hf);
    count_view(t, name);
    return t;
  }

  Tensor unpermute(const std::string& hf, const Shape& shape, const detail::GgufName& n) {
    const Tensor t = fetch_noted(n.gguf, hf);
    note_copy("llama q/k rows reordered");
    check_shape(t, shape, n.gguf, hf);
    if (shape[0] % n.heads != 0 || (shape[0] / n.heads) % 2 != 0)
      fail(ErrorCode::ShapeMismatch, n.gguf, hf,
           fmt::format("has {} rows, not {} heads of an even size", shape[0], n.heads));
    Tensor out = Tensor::empty(shape, t.dtype());
    detail::permute_rows(static_cast<const std::byte*>(t.data()), static_cast<std::byte*>(out.data()),
                         n.heads, shape[0],
                         static_cast<std::size_t>(shape[1]) * dtype_size(t.dtype()), true);
    return out;
  }

  Tensor expert(const std::string& hf, const Shape& shape, const detail::GgufName& n) {
    if (!f_.contains(n.gguf)) {
      // Files from before merged experts (early Mixtral GGUFs): blk.N.ffn_gate.E.weight.
      const std::string single =
          n.gguf.substr(0, n.gguf.size() - std::string("_exps.weight").size()) +
          fmt::format(".{}.weight", n.expert);
      if (f_.contains(single)) return same(hf, shape, single);
    }
    const Tensor merged = fetch_noted(n.gguf, hf);
    const Shape whole{c_.num_experts, shape[0], shape[1]};
    check_shape(merged, whole, n.gguf, hf);
    if (n.expert == 0) count_view(merged, n.gguf);
    const std::size_t bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(merged.dtype());
    auto owner = std::make_shared<Tensor>(merged);
    return Tensor::view(static_cast<std::byte*>(merged.data()) +
                            static_cast<std::size_t>(n.expert) * bytes,
                        shape, merged.dtype(), std::shared_ptr<const void>(owner));
  }

  // kv_b_proj [H * (nope + v), r] from attn_kv_b, or (without keep_blocks: the Hugging Face
  // tensor, for whoever reads gguf_hf_tensors as a checkpoint) from the split attn_k_b
  // [H, r, nope] (each head's key part transposed) and attn_v_b [H, v, r].
  Tensor kv_b(const std::string& hf, const Shape& shape, const detail::GgufName& n) {
    if (f_.contains(n.gguf)) return same(hf, shape, n.gguf);
    const auto [k_name, v_name] = split_kv_b_names(hf, n);
    const auto heads = c_.num_heads, nope = c_.qk_nope_head_dim, vd = c_.v_head_dim,
               r = c_.kv_lora_rank;
    const Tensor kb = fetch_noted(k_name, hf), vb = fetch_noted(v_name, hf);
    note_copy("deepseek2 attn_k_b and attn_v_b recombined into kv_b_proj");
    check_shape(kb, {heads, r, nope}, k_name, hf);
    check_shape(vb, {heads, vd, r}, v_name, hf);
    const std::vector<float> k = kb.to_f32(), v = vb.to_f32();
    std::vector<float> out(static_cast<std::size_t>(shape.numel()));
    for (std::int64_t h = 0; h < heads; ++h) {
      float* head = out.data() + h * (nope + vd) * r;
      for (std::int64_t i = 0; i < nope; ++i)
        for (std::int64_t j = 0; j < r; ++j)
          head[i * r + j] = k[static_cast<std::size_t>((h * r + j) * nope + i)];
      std::memcpy(head + nope * r, v.data() + h * vd * r,
                  static_cast<std::size_t>(vd * r) * sizeof(float));
    }
    return Tensor::from_f32(shape, kb.dtype(), out);
  }

  static bool is_plain(GgmlType t) {
    return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16;
  }

  enum class Made { View, Dequantized, Copied };
  const GgufFile& f_;
  const ModelConfig& c_;
  DType to_;
  bool keep_blocks_;
  Made made_ = Made::View;
  std::string copy_reason_;
  GgufTensors out_;
  std::map<std::string, Tensor> cache_;
};

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, 4)) return false;
  return std::memcmp(magic, "GGUF", 4) == 0;
}

bool gguf_keeps_packed(gguf::GgmlType type) noexcept {
  // The types with cpu block kernels (backends/cpu/ggml/block_dot.hpp).
  using G = GgmlType;
  return type == G::Q8_0 || type == G::Q4_0 || type == G::Q4_1 || type == G::Q5_0 ||
         type == G::Q5_1 || type == G::IQ4_NL || type == G::Q2_K || type == G::Q3_K ||
         type == G::Q4_K || type == G::Q5_K || type == G::Q6_K || type == G::IQ4_XS;
}

GgufTensors gguf_hf_tensors(const GgufFile& file, const ModelConfig& config, DType dequantize_to,
                            bool keep_blocks) {
  if (dequantize_to != DType::F32 && dequantize_to != DType::BF16)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("GGUF block types dequantize to f32 or bf16, not {}",
                            dtype_name(dequantize_to)));
  return Importer(file, config, dequantize_to, keep_blocks).run();
}

}  // namespace porta::model

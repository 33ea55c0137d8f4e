// GGUF tensors -> the Hugging Face tensors porta's loader expects, and load_gguf().
#include <porta/model/gguf.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/model/checkpoint_gen.hpp>

#include "model/gguf_names.hpp"

namespace porta::model {

namespace {

using gguf::GgmlType;
using gguf::GgufFile;

class Importer {
 public:
  Importer(const GgufFile& f, const ModelConfig& c, DType to) : f_(f), c_(c), to_(to) {}

  GgufTensors run() {
    for (const auto& [hf, shape] : expected_tensors(c_)) {
      const detail::GgufName n = detail::gguf_name_of(hf, c_);
      out_.tensors[hf] = convert(hf, shape, n);
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
        t = f_.dequantized(name);
        if (to_ != DType::F32) t = t.to(to_);
        out_.dequantized.emplace_back(name, std::string(gguf::type_name(info.type)));
      }
    }
    cache_[name] = t;
    return t;
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
    Tensor t = fetch(name, hf);
    // Qwen2-MoE's shared_expert_gate [1, H] may be stored as a vector of H.
    if (shape.rank() == 2 && shape[0] == 1 && t.shape() == Shape{shape[1]}) t = t.reshape(shape);
    check_shape(t, shape, name, hf);
    count_view(t, name);
    return t;
  }

  Tensor unpermute(const std::string& hf, const Shape& shape, const detail::GgufName& n) {
    const Tensor t = fetch(n.gguf, hf);
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
    const Tensor merged = fetch(n.gguf, hf);
    const Shape whole{c_.num_experts, shape[0], shape[1]};
    check_shape(merged, whole, n.gguf, hf);
    if (n.expert == 0) count_view(merged, n.gguf);
    const std::size_t bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(merged.dtype());
    auto owner = std::make_shared<Tensor>(merged);
    return Tensor::view(static_cast<std::byte*>(merged.data()) +
                            static_cast<std::size_t>(n.expert) * bytes,
                        shape, merged.dtype(), std::shared_ptr<const void>(owner));
  }

  // kv_b_proj [H * (nope + v), r] from attn_kv_b, or from the split attn_k_b [H, r, nope]
  // (each head's key part transposed) and attn_v_b [H, v, r].
  Tensor kv_b(const std::string& hf, const Shape& shape, const detail::GgufName& n) {
    if (f_.contains(n.gguf)) return same(hf, shape, n.gguf);
    const std::string blk = fmt::format("blk.{}.", n.layer);
    const std::string k_name = blk + "attn_k_b.weight", v_name = blk + "attn_v_b.weight";
    if (!f_.contains(k_name) || !f_.contains(v_name))
      fail(ErrorCode::NotFound, n.gguf, hf,
           fmt::format("is missing, and so is its split form '{}' + '{}'", k_name, v_name));
    const auto heads = c_.num_heads, nope = c_.qk_nope_head_dim, vd = c_.v_head_dim,
               r = c_.kv_lora_rank;
    const Tensor kb = fetch(k_name, hf), vb = fetch(v_name, hf);
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

  const GgufFile& f_;
  const ModelConfig& c_;
  DType to_;
  GgufTensors out_;
  std::map<std::string, Tensor> cache_;
};

// "q8_0: token_embd.weight, blk.*.attn_q.weight; q6_K: output.weight": the dequantized tensors
// by type, with layer numbers folded so that a 60-layer model still gives one line.
std::string dequantized_list(const std::vector<std::pair<std::string, std::string>>& tensors) {
  std::vector<std::pair<std::string, std::vector<std::string>>> by_type;
  for (const auto& [name, type] : tensors) {
    std::string pattern = name;
    if (pattern.starts_with("blk.")) {
      const std::size_t dot = pattern.find('.', 4);
      if (dot != std::string::npos) pattern = "blk.*" + pattern.substr(dot);
    }
    auto it = std::find_if(by_type.begin(), by_type.end(),
                           [&](const auto& entry) { return entry.first == type; });
    if (it == by_type.end()) it = by_type.insert(by_type.end(), {type, {}});
    if (std::find(it->second.begin(), it->second.end(), pattern) == it->second.end())
      it->second.push_back(pattern);
  }
  std::vector<std::string> parts;
  for (const auto& [type, patterns] : by_type)
    parts.push_back(fmt::format("{}: {}", type, fmt::join(patterns, ", ")));
  return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, 4)) return false;
  return std::memcmp(magic, "GGUF", 4) == 0;
}

GgufTensors gguf_hf_tensors(const GgufFile& file, const ModelConfig& config, DType dequantize_to) {
  if (dequantize_to != DType::F32 && dequantize_to != DType::BF16)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("GGUF block types dequantize to f32 or bf16, not {}",
                            dtype_name(dequantize_to)));
  return Importer(file, config, dequantize_to).run();
}

Model load_gguf(const std::string& path, const GgufLoadOptions& options, GgufLoadReport* report) {
  const GgufFile file = GgufFile::open(path);
  const ModelConfig config = gguf_config(file);
  const GgufTensors tensors = gguf_hf_tensors(file, config, options.dequantize_to);
  Model model = Model::from_tensors(config, tensors.tensors, options.load);
  if (report != nullptr) {
    report->dequantized_tensors = tensors.dequantized.size();
    report->summary.clear();
    if (!tensors.dequantized.empty())
      report->summary = fmt::format(
          "gguf: dequantized {} block-quantized tensors to {} at load ({}); packed in-place "
          "compute on GGUF blocks arrives with the quantized-weights work",
          tensors.dequantized.size(), dtype_name(options.dequantize_to),
          dequantized_list(tensors.dequantized));
  }
  return model;
}

}  // namespace porta::model

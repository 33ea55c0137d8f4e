// LoadOptions::prefault: the weights' pages mapped at load rather than faulted in, 16 pages a
// fault, during the first forward pass.
#include "io/posix_file.hpp"
#include "model/model_impl.hpp"

namespace porta::model {
namespace {

std::uint64_t prefault(const Tensor& t) {
  if (!t.defined() || t.numel() == 0) return 0;
  if (!t.stacked()) return io::detail::prefault_readable(t.data(), t.nbytes());
  std::uint64_t bytes = 0;
  for (void* part : t.parts()) bytes += io::detail::prefault_readable(part, t.part_bytes());
  return bytes;
}

}  // namespace

void prefault_weights(Model::Impl& model) {
  // The embedding table is read a row per token: prefaulting all of it would make resident what
  // a run never reads, unless it is the lm_head too.
  const std::string embedding = "model.embed_tokens.weight";
  std::uint64_t bytes = 0;
  for (const auto& [name, tensor] : model.weights)
    if (name != embedding || model.lm_head_name == embedding) bytes += prefault(tensor);
  for (const auto& [name, q] : model.quantized)
    if (name != embedding || model.lm_head_name == embedding)
      bytes += prefault(q.weight.data) + prefault(q.weight.scale) + prefault(q.weight.zero);
  model.stats.prefaulted_bytes += bytes;
}

}  // namespace porta::model

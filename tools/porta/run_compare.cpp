// Logits of two models of the same shape on the same prompt: max abs and relative error and
// top-1 agreement, for `porta run --compare-with` (quantized against unquantized).
#include "run_compare.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <porta/model/generate.hpp>

namespace porta::cli {

namespace {

Tensor prompt_logits(const model::Model& m, const std::vector<std::int32_t>& prompt,
                     const std::string& backend) {
  model::Session session(m, {.backend = backend,
                             .fallback = "reference",
                             .capacity = static_cast<std::int64_t>(prompt.size()),
                             .all_logits = true});
  return session.forward(prompt);
}

}  // namespace

LogitComparison compare_logits(const model::Model& a, const model::Model& reference,
                               const std::vector<std::int32_t>& prompt, const std::string& backend) {
  if (a.config().vocab_size != reference.config().vocab_size)
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("--compare-with: the models' vocabularies differ ({} and {})",
                            a.config().vocab_size, reference.config().vocab_size));
  const Tensor la = prompt_logits(a, prompt, backend);
  const Tensor lb = prompt_logits(reference, prompt, backend);
  const auto va = la.to_f32(), vb = lb.to_f32();
  const auto vocab = static_cast<std::size_t>(a.config().vocab_size);
  LogitComparison out;
  out.positions = static_cast<std::int64_t>(va.size() / vocab);
  for (std::size_t p = 0; p < va.size() / vocab; ++p) {
    const float* x = va.data() + p * vocab;
    const float* y = vb.data() + p * vocab;
    double diff = 0, scale = 0;
    for (std::size_t i = 0; i < vocab; ++i) {
      diff = std::max(diff, std::fabs(static_cast<double>(x[i]) - y[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(y[i])));
    }
    out.max_abs = std::max(out.max_abs, diff);
    out.max_rel = std::max(out.max_rel, scale > 0 ? diff / scale : diff);
    if (std::max_element(x, x + vocab) - x == std::max_element(y, y + vocab) - y) ++out.top1_agree;
  }
  return out;
}

}  // namespace porta::cli

// `porta run --compare-with DIR`: the same prompt through a second checkpoint of the same model
// (typically the unquantized one), and how far the run's logits are from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <porta/model/model.hpp>

namespace porta::cli {

struct LogitComparison {
  double max_abs = 0;   // max |a - b| over every prompt position and vocabulary entry
  double max_rel = 0;   // max over positions of max |a - b| / max |b| of that position
  std::int64_t positions = 0, top1_agree = 0;
};

// Prompt logits of both models on `backend`, compared position by position (b is `reference`).
LogitComparison compare_logits(const model::Model& a, const model::Model& reference,
                               const std::vector<std::int32_t>& prompt, const std::string& backend);

}  // namespace porta::cli

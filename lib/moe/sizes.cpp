// The sizes the router's outputs take, shared by the shape rule, every backend and user code that
// preallocates: slots per token, slots per expert (capacity) and the rows of perm.
#include <algorithm>
#include <cmath>

#include <porta/moe.hpp>

namespace porta::moe {
namespace {

// ceil(factor · T · K / E) evaluated in f32, so that a factor written as 1.1 (stored as
// 1.10000002f) does not round 11.0000002 slots up to 12; never more than `limit`, which keeps
// the conversion to an integer in range for any factor (+inf included).
std::int64_t ceil_slots(float factor, std::int64_t assignments, std::int64_t experts,
                        std::int64_t limit) {
  const float slots =
      std::ceil(factor * static_cast<float>(assignments) / static_cast<float>(experts));
  if (!(slots < static_cast<float>(limit))) return limit;
  return std::max<std::int64_t>(static_cast<std::int64_t>(slots), 0);
}

}  // namespace

std::int64_t slots_per_token(const RouterAttrs& attrs) {
  return attrs.mode == Mode::ExpertChoice ? attrs.num_experts : attrs.top_k;
}

std::int64_t expert_capacity(const RouterAttrs& attrs, std::int64_t tokens) {
  const std::int64_t experts = std::max<std::int64_t>(attrs.num_experts, 1);
  const std::int64_t assignments = tokens * attrs.top_k;
  if (attrs.mode == Mode::ExpertChoice) {
    const float factor = attrs.capacity_factor > 0.0f ? attrs.capacity_factor : 1.0f;
    return ceil_slots(factor, assignments, experts, tokens);
  }
  if (!(attrs.capacity_factor > 0.0f)) return -1;
  return ceil_slots(attrs.capacity_factor, assignments, experts, assignments);
}

std::int64_t perm_rows(const RouterAttrs& attrs, std::int64_t tokens) {
  const std::int64_t kept = attrs.mode == Mode::ExpertChoice
                                ? attrs.num_experts * expert_capacity(attrs, tokens)
                                : tokens * attrs.top_k;
  const std::int64_t padding =
      attrs.block_size > 1 ? attrs.num_experts * (attrs.block_size - 1) : 0;
  return kept + padding;
}

}  // namespace porta::moe

#include "runtime/memory_plan.hpp"

#include <algorithm>
#include <numeric>

namespace porta::detail {

MemoryPlan plan_memory(std::span<const BufferRequest> requests, std::size_t alignment) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  auto aligned = [alignment](std::size_t bytes) {
    return (bytes + alignment - 1) / alignment * alignment;
  };

  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return requests[a].bytes > requests[b].bytes;
  });

  struct Placed {
    std::size_t offset, bytes;
    int first, last;
  };
  std::vector<Placed> placed;
  for (auto index : order) {
    const auto& req = requests[index];
    const std::size_t bytes = aligned(req.bytes);
    plan.unplanned_bytes += bytes;
    if (bytes == 0) continue;
    // Gather the live-at-the-same-time neighbours by offset, then take the first gap that fits.
    std::vector<const Placed*> overlapping;
    for (const auto& p : placed)
      if (p.first <= req.last_step && req.first_step <= p.last) overlapping.push_back(&p);
    std::sort(overlapping.begin(), overlapping.end(),
              [](const Placed* a, const Placed* b) { return a->offset < b->offset; });
    std::size_t offset = 0;
    for (const auto* p : overlapping) {
      if (offset + bytes <= p->offset) break;
      offset = std::max(offset, p->offset + p->bytes);
    }
    plan.offsets[index] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + bytes);
    placed.push_back({offset, bytes, req.first_step, req.last_step});
  }
  return plan;
}

}  // namespace porta::detail

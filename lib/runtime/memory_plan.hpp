// The memory planner: places every intermediate value of one memory domain at an offset in a
// single arena so that values whose lifetimes do not overlap share bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace porta::detail {

struct BufferRequest {
  std::size_t bytes = 0;
  int first_step = 0;  // the step that writes the value
  int last_step = 0;   // the last step that reads it (inclusive)
};

struct MemoryPlan {
  std::vector<std::size_t> offsets;  // one per request, aligned
  std::size_t arena_bytes = 0;
  std::size_t unplanned_bytes = 0;  // the sum of all (aligned) requests: no reuse
};

// Greedy by size: the largest values are placed first, each at the lowest offset that does not
// collide with an already placed value alive at the same time. Deterministic.
MemoryPlan plan_memory(std::span<const BufferRequest> requests, std::size_t alignment = 64);

}  // namespace porta::detail

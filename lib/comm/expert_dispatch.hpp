// The expert-parallel exchange of moe_experts_ep (internal): this rank's token rows out to the
// ranks holding their experts by all_to_all, the local experts' grouped GEMM, and the results
// back by all_to_all. Backends supply the local compute; the exchange is shared.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include <porta/comm.hpp>
#include <porta/expert_parallel.hpp>

namespace porta::detail::ep {

// Tokens [first, last) that `rank` of `ranks` dispatches: contiguous runs, r·T/ranks onwards.
struct TokenRange {
  std::int64_t first = 0, last = 0;
  std::int64_t size() const { return last - first; }
};
TokenRange token_range(std::int64_t tokens, std::int64_t ranks, std::int64_t rank);

// The rows each of `rank`'s slots receives when expert e has rows_per_expert[e] kept assignments:
// replica j of an expert with r replicas gets the assignments i with i mod r = j. What a rank's
// experts compute, for timing models (npu-sim) that do not run the exchange.
std::vector<std::int64_t> slot_rows(const porta::ep::ExpertPlacement& placement, std::int64_t rank,
                                    std::span<const std::int64_t> rows_per_expert);

struct DispatchInput {
  const porta::ep::ExpertPlacement* placement = nullptr;
  std::span<const std::int64_t> offsets;  // [E + 1], the router's
  std::span<const std::int64_t> perm;     // [P], assignment indices, sentinel >= T·K
  std::int64_t tokens = 0, top_k = 0, hidden = 0;
  const float* x = nullptr;  // [tokens, hidden]
};

// Runs this rank's experts on `count` rows [count, hidden] grouped by local slot
// (slot_offsets [slots + 1]), writing [count, hidden].
using LocalExperts = std::function<void(const float* rows, std::int64_t count,
                                        std::span<const std::int64_t> slot_offsets, float* out)>;

struct DispatchStats {
  double exchange_us = 0;  // in the all_to_all calls
  double compute_us = 0;   // in the local experts
  std::int64_t rows_sent = 0, rows_received = 0;
};

// The expert output of every routed row of `perm` whose token this rank dispatches, [P, hidden]
// (other rows zero): the j-th kept assignment of expert e goes to replica j mod (its replicas).
// Every rank of `comm` must call it with the same routing.
std::vector<float> dispatch_to_experts(Communicator& comm, const DispatchInput& in,
                                       const LocalExperts& experts, DispatchStats* stats = nullptr);

}  // namespace porta::detail::ep

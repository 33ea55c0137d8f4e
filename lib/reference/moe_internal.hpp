// Internals of the reference MoE kernels (moe_*.cpp): the routing and the ragged per-expert math
// as plain functions over f32 arrays, so that moe_experts is literally the composition of the
// single ops it fuses, and one kernel per op for the dispatcher in moe_dispatch.cpp.
//
// Index inputs (perm, inv, offsets) are data, not structure: a graph input can carry any int32
// values, so every function that indexes with them checks them first and throws porta::Error
// (InvalidArgument) naming the node instead of reading out of bounds.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <porta/moe.hpp>

#include "graph/graph_state.hpp"
#include "reference/kernels.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::reference {

// The nine outputs of moe_router, in output order (see docs/moe-router.md).
struct RouterTables {
  std::vector<std::int64_t> ids;        // [T, K], -1 for dropped assignments
  std::vector<float> weights;           // [T, K], 0 for dropped assignments
  std::vector<std::int64_t> counts;     // [E] kept assignments per expert
  std::vector<std::int64_t> offsets;    // [E + 1] padded block starts
  std::vector<std::int64_t> perm;       // [P] assignment indices, sentinel T*K in padding
  std::vector<std::int64_t> inv;        // [T*K] slot of each assignment in perm, -1 if dropped
  std::vector<std::int64_t> dropped;    // [E] assignments refused for capacity
  std::vector<std::int64_t> nonfinite;  // [T] 1 when the row's selection values had a NaN
  std::vector<float> mean_score;        // [E] mean over rows of the score s
};

// What the router reads besides its attributes. Spans are empty when the input is absent.
struct RouterInputs {
  std::span<const float> logits;  // [tokens, E], widened to f32
  std::int64_t tokens = 0;
  std::span<const float> bias;               // [E] or empty
  std::span<const std::int64_t> valid;       // [tokens] (0 = padding row) or empty: all valid
  std::span<const std::int64_t> token_ids;   // [tokens], hash mode
  std::span<const std::int64_t> hash_table;  // [V, K], hash mode
  std::string label;                         // the node, for run-time errors
};

// Routing of every mode (token_choice, hash, expert_choice) exactly as docs/moe-router.md says.
// Throws InvalidArgument naming the node for token ids or hash-table entries out of range.
RouterTables route(const RouterInputs& in, const moe::RouterAttrs& attrs);

// Token-choice routing of `logits` [tokens, E] (already widened to f32); `bias` is empty or [E].
RouterTables route_tokens(std::span<const float> logits, std::int64_t tokens,
                          std::span<const float> bias, const moe::RouterAttrs& attrs);

// ---- index checks (throw InvalidArgument naming `label`, the op and node) ----
// offsets[E+1] must start at >= 0, never decrease and end at <= rows.
void check_offsets(const std::string& label, std::span<const std::int64_t> offsets,
                   std::int64_t rows);
// Each perm entry is an assignment index in [0, assignments) or the sentinel (>= assignments).
void check_perm(const std::string& label, std::span<const std::int64_t> perm);
// Each inv entry is -1 or a row of yp in [0, rows).
void check_inv(const std::string& label, std::span<const std::int64_t> inv, std::int64_t rows);

// moe_experts' routing inputs (offsets [E+1], perm [P], inv [T*K]), read and checked: sizes
// against the node's shapes (Internal: a shape-rule bug), entries as above (InvalidArgument).
struct ExpertRouting {
  std::vector<std::int64_t> offsets, perm, inv;
  std::int64_t rows = 0;  // P, the permuted rows
};
ExpertRouting load_expert_routing(const Node& n, const ExecContext& ctx);

// ---- the ragged math, f32 in and out (double accumulators) ----
// out[i] = x[perm[i] / top_k] when perm[i] < tokens * top_k, else a zero row. x is [tokens, H].
std::vector<float> permute_rows(const float* x, std::int64_t tokens, std::int64_t hidden,
                                std::span<const std::int64_t> perm, std::int64_t top_k);
// out[r] = rows[r] · w[e]^T for offsets[e] <= r < offsets[e+1]; every other row is 0.
// rows [P, H], w [E, N, H] (nn.Linear layout), out [P, N].
std::vector<float> grouped_matmul_rows(const float* rows, std::int64_t num_rows,
                                       std::int64_t hidden, const float* w, std::int64_t experts,
                                       std::int64_t out_features,
                                       std::span<const std::int64_t> offsets);
// out[t] = Σ_k (ascending) w[t,k] · yp[inv[t*K+k]] summed in f32, skipping inv = -1.
std::vector<float> combine_rows(const float* yp, std::int64_t hidden, const float* weights,
                                std::span<const std::int64_t> inv, std::int64_t tokens,
                                std::int64_t top_k);
// The shared expert of moe_experts (inputs 8 to 11 of node `n`) on x [tokens, hidden]: its output
// [tokens, hidden], scaled per token by the sigmoid gate when the attributes say so.
std::vector<float> shared_expert(const Node& n, const ExecContext& ctx, const float* x,
                                 std::int64_t tokens, std::int64_t hidden);
// silu(gate) · up, elementwise.
std::vector<float> swiglu_values(std::span<const float> gate, std::span<const float> up);

// Reads an int32 index value exactly (throws Internal if it is not int32: a shape-rule bug).
std::vector<std::int64_t> load_indices(const Node& n, const TensorRef& t, const char* what);

}  // namespace porta::detail::reference

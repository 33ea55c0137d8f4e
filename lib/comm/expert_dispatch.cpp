// The expert-parallel exchange: permute locally, exchange counts, all_to_all the rows, grouped
// GEMM over the local slots, all_to_all the results back. The order of everything is fixed by the
// routing tables, which every rank holds identically, so results do not depend on timing.
#include "comm/expert_dispatch.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::detail::ep {

namespace {

struct Item {
  std::int64_t slot;      // local slot on the destination rank
  std::int64_t perm_row;  // row of perm (and of the result)
};

double since_us(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

TokenRange token_range(std::int64_t tokens, std::int64_t ranks, std::int64_t rank) {
  return {rank * tokens / ranks, (rank + 1) * tokens / ranks};
}

std::vector<std::int64_t> slot_rows(const porta::ep::ExpertPlacement& placement, std::int64_t rank,
                                    std::span<const std::int64_t> rows_per_expert) {
  std::vector<std::int64_t> out;
  for (const std::int64_t e : placement.rank_experts.at(static_cast<std::size_t>(rank))) {
    const auto replicas = placement.replicas(e);
    const auto r = static_cast<std::int64_t>(replicas.size());
    std::int64_t j = 0;  // this slot's index among the expert's replicas
    while (replicas[static_cast<std::size_t>(j)].first != rank ||
           replicas[static_cast<std::size_t>(j)].second != static_cast<std::int64_t>(out.size()))
      ++j;
    const std::int64_t rows = rows_per_expert[static_cast<std::size_t>(e)];
    out.push_back(rows / r + (j < rows % r ? 1 : 0));
  }
  return out;
}

std::vector<float> dispatch_to_experts(Communicator& comm, const DispatchInput& in,
                                       const LocalExperts& experts, DispatchStats* stats) {
  const auto& placement = *in.placement;
  const std::int64_t ranks = placement.ranks();
  if (comm.size() != ranks)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("expert dispatch: the placement has {} ranks, the communicator {}",
                            ranks, comm.size()));
  const auto me = static_cast<std::size_t>(comm.rank());
  const auto peers = static_cast<std::size_t>(ranks);
  const auto h = static_cast<std::size_t>(in.hidden);
  const std::int64_t assignments = in.tokens * in.top_k;
  const TokenRange mine = token_range(in.tokens, ranks, comm.rank());

  // 1. Local permute: each of my assignments to its (rank, slot), bucketed by destination.
  std::vector<std::vector<Item>> to(peers);
  for (std::int64_t e = 0; e + 1 < static_cast<std::int64_t>(in.offsets.size()); ++e) {
    const auto replicas = placement.replicas(e);
    std::int64_t j = 0;
    for (std::int64_t i = in.offsets[static_cast<std::size_t>(e)];
         i < in.offsets[static_cast<std::size_t>(e) + 1]; ++i) {
      const std::int64_t a = in.perm[static_cast<std::size_t>(i)];
      if (a >= assignments) continue;  // padding row
      const auto& [rank, slot] = replicas[static_cast<std::size_t>(j++) % replicas.size()];
      const std::int64_t token = a / in.top_k;
      if (token >= mine.first && token < mine.last)
        to[static_cast<std::size_t>(rank)].push_back({slot, i});
    }
  }
  std::vector<std::int64_t> send_rows(peers), recv_rows(peers);
  std::vector<float> send;
  std::vector<std::int64_t> slot_counts;  // per destination, rows per slot, destination-major
  std::vector<std::int64_t> count_bytes_out(peers), count_bytes_in(peers);
  const auto slots_of = [&](std::size_t r) { return placement.rank_experts[r].size(); };
  for (std::size_t d = 0; d < peers; ++d) {
    auto& items = to[d];
    std::stable_sort(items.begin(), items.end(),
                     [](const Item& a, const Item& b) { return a.slot < b.slot; });
    std::vector<std::int64_t> per_slot(slots_of(d), 0);
    for (const auto& it : items) {
      ++per_slot[static_cast<std::size_t>(it.slot)];
      const auto token = static_cast<std::size_t>(in.perm[static_cast<std::size_t>(it.perm_row)] /
                                                  in.top_k);
      send.insert(send.end(), in.x + token * h, in.x + (token + 1) * h);
    }
    slot_counts.insert(slot_counts.end(), per_slot.begin(), per_slot.end());
    send_rows[d] = static_cast<std::int64_t>(items.size());
    count_bytes_out[d] = static_cast<std::int64_t>(slots_of(d) * sizeof(std::int64_t));
    count_bytes_in[d] = static_cast<std::int64_t>(slots_of(me) * sizeof(std::int64_t));
  }

  // 2. Exchange counts: from each source, how many rows for each of my slots.
  auto start = std::chrono::steady_clock::now();
  const std::size_t my_slots = slots_of(me);
  std::vector<std::int64_t> incoming(peers * my_slots);
  comm.all_to_all(slot_counts.data(), count_bytes_out, incoming.data(), count_bytes_in);
  std::int64_t received = 0;
  for (std::size_t p = 0; p < peers; ++p) {
    recv_rows[p] = 0;
    for (std::size_t s = 0; s < my_slots; ++s) recv_rows[p] += incoming[p * my_slots + s];
    received += recv_rows[p];
  }

  // 3. The rows themselves.
  const auto row_bytes = static_cast<std::int64_t>(h * sizeof(float));
  std::vector<std::int64_t> send_bytes(peers), recv_bytes(peers);
  for (std::size_t p = 0; p < peers; ++p) {
    send_bytes[p] = send_rows[p] * row_bytes;
    recv_bytes[p] = recv_rows[p] * row_bytes;
  }
  std::vector<float> got(static_cast<std::size_t>(received) * h);
  comm.all_to_all(send.data(), send_bytes, got.data(), recv_bytes);
  double exchange_us = since_us(start);

  // 4. Regroup slot-major (source-minor) for one grouped GEMM over my slots; remember where each
  // row came from to send its result back in the order it arrived.
  std::vector<std::int64_t> slot_offsets(my_slots + 1, 0);
  for (std::size_t s = 0; s < my_slots; ++s) {
    slot_offsets[s + 1] = slot_offsets[s];
    for (std::size_t p = 0; p < peers; ++p) slot_offsets[s + 1] += incoming[p * my_slots + s];
  }
  std::vector<std::int64_t> grouped_at(static_cast<std::size_t>(received));
  {
    std::vector<std::int64_t> fill(slot_offsets.begin(), slot_offsets.end() - 1);
    std::size_t row = 0;
    for (std::size_t p = 0; p < peers; ++p)
      for (std::size_t s = 0; s < my_slots; ++s)
        for (std::int64_t c = 0; c < incoming[p * my_slots + s]; ++c) grouped_at[row++] = fill[s]++;
  }
  std::vector<float> grouped(got.size()), results(got.size());
  for (std::size_t r = 0; r < grouped_at.size(); ++r)
    std::memcpy(&grouped[static_cast<std::size_t>(grouped_at[r]) * h], &got[r * h],
                h * sizeof(float));
  start = std::chrono::steady_clock::now();
  experts(grouped.data(), received, slot_offsets, results.data());
  const double compute_us = since_us(start);
  for (std::size_t r = 0; r < grouped_at.size(); ++r)
    std::memcpy(&got[r * h], &results[static_cast<std::size_t>(grouped_at[r]) * h],
                h * sizeof(float));

  // 5. Results back, in the order each source sent its rows.
  start = std::chrono::steady_clock::now();
  std::vector<float> back(send.size());
  comm.all_to_all(got.data(), recv_bytes, back.data(), send_bytes);
  exchange_us += since_us(start);

  std::vector<float> yp(in.perm.size() * h, 0.0f);
  std::size_t row = 0;
  for (std::size_t d = 0; d < peers; ++d)
    for (const auto& it : to[d])
      std::memcpy(&yp[static_cast<std::size_t>(it.perm_row) * h], &back[row++ * h],
                  h * sizeof(float));
  if (stats != nullptr) {
    stats->exchange_us += exchange_us;
    stats->compute_us += compute_us;
    for (auto r : send_rows) stats->rows_sent += r;
    stats->rows_received += received;
  }
  return yp;
}

}  // namespace porta::detail::ep

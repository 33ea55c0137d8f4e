// The collective ops on host memory, through the Executable's communicator: the reference
// kernels, which the cpu backend runs as they are and the opencl backend runs on host copies.
//
// Each check that could fail on one rank only (a count out of range, more rows than the output
// holds) is agreed on by every rank before the data moves (Communicator::agree), so all ranks
// throw the same error instead of some waiting on a collective the others never join.
#include <cstring>
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/collective_util.hpp"
#include "reference/kernel_util.hpp"

namespace porta::detail::reference {

Communicator& communicator_for(const Node& n, const ExecContext& ctx, std::int64_t ranks) {
  if (ctx.comm == nullptr)
    throw Error(ErrorCode::Internal, fmt::format("{}: no communicator bound", node_label(n)));
  if (ctx.comm->size() != ranks)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: the graph was built for {} ranks but the communicator has {} "
                            "(CompileOptions::comm)",
                            node_label(n), ranks, ctx.comm->size()));
  return *ctx.comm;
}

namespace {

std::int64_t bytes_per_row(const TensorRef& t) {
  const std::int64_t rows = t.shape()[0];
  return rows == 0 ? 0 : static_cast<std::int64_t>(t.nbytes()) / rows;
}

}  // namespace

void run_all_to_all(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& a = std::get<CollectiveAttrs>(n.attrs);
  Communicator& comm = communicator_for(n, ctx, a.ranks);
  const TensorRef& x = ctx.input(n, 0);
  const TensorRef& out = ctx.output(n, 0);
  const auto send_rows = load_i64(ctx.input(n, 1));
  const std::int64_t rows = x.shape()[0];
  const std::int64_t stride = bytes_per_row(x);
  const auto peers = static_cast<std::size_t>(a.ranks);

  std::string failure;
  std::int64_t total = 0;
  for (std::size_t p = 0; p < peers; ++p) {
    if (send_rows[p] < 0)
      failure = fmt::format("{}: send_counts[{}] = {} is negative", node_label(n), p, send_rows[p]);
    total += send_rows[p];
  }
  if (failure.empty() && total > rows)
    failure = fmt::format("{}: send_counts sum to {} rows but x has {}", node_label(n), total, rows);
  comm.agree(failure);

  std::vector<std::int64_t> recv_rows(peers);
  comm.all_to_all_counts(send_rows, recv_rows);
  std::int64_t received = 0;
  for (auto r : recv_rows) received += r;
  if (received > a.capacity)
    failure = fmt::format("{}: rank {} receives {} rows but the output holds {} (capacity)",
                          node_label(n), comm.rank(), received, a.capacity);
  comm.agree(failure);

  std::vector<std::int64_t> send_bytes(peers), recv_bytes(peers);
  for (std::size_t p = 0; p < peers; ++p) {
    send_bytes[p] = send_rows[p] * stride;
    recv_bytes[p] = recv_rows[p] * stride;
  }
  auto* dst = static_cast<char*>(output_bytes(out));
  comm.all_to_all(input_bytes(x), send_bytes, dst, recv_bytes);
  std::memset(dst + received * stride, 0, out.nbytes() - static_cast<std::size_t>(received * stride));
  store_i64(ctx.output(n, 1), recv_rows);
}

void run_all_gather(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& a = std::get<CollectiveAttrs>(n.attrs);
  Communicator& comm = communicator_for(n, ctx, a.ranks);
  const TensorRef& x = ctx.input(n, 0);
  const auto bytes = static_cast<std::int64_t>(x.nbytes());
  comm.all_gather(input_bytes(x), bytes, output_bytes(ctx.output(n, 0)),
                  std::vector<std::int64_t>(static_cast<std::size_t>(a.ranks), bytes));
}

void run_all_reduce(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& a = std::get<CollectiveAttrs>(n.attrs);
  Communicator& comm = communicator_for(n, ctx, a.ranks);
  const F32Input x(ctx.input(n, 0));
  std::vector<float> values(x.data(), x.data() + x.size());
  comm.all_reduce_sum(values);
  store_f32(ctx.output(n, 0), values);
}

void run_reduce_scatter(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& a = std::get<CollectiveAttrs>(n.attrs);
  Communicator& comm = communicator_for(n, ctx, a.ranks);
  const F32Input x(ctx.input(n, 0));
  const auto block = static_cast<std::int64_t>(x.size()) / a.ranks;
  std::vector<float> mine(static_cast<std::size_t>(block));
  comm.reduce_scatter_sum(std::span<const float>(x.data(), x.size()),
                          std::vector<std::int64_t>(static_cast<std::size_t>(a.ranks), block),
                          mine);
  store_f32(ctx.output(n, 0), mine);
}

}  // namespace porta::detail::reference

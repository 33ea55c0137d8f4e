// The communicator and the collective ops in one process: the single-process communicator's
// semantics, error agreement, the ops' rules and run-time checks, and moe_experts_ep on one rank
// against moe_experts. The multi-rank behaviour is tested under mpirun (tests/mpi).
#include <cstring>
#include <random>

#include <catch2/catch.hpp>

#include <porta/porta.hpp>

#include "core/error_check.hpp"

namespace comm_collective_ops_tests {

using porta::CollectiveAttrs;
using porta::ErrorCode;
using porta::OpKind;
using porta::Tensor;

namespace {

Tensor random_tensor(porta::Shape shape, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = d(rng);
  return Tensor::from_vector<float>(shape, v);
}

std::vector<float> floats(const Tensor& t) {
  const auto* p = t.data_as<float>();
  return {p, p + t.shape().numel()};
}

}  // namespace

TEST_CASE("single-process communicator: rank 0 of 1, copies, agreement", "[comm]") {
  auto comm = porta::single_process_communicator();
  CHECK(comm->rank() == 0);
  CHECK(comm->size() == 1);
  CHECK(comm->kind() == "single");
  CHECK(comm->split(3, 0)->size() == 1);
  const std::vector<int> send{1, 2, 3};
  std::vector<int> recv(3, 0);
  comm->all_to_all(send.data(), std::vector<std::int64_t>{12}, recv.data(),
                   std::vector<std::int64_t>{12});
  CHECK(recv == send);
  REQUIRE_PORTA_ERROR(comm->all_to_all(send.data(), std::vector<std::int64_t>{12}, recv.data(),
                                       std::vector<std::int64_t>{8}),
                      ErrorCode::InvalidArgument, "sends 12 bytes", "expects 8");
  std::vector<float> sum{1.5f, -2};
  comm->all_reduce_sum(sum);
  CHECK(sum == std::vector<float>{1.5f, -2});
  comm->agree("");  // nobody failed: returns
  REQUIRE_PORTA_ERROR(comm->agree("cannot open 'w.safetensors'"), ErrorCode::Backend,
                      "rank 0: cannot open 'w.safetensors'");
  if (!porta::mpi_available())
    REQUIRE_PORTA_ERROR(porta::mpi_world(), ErrorCode::Unsupported, "built without MPI");
}

TEST_CASE("collective ops on one rank: all_to_all keeps its rows, the others copy", "[comm]") {
  for (const char* backend : {"reference", "cpu"}) {
    if (!porta::device_info(backend).available) continue;
    INFO(backend);
    porta::Graph g;
    auto x = g.input("x", {5, 3}, porta::DType::F32);
    auto counts = g.input("counts", {1}, porta::DType::I32);
    auto a2a = g.add_op(OpKind::AllToAll, {x, counts}, CollectiveAttrs{.ranks = 1, .capacity = 6});
    g.output("rows", a2a[0]);
    g.output("recv", a2a[1]);
    g.output("gathered", g.add_op(OpKind::AllGather, {x}, CollectiveAttrs{})[0]);
    g.output("sum", g.add_op(OpKind::AllReduce, {x}, CollectiveAttrs{})[0]);
    g.output("scattered", g.add_op(OpKind::ReduceScatter, {x}, CollectiveAttrs{})[0]);
    auto exe = porta::compile(g, {.backend = backend, .fallback = ""});
    const Tensor xs = random_tensor({5, 3}, 1);
    auto out = exe.run({{"x", xs}, {"counts", Tensor::from_vector<std::int32_t>({1}, {4})}});
    const auto x_values = floats(xs);
    auto rows = floats(out["rows"]);
    REQUIRE(rows.size() == 18);
    CHECK(std::vector<float>(rows.begin(), rows.begin() + 12) ==
          std::vector<float>(x_values.begin(), x_values.begin() + 12));
    CHECK(std::vector<float>(rows.begin() + 12, rows.end()) == std::vector<float>(6, 0.0f));
    CHECK(out["recv"].data_as<std::int32_t>()[0] == 4);
    CHECK(floats(out["gathered"]) == x_values);
    CHECK(floats(out["sum"]) == x_values);
    CHECK(floats(out["scattered"]) == x_values);

    REQUIRE_PORTA_ERROR(
        exe.run({{"x", xs}, {"counts", Tensor::from_vector<std::int32_t>({1}, {7})}}),
        ErrorCode::Backend, "rank 0", "send_counts sum to 7 rows but x has 5");
  }
}

TEST_CASE("collective ops: rules and a communicator of the wrong size", "[comm]") {
  porta::Graph g;
  auto x = g.input("x", {6, 2}, porta::DType::F32);
  auto counts = g.input("counts", {3}, porta::DType::I32);
  REQUIRE_PORTA_ERROR(g.add_op(OpKind::AllToAll, {x, counts}, CollectiveAttrs{.ranks = 2}),
                      ErrorCode::ShapeMismatch, "all_to_all", "send_counts must be [ranks] = [2]");
  REQUIRE_PORTA_ERROR(g.add_op(OpKind::ReduceScatter, {x}, CollectiveAttrs{.ranks = 4}),
                      ErrorCode::ShapeMismatch, "reduce_scatter", "multiple of ranks (4)");
  auto ids = g.input("ids", {6}, porta::DType::I32);
  REQUIRE_PORTA_ERROR(g.add_op(OpKind::AllReduce, {ids}, CollectiveAttrs{}),
                      ErrorCode::DTypeMismatch, "all_reduce", "floating-point");
  CHECK(g.add_op(OpKind::AllGather, {x}, CollectiveAttrs{.ranks = 3})[0].shape() ==
        porta::Shape{18, 2});
  g.output("y", g.add_op(OpKind::AllReduce, {x}, CollectiveAttrs{.ranks = 2})[0]);
  auto exe = porta::compile(g);
  REQUIRE_PORTA_ERROR(exe.run({{"x", random_tensor({6, 2}, 2)},
                               {"counts", Tensor::from_vector<std::int32_t>({3}, {0, 0, 0})},
                               {"ids", Tensor::from_vector<std::int32_t>({6}, {0, 0, 0, 0, 0, 0})}}),
                      ErrorCode::InvalidArgument, "built for 2 ranks but the communicator has 1");
}

TEST_CASE("moe_experts_ep on one rank is moe_experts, bit for bit, whatever the slot order",
          "[comm][moe]") {
  constexpr std::int64_t T = 9, H = 12, I = 6, E = 4, K = 2;
  const Tensor x = random_tensor({T, H}, 3), logits = random_tensor({T, E}, 4);
  const Tensor gate = random_tensor({E, I, H}, 5), up = random_tensor({E, I, H}, 6),
               down = random_tensor({E, H, I}, 7);
  // Slots: experts 2, 0, 3, 1 and a second copy of expert 0 (replicas split its rows).
  const std::vector<std::int64_t> slots{2, 0, 3, 1, 0};
  const auto pick = [&](const Tensor& all) {
    const auto& s = all.shape();
    std::vector<float> v;
    const auto* src = all.data_as<float>();
    for (auto e : slots) v.insert(v.end(), src + e * s[1] * s[2], src + (e + 1) * s[1] * s[2]);
    return Tensor::from_vector<float>({static_cast<std::int64_t>(slots.size()), s[1], s[2]}, v);
  };
  const auto build = [&](bool ep) {
    porta::Graph g;
    auto xv = g.input("x", {T, H}, porta::DType::F32);
    auto route = g.moe_router(g.input("logits", {T, E}, porta::DType::F32),
                              porta::moe::mixtral(E, K));
    std::vector<porta::Value> in{xv, route.weights, route.offsets, route.perm, route.inv,
                                 g.weight("g", ep ? pick(gate) : gate),
                                 g.weight("u", ep ? pick(up) : up),
                                 g.weight("d", ep ? pick(down) : down)};
    if (ep) {
      porta::ExpertParallelAttrs attrs;
      attrs.placement.num_experts = E;
      attrs.placement.rank_experts = {slots};
      g.output("y", g.add_op(OpKind::MoeExpertsEp, in, attrs)[0]);
    } else {
      g.output("y", g.add_op(OpKind::MoeExperts, in, porta::moe::ExpertsAttrs{})[0]);
    }
    return porta::compile(g).run({{"x", x}, {"logits", logits}})["y"];
  };
  const auto expected = floats(build(false));
  const auto got = floats(build(true));
  REQUIRE(got.size() == expected.size());
  CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
}

TEST_CASE("moe_experts_ep: the placement must match the weights", "[comm][moe]") {
  porta::Graph g;
  auto x = g.input("x", {4, 8}, porta::DType::F32);
  auto route = g.moe_router(g.input("logits", {4, 4}, porta::DType::F32), porta::moe::mixtral(4, 2));
  std::vector<porta::Value> in{x, route.weights, route.offsets, route.perm, route.inv,
                               g.weight("g", Tensor::zeros({3, 2, 8}, porta::DType::F32)),
                               g.weight("u", Tensor::zeros({3, 2, 8}, porta::DType::F32)),
                               g.weight("d", Tensor::zeros({3, 8, 2}, porta::DType::F32))};
  porta::ExpertParallelAttrs attrs;
  attrs.placement = porta::ep::contiguous_placement(4, 2);
  REQUIRE_PORTA_ERROR(g.add_op(OpKind::MoeExpertsEp, in, attrs), ErrorCode::ShapeMismatch,
                      "moe_experts_ep", "w_gate holds 3 experts", "gives rank 0 2 slots");
  attrs.rank = 2;
  REQUIRE_PORTA_ERROR(g.add_op(OpKind::MoeExpertsEp, in, attrs), ErrorCode::InvalidArgument,
                      "rank 2 is not among the placement's 2 ranks");
  attrs.rank = 0;
  attrs.placement.rank_experts = {{0, 1}, {1, 2}};
  REQUIRE_PORTA_ERROR(g.add_op(OpKind::MoeExpertsEp, in, attrs), ErrorCode::InvalidArgument,
                      "no rank holds expert 3");
}

}  // namespace comm_collective_ops_tests

// Conformance cases of the collective ops, in their single-process semantics (a communicator of
// one rank, which is what `porta check` compiles with): all_to_all keeps the rows it sends to
// itself and zero-fills the rest of its capacity, all_gather and all_reduce copy, reduce_scatter
// keeps the whole block, and moe_experts_ep with every slot on rank 0 is moe_experts with its
// experts in another order. The multi-rank semantics are tested under mpirun (tests/comm).
#include "check/cases.hpp"

namespace porta::check::detail {

namespace {

using Outs = std::vector<Value>;

void add(std::vector<CaseDef>& cases, OpKind op, std::string label,
         std::function<Outs(CaseBuilder&)> build) {
  cases.push_back({op, std::move(label), std::move(build)});
}

}  // namespace

void cases_all_to_all(std::vector<CaseDef>& c) {
  add(c, OpKind::AllToAll, "[6, 8] 4 rows to self, capacity 7", [](CaseBuilder& b) -> Outs {
    auto outs = b.graph.add_op(
        OpKind::AllToAll,
        {b.input("x", {6, 8}), b.exact_input("counts", Tensor::from_vector<std::int32_t>({1}, {4}))},
        CollectiveAttrs{.ranks = 1, .capacity = 7});
    return {outs[0], outs[1]};
  });
}

void cases_all_gather(std::vector<CaseDef>& c) {
  add(c, OpKind::AllGather, "[3, 5, 4]", [](CaseBuilder& b) -> Outs {
    return {b.graph.add_op(OpKind::AllGather, {b.input("x", {3, 5, 4})}, CollectiveAttrs{})[0]};
  });
}

void cases_all_reduce(std::vector<CaseDef>& c) {
  add(c, OpKind::AllReduce, "[7, 9]", [](CaseBuilder& b) -> Outs {
    return {b.graph.add_op(OpKind::AllReduce, {b.input("x", {7, 9})}, CollectiveAttrs{})[0]};
  });
}

void cases_reduce_scatter(std::vector<CaseDef>& c) {
  add(c, OpKind::ReduceScatter, "[4, 6]", [](CaseBuilder& b) -> Outs {
    return {b.graph.add_op(OpKind::ReduceScatter, {b.input("x", {4, 6})}, CollectiveAttrs{})[0]};
  });
}

void cases_moe_experts_ep(std::vector<CaseDef>& c) {
  add(c, OpKind::MoeExpertsEp, "T=6 H=32 I=16 E=8 K=2, slots in reverse order",
      [](CaseBuilder& b) -> Outs {
        auto routing = random_routing(b.rng, 6, 8, 2);
        ExpertParallelAttrs attrs;
        attrs.placement.num_experts = 8;
        attrs.placement.rank_experts = {{7, 6, 5, 4, 3, 2, 1, 0}};
        std::vector<Value> in{b.input("x", {6, 32}),
                              b.exact_input("weights", routing.weights),
                              b.exact_input("offsets", routing.offsets),
                              b.exact_input("perm", routing.perm),
                              b.exact_input("inv", routing.inv),
                              b.weight("gate", {8, 16, 32}),
                              b.weight("up", {8, 16, 32}),
                              b.weight("down", {8, 32, 16})};
        return {b.graph.add_op(OpKind::MoeExpertsEp, in, attrs)[0]};
      });
}

}  // namespace porta::check::detail

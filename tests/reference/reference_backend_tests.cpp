// The reference backend itself: its family, device info, honest supports() verdicts, and the
// profile it reports through the runtime.

#include <algorithm>
#include <string>

#include <porta/error.hpp>

#include "graph/graph_state.hpp"
#include "reference/ops_test_support.hpp"
#include "reference/reference_backend.hpp"
#include "runtime/backend.hpp"

namespace reference_backend_tests {

using namespace ops_test;

namespace {

// A one-node graph state for asking supports() directly about operand dtypes.
struct OneNode {
  porta::detail::GraphState state;
  porta::Node node;

  OneNode(porta::OpKind op, std::vector<porta::DType> inputs, porta::OpAttrs attrs) {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      porta::ValueInfo v;
      v.kind = porta::ValueKind::Input;
      v.shape = porta::Shape{2, 2};
      v.dtype = inputs[i];
      v.name = "in" + std::to_string(i);
      state.values.push_back(v);
      node.inputs.push_back(static_cast<porta::ValueId>(i));
    }
    node.op = op;
    node.name = std::string("n");  // not = "n": GCC 12 warns -Wrestrict falsely (PR 105329)
    node.attrs = std::move(attrs);
    state.nodes.push_back(node);
  }
};

bool supported(porta::OpKind op, std::vector<porta::DType> inputs,
               porta::OpAttrs attrs = porta::NoAttrs{}) {
  const OneNode one(op, std::move(inputs), std::move(attrs));
  return porta::detail::make_reference_backend()->supports(one.state, one.node).supported;
}

}  // namespace

TEST_CASE("the reference family has one device named reference", "[ops][reference]") {
  const auto family = porta::detail::reference_backend_family();
  CHECK(family.name == "reference");
  const auto devices = family.enumerate();
  REQUIRE(devices.size() == 1);
  CHECK(devices[0].name == "reference");
  CHECK(devices[0].kind == "reference");
  CHECK(devices[0].available);
  CHECK(devices[0].dtypes.size() == std::size(porta::kAllDTypes));

  const auto backend = family.create("");
  CHECK(backend->name() == "reference");
  CHECK(backend->memory_domain() == "host");
  try {
    family.create("0");
    FAIL("expected porta::Error");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::NotFound);
    CHECK_THAT(std::string(e.what()), Catch::Contains("'0'"));
  }
}

TEST_CASE("reference supports() follows the kernels' dtypes", "[ops][reference]") {
  using porta::DType;
  using porta::OpKind;
  CHECK(supported(OpKind::Add, {DType::F32, DType::F32}));
  CHECK(supported(OpKind::Add, {DType::BF16, DType::BF16}));
  CHECK(supported(OpKind::Mul, {DType::I32, DType::I32}));
  CHECK_FALSE(supported(OpKind::Div, {DType::I32, DType::I32}));
  CHECK_FALSE(supported(OpKind::Add, {DType::F32, DType::I32}));
  CHECK(supported(OpKind::Matmul, {DType::F8E4M3, DType::BF16}, porta::MatmulAttrs{}));
  CHECK_FALSE(supported(OpKind::Matmul, {DType::I32, DType::F32}, porta::MatmulAttrs{}));
  CHECK_FALSE(supported(OpKind::Silu, {DType::I64}));
  CHECK(supported(OpKind::Rope, {DType::F16, DType::I64}, porta::RopeAttrs{}));
  CHECK_FALSE(supported(OpKind::Rope, {DType::F32, DType::F32}, porta::RopeAttrs{}));
  CHECK(supported(OpKind::Embedding, {DType::F8E4M3, DType::I32}));
  CHECK_FALSE(supported(OpKind::Embedding, {DType::F32, DType::F32}));
  CHECK(supported(OpKind::Cast, {DType::I8}, porta::CastAttrs{DType::F16}));
  CHECK(supported(OpKind::TopK, {DType::I32}, porta::TopKAttrs{}));
  // Attributes of the wrong kind are refused, not crashed on.
  CHECK_FALSE(supported(OpKind::Softmax, {DType::F32}, porta::NoAttrs{}));
}

TEST_CASE("reference unsupported verdicts say why", "[ops][reference]") {
  const OneNode one(porta::OpKind::Div, {porta::DType::I64, porta::DType::I64}, porta::NoAttrs{});
  const auto verdict = porta::detail::make_reference_backend()->supports(one.state, one.node);
  CHECK_FALSE(verdict.supported);
  CHECK_THAT(verdict.reason, Catch::Contains("div") && Catch::Contains("i64"));
}

TEST_CASE("the reference backend times each op it runs", "[ops][reference]") {
  porta::Graph g;
  auto x = g.input("x", {2, 2}, porta::DType::F32);
  auto y = g.name(g.exp(g.name(g.silu(x), "act")), "expo");
  g.output("y", y);
  auto exe = porta::compile(g);
  exe.run({{"x", f32({2, 2}, {0, 1, 2, 3})}});
  const auto& ops = exe.profile().ops;
  for (const char* name : {"act", "expo"}) {
    INFO(name);
    const auto it =
        std::find_if(ops.begin(), ops.end(), [&](const auto& op) { return op.node == name; });
    REQUIRE(it != ops.end());
    CHECK(it->backend == "reference");
    CHECK(it->time_us >= 0);
  }
}

}  // namespace reference_backend_tests

// The conformance harness behind `porta check`, run by the test suite on every available backend.
#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <porta/porta.hpp>

#include "check/conformance.hpp"
#include "runtime/backend.hpp"

namespace check_conformance_tests {

TEST_CASE("every op of the catalogue has conformance cases", "[check]") {
  const auto covered = porta::check::covered_ops();
  for (const auto& op : porta::all_ops()) {
    INFO("op " << op.name);
    CHECK(std::find(covered.begin(), covered.end(), op.kind) != covered.end());
  }
}

TEST_CASE("every available backend passes the conformance cases", "[check]") {
  porta::check::CheckOptions options;
  options.backends.clear();
  for (const auto& d : porta::list_devices())
    if (d.available) options.backends.push_back(d.name);
  REQUIRE(std::find(options.backends.begin(), options.backends.end(), "reference") !=
          options.backends.end());
  const auto results = porta::check::run_conformance(options);
  std::set<std::string> ops_run;
  for (const auto& r : results) {
    INFO(fmt::format("{} {} {} on {}: {}", r.op, r.label, porta::dtype_name(r.dtype), r.backend,
                     r.message));
    CHECK(
        (r.status == porta::check::Status::Pass || r.status == porta::check::Status::Unsupported));
    if (r.backend == "reference") {
      CHECK(r.status == porta::check::Status::Pass);  // the oracle supports everything
      ops_run.insert(r.op);
    }
  }
  CHECK(ops_run.size() == porta::all_ops().size());
}

namespace {

// A deliberately wrong backend: it claims silu but computes sigmoid, and claims nothing else.
class WrongSiluBackend final : public porta::detail::Backend {
 public:
  std::string name() const override { return "check-wrong-silu"; }
  porta::DeviceInfo info() const override {
    porta::DeviceInfo d;
    d.name = name();
    d.kind = "test";
    return d;
  }
  porta::detail::SupportResult supports(const porta::detail::GraphState& g,
                                        const porta::Node& n) const override {
    if (n.op == porta::OpKind::Silu && g.input_of(n, 0).dtype == porta::DType::F32)
      return porta::detail::SupportResult::yes();
    return porta::detail::SupportResult::no("only f32 silu");
  }
  struct NodesPlan final : porta::detail::Plan {
    std::vector<porta::NodeId> nodes;
  };
  std::unique_ptr<porta::detail::Plan> compile(const porta::detail::GraphState&,
                                               std::span<const porta::NodeId> nodes) override {
    auto plan = std::make_unique<NodesPlan>();
    plan->nodes.assign(nodes.begin(), nodes.end());
    return plan;
  }
  void execute(porta::detail::Plan& plan, const porta::detail::GraphState& g,
               const porta::detail::ExecContext& ctx) override {
    for (auto id : static_cast<NodesPlan&>(plan).nodes) {
      const auto& n = g.nodes[id];
      const auto* x = ctx.input(n, 0).host_as<float>();
      auto* y = ctx.output(n, 0).host_as<float>();
      const auto count = static_cast<std::size_t>(g.input_of(n, 0).shape.numel());
      for (std::size_t i = 0; i < count; ++i) y[i] = 1.0f / (1.0f + std::exp(-x[i]));
    }
  }
};

}  // namespace

TEST_CASE("the harness detects a wrong result and reports unsupported ops", "[check]") {
  porta::detail::register_backend_family(
      {"check-wrong-silu", [] { return std::vector<porta::DeviceInfo>{}; },
       [](std::string_view) -> std::shared_ptr<porta::detail::Backend> {
         return std::make_shared<WrongSiluBackend>();
       }});
  porta::check::CheckOptions options;
  options.backends = {"check-wrong-silu"};
  options.ops = {"silu", "add"};
  options.dtypes = {porta::DType::F32, porta::DType::BF16};
  const auto results = porta::check::run_conformance(options);
  int silu_failures = 0, add_unsupported = 0, bf16_unsupported = 0;
  for (const auto& r : results) {
    if (r.op == "silu" && r.dtype == porta::DType::F32 && r.label != "[0, 8] (empty)") {
      CHECK(r.status == porta::check::Status::Fail);
      CHECK(r.error > r.tolerance);
      ++silu_failures;
    }
    if (r.op == "silu" && r.dtype == porta::DType::BF16)
      bf16_unsupported += r.status == porta::check::Status::Unsupported;
    if (r.op == "add") add_unsupported += r.status == porta::check::Status::Unsupported;
  }
  CHECK(silu_failures == 1);
  CHECK(bf16_unsupported == 2);
  CHECK(add_unsupported == 6);
  const auto matrix = porta::check::format_matrix(results);
  CHECK_THAT(matrix, Catch::Contains("FAIL"));
  CHECK_THAT(matrix, Catch::Contains("unsupported"));
}

TEST_CASE("conformance options are validated", "[check]") {
  porta::check::CheckOptions options;
  options.ops = {"no_such_op"};
  CHECK_THROWS_AS(porta::check::run_conformance(options), porta::Error);
  options.ops = {};
  options.backends = {"no_such_backend"};
  CHECK_THROWS_AS(porta::check::run_conformance(options), porta::Error);
  options.backends = {"reference"};
  options.dtypes = {porta::DType::I32};
  CHECK_THROWS_AS(porta::check::run_conformance(options), porta::Error);
}

}  // namespace check_conformance_tests

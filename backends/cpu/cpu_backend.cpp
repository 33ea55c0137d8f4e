// The cpu backend: every node is lowered once at compile time to a CpuKernel (a oneDNN primitive
// with its weights reordered, or one of our own loops) and executed many times. The backend
// itself only looks nodes up in the lowering tables (cpu_kernel.hpp) and runs the kernels in order.
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "cpu_kernel.hpp"

namespace porta::detail::cpu {

namespace {

const OpLowering* find_lowering(OpKind op) {
  for (auto table : {dense_lowerings(), moe_lowerings()})
    for (const OpLowering& entry : table)
      if (entry.op == op) return &entry;
  return nullptr;
}

std::string host_cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
    }
  return "host CPU";
}

struct CpuPlan final : Plan {
  CpuEnv env;
  std::vector<std::pair<NodeId, std::unique_ptr<CpuKernel>>> kernels;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend() : engine_(dnnl::engine::kind::cpu, 0) {}

  std::string name() const override { return "cpu"; }

  DeviceInfo info() const override {
    DeviceInfo d;
    d.name = "cpu";
    d.kind = "cpu";
    d.description = host_cpu_model();
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_size = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page_size > 0)
      d.memory_bytes = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
    d.dtypes = {DType::F32, DType::BF16};
    d.properties = {{"memory", "host"}, {"library", "oneDNN"}};
    return d;
  }

  SupportResult supports(const GraphState& g, const Node& n) const override {
    const OpLowering* entry = find_lowering(n.op);
    if (entry == nullptr)
      return SupportResult::no(fmt::format("{} has no cpu kernel", op_name(n.op)));
    return entry->supports(g, n);
  }

  std::unique_ptr<Plan> compile(const GraphState& g, std::span<const NodeId> nodes) override {
    auto plan = std::make_unique<CpuPlan>();
    plan->env.engine = engine_;
    plan->env.stream = dnnl::stream(engine_);
    for (NodeId id : nodes) {
      const Node& n = g.nodes.at(id);
      const OpLowering* entry = find_lowering(n.op);
      SupportResult verdict =
          entry ? entry->supports(g, n) : SupportResult::no("no cpu kernel for the op");
      if (!verdict.supported)
        throw Error(ErrorCode::Unsupported, fmt::format("cpu backend cannot run {}: {}",
                                                        describe_node(g, n), verdict.reason));
      try {
        plan->kernels.emplace_back(id, entry->lower(plan->env, g, n));
      } catch (const dnnl::error& e) {
        throw Error(ErrorCode::Backend, fmt::format("cpu backend: oneDNN could not lower {}: {}",
                                                    describe_node(g, n), e.what()));
      }
    }
    return plan;
  }

  void execute(Plan& plan, const GraphState& g, const ExecContext& ctx) override {
    auto& cpu_plan = dynamic_cast<CpuPlan&>(plan);
    for (auto& [id, kernel] : cpu_plan.kernels) {
      try {
        ctx.timed(id, [&] { kernel->run(ctx); });
      } catch (const dnnl::error& e) {
        throw Error(ErrorCode::Backend, fmt::format("cpu backend: oneDNN failed running {}: {}",
                                                    describe_node(g, g.nodes[id]), e.what()));
      }
    }
  }

 private:
  dnnl::engine engine_;
};

}  // namespace

}  // namespace porta::detail::cpu

porta::detail::BackendFamily porta_backend_family_cpu() {
  using porta::detail::cpu::CpuBackend;
  porta::detail::BackendFamily family;
  family.name = "cpu";
  family.enumerate = [] { return std::vector<porta::DeviceInfo>{CpuBackend().info()}; };
  family.create = [](std::string_view device) -> std::shared_ptr<porta::detail::Backend> {
    if (!device.empty())
      throw porta::Error(porta::ErrorCode::NotFound,
                         fmt::format("the cpu backend has no device '{}': it has one device, "
                                     "named plain \"cpu\"",
                                     device));
    return std::make_shared<CpuBackend>();
  };
  return family;
}

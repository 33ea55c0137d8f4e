// The cpu backend: every node is lowered once at compile time to a CpuKernel (a oneDNN primitive
// with its weights reordered, or one of our own loops) and executed many times. The backend
// looks nodes up in the lowering tables (cpu_kernel.hpp), fuses matmul epilogues into the
// matmul's primitive (fusion.hpp), sets the thread count and runs the kernels in order.
#include <omp.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "cpu_kernel.hpp"
#include "cpu_util.hpp"
#include "fusion.hpp"
#include "ggml/block_dot.hpp"
#include "ggml/q8_kernels.hpp"
#include "lowering_log.hpp"
#include "matmul.hpp"
#include "onednn_error.hpp"
#include "op_algorithms.hpp"
#include "quant/quant_cpu.hpp"

namespace porta::detail::cpu {

namespace {

const OpLowering* find_lowering(OpKind op) {
  for (auto table : {dense_lowerings(), eltwise_lowerings(), moe_lowerings(), quant_lowerings(),
                     collective_lowerings()})
    for (const OpLowering& entry : table)
      if (entry.op == op) return &entry;
  return nullptr;
}

// Whether the cpu backend runs `n`: its kernel's own verdict, after the limit every kernel shares
// (each describes its tensors to oneDNN, or to helpers that do, and oneDNN's memory descriptors
// hold at most DNNL_MAX_NDIMS dimensions).
SupportResult cpu_verdict(const GraphState& g, const Node& n) {
  const OpLowering* entry = find_lowering(n.op);
  if (entry == nullptr)
    return SupportResult::no(fmt::format("{} has no cpu kernel", op_name(n.op)));
  for (const auto& values : {n.inputs, n.outputs})
    for (ValueId v : values)
      if (g.values[v].shape.rank() > DNNL_MAX_NDIMS)
        return SupportResult::no(fmt::format("rank {} exceeds oneDNN's {} dimensions",
                                             g.values[v].shape.rank(), DNNL_MAX_NDIMS));
  return entry->supports(g, n);
}

// ggml_q8's path for `porta devices`: the integer kernels' ISA and the block types they cover,
// asked of the kernels so that the line follows what they gain.
std::string ggml_q8_description() {
  if (!ggml::has_q8_isa())
    return "rounded activations through the f32 kernels (no AVX2, or PORTA_GGML_ISA=plain)";
  std::string types;
  for (const gguf::GgmlType t : gguf::kDequantizableTypes)
    if (ggml::has_q8_kernel(t))
      types += fmt::format("{}{}", types.empty() ? "" : ", ", gguf::type_name(t));
  return fmt::format("{} integer kernels ({})", ggml::q8_isa_name(ggml::best_q8_isa()), types);
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

// oneDNN's own enum has values no CPU reports (`all`, the Xeon Phi ISAs): a lookup, not a switch.
std::string isa_name(dnnl::cpu_isa isa) {
  using i = dnnl::cpu_isa;
  static constexpr std::pair<dnnl::cpu_isa, const char*> kNames[] = {
      {i::sse41, "sse41"},
      {i::avx, "avx"},
      {i::avx2, "avx2"},
      {i::avx2_vnni, "avx2_vnni"},
      {i::avx512_core, "avx512_core"},
      {i::avx512_core_vnni, "avx512_core_vnni"},
      {i::avx512_core_bf16, "avx512_core_bf16"},
      {i::avx512_core_amx, "avx512_core_amx"},
  };
  for (const auto& [value, name] : kNames)
    if (value == isa) return name;
  return fmt::format("isa {}", static_cast<int>(isa));
}

struct PlannedKernel {
  NodeId node;  // recorded under this node in the profile
  std::unique_ptr<CpuKernel> kernel;
  std::vector<NodeId> fused;  // nodes computed by this kernel's post-ops, recorded at 0 µs
  bool serial = false;        // tiny: run on the calling thread alone (see single_threaded())
};

// A node whose outputs are a few cache lines' worth (decode's norms, adds, slices, permutes at
// T = 1) runs on one thread: a parallel region costs a barrier, and on a loaded machine a barrier
// waits for whichever thread the OS descheduled (decode ran ~300 regions per token; they were a
// third of its time with the host shared). The weight-streaming and GEMM ops keep their threads,
// and so does any node that reads more than a few MB (a quantized projection's or an expert
// table's weights): decided by the bytes read, not by a list of ops, after the quantized ops,
// missing from such a list, ran decode's weight streams on one of the two cores (W8A8 experts at
// 6 GB/s, where two threads stream 20 GB/s).
// The quantized products are weight streams too: under the size rule, a GGUF's attention and
// shared-expert projections (q4_K, 0.7-3.5 MB each) streamed on one core while the other spun,
// a fifth of decode's time on the 27-layer DeepSeek-V2-Lite-shaped file.
bool single_threaded(const GraphState& g, const Node& n) {
  if (n.op == OpKind::Matmul || n.op == OpKind::Attention || n.op == OpKind::MoeExperts ||
      n.op == OpKind::GroupedMatmul || n.op == OpKind::QuantMatmul ||
      n.op == OpKind::QuantGroupedMatmul || n.op == OpKind::QuantMoeExperts)
    return false;
  constexpr std::uint64_t kTinyBytes = 64 * 1024, kLargeInputBytes = 4 * 1024 * 1024;
  std::uint64_t bytes = 0, read = 0;
  for (ValueId out : n.outputs) {
    const ValueInfo& v = g.value(out);
    bytes += static_cast<std::uint64_t>(v.shape.numel()) * dtype_size(v.dtype);
  }
  for (ValueId in : n.inputs) {
    const ValueInfo& v = g.value(in);
    read += static_cast<std::uint64_t>(v.shape.numel()) * dtype_size(v.dtype);
  }
  return bytes <= kTinyBytes && read <= kLargeInputBytes;
}

struct CpuPlan final : Plan {
  CpuEnv env;
  std::vector<PlannedKernel> kernels;
  std::uint64_t weight_copy_bytes() const override {
    std::uint64_t total = 0;
    for (const auto& k : kernels)
      if (k.kernel) total += k.kernel->weight_copy_bytes();
    return total;
  }
};

// The kernels planned since `first_kernel` get the lowering's log (or "porta kernel" when no
// oneDNN primitive was made); the nodes fused into them say into which.
void note_choices(CpuPlan& plan, const GraphState& g, std::size_t first_kernel, std::string log) {
  for (std::size_t k = first_kernel; k < plan.kernels.size(); ++k) {
    const PlannedKernel& planned = plan.kernels[k];
    const std::string what = log.empty() ? "porta kernel" : log;
    plan.note(planned.node, planned.serial ? what + "; on one thread (a tiny node)" : what);
    for (NodeId f : planned.fused)
      plan.note(f, fmt::format("fused into {} (oneDNN post-op)", g.nodes[planned.node].name));
  }
}

class CpuBackend final : public Backend {
 public:
  CpuBackend() : engine_(dnnl::engine::kind::cpu, 0) {
    std::string error;
    threads_ = configured_threads(&error);
    if (!error.empty()) throw Error(ErrorCode::InvalidArgument, "cpu backend: " + error);
    // The kernels' thread count is fixed on first use from OpenMP's count. execute() lowers
    // that to 1 around tiny nodes, and a first use inside one of those (a kernel that sizes
    // its work at run time) made every parallel loop of the process single-threaded; here no
    // node runs yet.
    (void)cpu_threads();
  }

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
    const dnnl_version_t* version = dnnl_version();
    const bool native_bf16 = native_bf16_matmul(engine_);
    d.properties = {
        {"memory", "host"},
        {"library", fmt::format("oneDNN {}.{}.{}", version->major, version->minor, version->patch)},
        {"isa", isa_name(dnnl::get_effective_cpu_isa())},
        {"threads", std::to_string(threads_)},
        {"bf16_matmul", native_bf16 ? "native (f32 accumulation)"
                                    : "widened to f32 (no bf16 matmul kernel for this ISA)"},
        {"fusion", "matmul + bias/residual add, sub, mul, div, silu, gelu, sigmoid, exp"},
        {"quant_kernels", quant::quant_kernels_description()},
        {"ggml_kernels",
         fmt::format("{} (f32 activations); ggml_q8: {}",
                     ggml::block_isa_name(ggml::best_block_isa()), ggml_q8_description())}};
    return d;
  }

  SupportResult supports(const GraphState& g, const Node& n) const override {
    return cpu_verdict(g, n);
  }
  // The expert GEMMs address each expert's weights through TensorRef::part.
  bool reads_stacked(const GraphState&, const Node& n, std::size_t input) const override {
    return is_expert_weight_input(n, input);
  }

  std::unique_ptr<Plan> compile(const GraphState& g, std::span<const NodeId> nodes) override {
    auto plan = std::make_unique<CpuPlan>();
    plan->env.engine = engine_;
    plan->env.stream = dnnl::stream(engine_);
    // Primitives are created for the thread count they will run with.
    omp_set_num_threads(threads_);
    const std::vector<int> uses = value_uses(g);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const NodeId id = nodes[i];
      const Node& n = g.nodes.at(id);
      LoweringLog log;
      const std::size_t first_kernel = plan->kernels.size();
      const OpLowering* entry = find_lowering(n.op);
      const SupportResult verdict = cpu_verdict(g, n);
      if (!verdict.supported)
        throw Error(ErrorCode::Unsupported, fmt::format("cpu backend cannot run {}: {}",
                                                        describe_node(g, n), verdict.reason));
      try {
        if (auto swiglu = find_swiglu_fusion(g, nodes, i, uses)) {
          const Node& second = g.nodes[nodes[i + 1]];
          PlannedKernel first{id, nullptr, {}};
          first.kernel = swiglu->first.ops.empty()
                             ? entry->lower(plan->env, g, n)
                             : lower_fused_matmul(plan->env, g, n, swiglu->first);
          plan->kernels.push_back(std::move(first));
          plan->kernels.push_back({nodes[i + 1],
                                   lower_fused_matmul(plan->env, g, second, swiglu->second),
                                   {nodes[i + 2]}});
          i += 2;
          note_choices(*plan, g, first_kernel, log.take());
          continue;
        }
        if (n.op == OpKind::Matmul && matmul_accepts_post_ops(g, n)) {
          FusedChain chain = find_matmul_chain(g, nodes, i, uses);
          if (chain.length > 1) {
            PlannedKernel planned{id, lower_fused_matmul(plan->env, g, n, chain.epilogue), {}};
            for (std::size_t j = 1; j < chain.length; ++j) planned.fused.push_back(nodes[i + j]);
            plan->kernels.push_back(std::move(planned));
            i += chain.length - 1;
            note_choices(*plan, g, first_kernel, log.take());
            continue;
          }
        }
        plan->kernels.push_back({id, entry->lower(plan->env, g, n), {}, single_threaded(g, n)});
      } catch (const dnnl::error& e) {
        throw onednn_error(g, n, "lower", e);
      }
      note_choices(*plan, g, first_kernel, log.take());
    }
    return plan;
  }

  void execute(Plan& plan, const GraphState& g, const ExecContext& ctx) override {
    auto& cpu_plan = static_cast<CpuPlan&>(plan);
    // OpenMP's thread count is per calling thread: set it for whichever thread runs us.
    if (omp_get_max_threads() != threads_) omp_set_num_threads(threads_);
    for (auto& [id, kernel, fused, serial] : cpu_plan.kernels) {
      try {
        if (serial && threads_ > 1) {
          omp_set_num_threads(1);
          try {
            ctx.timed(id, [&] { kernel->run(ctx); });
          } catch (...) {
            omp_set_num_threads(threads_);
            throw;
          }
          omp_set_num_threads(threads_);
        } else {
          ctx.timed(id, [&] { kernel->run(ctx); });
        }
      } catch (const dnnl::error& e) {
        throw onednn_error(g, g.nodes[id], "run", e);
      }
      if (!fused.empty() && ctx.recorder != nullptr) {
        const double now = ctx.recorder->now_us();
        ctx.recorder->annotate(id, "fused_ops", static_cast<double>(fused.size()));
        for (NodeId f : fused) {
          ctx.recorder->record(f, now, now);
          ctx.recorder->annotate(f, "fused_into", static_cast<double>(id));
        }
      }
    }
  }

 private:
  dnnl::engine engine_;
  int threads_ = 1;
};

}  // namespace

}  // namespace porta::detail::cpu

porta::detail::BackendFamily porta_backend_family_cpu() {
  using porta::detail::cpu::CpuBackend;
  porta::detail::BackendFamily family;
  family.name = "cpu";
  family.enumerate = [] {
    try {
      return std::vector<porta::DeviceInfo>{CpuBackend().info()};
    } catch (const porta::Error& e) {  // a malformed PORTA_CPU_THREADS: listed, not usable
      porta::DeviceInfo d;
      d.name = "cpu";
      d.kind = "cpu";
      d.available = false;
      d.unavailable_reason = e.what();
      return std::vector<porta::DeviceInfo>{d};
    }
  };
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

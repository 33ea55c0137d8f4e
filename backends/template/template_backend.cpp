// The template backend: the smallest complete device adapter, to copy when adding a device.
//
// It has one device, "template", with its own memory domain (host memory standing in for device
// memory, see template_memory.hpp) and three f32 kernels: add, mul and silu on operands of
// identical shapes. Everything else is declined in supports(), so the runtime places it on the
// fallback backend and copies values across the domain edge. README.md walks through the contract.
#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/ops.hpp>

#include "runtime/backend.hpp"
#include "template_kernels.hpp"
#include "template_memory.hpp"

namespace porta::detail::template_backend {

namespace {

constexpr const char* kDeviceName = "template";

// Add and mul take two operands, silu one; find_kernel() knows no other op.
std::size_t arity_of(OpKind op) { return op == OpKind::Silu ? 1 : 2; }

// One node, lowered: which kernel to launch, on which values, over how many elements. Everything
// here is decided in compile(), so execute() only looks up addresses and launches.
struct Kernel {
  NodeId node = 0;
  KernelFn launch = nullptr;
  std::size_t arity = 0;
  std::array<ValueId, 2> inputs{};
  ValueId output = 0;
  std::size_t count = 0;  // elements; every operand has exactly this many (no broadcasting)
};

// A compiled segment. On a real device it would also own what the kernels need between runs:
// compiled programs, descriptors, prepacked weights, a recorded command buffer or graph.
struct TemplatePlan final : Plan {
  std::vector<Kernel> kernels;
};

// The device address of `value` in the bindings of one run, checked to hold `count` floats.
float* device_floats(const GraphState& g, const ExecContext& ctx, ValueId value,
                     std::size_t count) {
  const TensorRef& ref = ctx.values[value];
  if (ref.buffer == nullptr)
    throw Error(ErrorCode::Internal,
                fmt::format("value '{}' is not present in the template memory domain",
                            g.value(value).name));
  auto& buffer = as_device_buffer(*ref.buffer, "execute");
  check_range(buffer, ref.offset, count * sizeof(float), "execute");
  // The kernels' memory was written by copies of f32 data or by other kernels as f32.
  return reinterpret_cast<float*>(buffer.device_ptr() + ref.offset);
}

class TemplateBackend final : public Backend {
 public:
  // A real device opens the device here, creates its context and a command queue (or stream),
  // and loads or JIT-compiles its kernel library once. A failure is a porta::Error (Backend) that
  // the family's create() lets through to whoever asked for the device.
  TemplateBackend() = default;

  std::string name() const override { return kDeviceName; }

  // What `porta devices` prints and what placement reports rely on. State only what is true:
  // unknown figures stay 0 rather than a guess.
  DeviceInfo info() const override {
    DeviceInfo d;
    d.name = kDeviceName;
    d.kind = "accelerator";
    d.description =
        "template device: a documented skeleton (host memory stands in for device memory)";
    d.memory_bytes = 0;  // unknown; a real device reports its capacity
    d.dtypes = {DType::F32};
    d.properties = {{"memory", "own domain 'template', not host-visible"},
                    {"ops", "add, mul, silu on f32 operands of identical shapes"},
                    {"numerics", "f32 arithmetic, one rounding per op"}};
    return d;
  }

  // A domain of its own: the runtime copies values in and out at the edges with the segments of
  // other domains. A device sharing host memory (a CPU library) keeps the default "host".
  std::string memory_domain() const override { return kDeviceName; }

  // Asked for every node during placement, possibly many times: answer from the node's op, dtypes
  // and shapes alone, allocate nothing, never throw. Say no with a reason a user can act on; it
  // appears in the placement report next to the node sent to the fallback.
  SupportResult supports(const GraphState& g, const Node& n) const override {
    if (!find_kernel(n.op))
      return SupportResult::no(
          fmt::format("{} has no template kernel (it runs add, mul and silu)", op_name(n.op)));
    const std::size_t arity = arity_of(n.op);
    if (n.inputs.size() != arity || n.outputs.size() != 1)
      return SupportResult::no(fmt::format(
          "{} with {} inputs and {} outputs; the template kernel takes {} inputs and one output",
          op_name(n.op), n.inputs.size(), n.outputs.size(), arity));
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const DType t = g.input_of(n, i).dtype;
      if (t != DType::F32)
        return SupportResult::no(
            fmt::format("{} input {} is {}; the template device computes in f32 only",
                        op_name(n.op), i, dtype_name(t)));
    }
    if (const DType t = g.output_of(n, 0).dtype; t != DType::F32)
      return SupportResult::no(
          fmt::format("{} output is {}; the template device computes in f32 only", op_name(n.op),
                      dtype_name(t)));
    const Shape& out = g.output_of(n, 0).shape;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const Shape& in = g.input_of(n, i).shape;
      if (in != out)
        return SupportResult::no(fmt::format(
            "{} input {} has shape {} but the output has {}; the template kernels do not broadcast",
            op_name(n.op), i, in.to_string(), out.to_string()));
    }
    return SupportResult::yes();
  }

  // Buffers in the template domain. A real device allocates device memory and issues DMA
  // transfers here; an asynchronous device may enqueue the copies, as long as copy_out has
  // finished by the time it returns (the runtime reads the host memory right after).
  std::unique_ptr<Buffer> allocate(std::size_t bytes) override {
    return std::make_unique<DeviceBuffer>(bytes);
  }
  void copy_in(Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) override {
    copy_to_device(dst, offset, src, bytes);
  }
  void copy_out(Buffer& src, std::size_t offset, void* dst, std::size_t bytes) override {
    copy_from_device(src, offset, dst, bytes);
  }

  // Once per segment, at porta::compile(): validate every node and choose its kernel, so run()
  // does no checking and no lookup. A real device compiles or fetches kernel binaries, builds
  // descriptors and prepacks weights here. The runtime only hands over nodes supports() accepted,
  // but a backend must not trust that: a mismatch is an Error, never a crash.
  std::unique_ptr<Plan> compile(const GraphState& g, std::span<const NodeId> nodes) override {
    auto plan = std::make_unique<TemplatePlan>();
    plan->kernels.reserve(nodes.size());
    for (NodeId id : nodes) {
      const Node& n = g.nodes.at(id);
      if (auto verdict = supports(g, n); !verdict.supported)
        throw Error(ErrorCode::Unsupported, fmt::format("template backend cannot run {}: {}",
                                                        describe_node(g, n), verdict.reason));
      Kernel k;
      k.node = id;
      k.launch = *find_kernel(n.op);
      k.arity = n.inputs.size();
      for (std::size_t i = 0; i < k.arity; ++i) k.inputs[i] = n.inputs[i];
      k.output = n.outputs[0];
      k.count = static_cast<std::size_t>(g.output_of(n, 0).shape.numel());
      plan->kernels.push_back(k);
    }
    return plan;
  }

  // Many times, once per run(): bind this run's addresses and launch the kernels in order, each
  // timed for the profile. A real device enqueues the launches on its queue and either records
  // device timestamps (OpRecorder::record's device_us) or synchronises per op when profiling.
  // One backend object serves every Executable from any thread: execute() touches only the plan
  // and the context it is given, never mutable state of the backend, so it needs no lock.
  void execute(Plan& plan, const GraphState& g, const ExecContext& ctx) override {
    const auto* template_plan = dynamic_cast<const TemplatePlan*>(&plan);
    if (template_plan == nullptr)
      throw Error(ErrorCode::Internal, "the template backend was given a plan it did not compile");
    for (const Kernel& k : template_plan->kernels) {
      const float* a = device_floats(g, ctx, k.inputs[0], k.count);
      const float* b = k.arity == 2 ? device_floats(g, ctx, k.inputs[1], k.count) : nullptr;
      float* out = device_floats(g, ctx, k.output, k.count);
      ctx.timed(k.node, [&] { k.launch(a, b, out, k.count); });
    }
  }

  // The runtime calls this after the last step of a run, before copying outputs out. A real
  // asynchronous device waits for its queue here; the template's kernels have already finished.
  void synchronize() override {}
};

}  // namespace

}  // namespace porta::detail::template_backend

// Found by the runtime's registry through the generated builtin_backends.inc (the family id given
// to porta_add_backend in CMakeLists.txt). The family lists the devices and creates them by the
// text after ':' in a backend name: "template" has one device, named plain "template".
porta::detail::BackendFamily porta_backend_family_template() {
  using porta::detail::template_backend::TemplateBackend;
  porta::detail::BackendFamily family;
  family.name = "template";
  // A real family probes its driver here and lists missing devices as unavailable, with the
  // reason, instead of throwing: `porta devices` must work on machines without the hardware.
  family.enumerate = [] { return std::vector<porta::DeviceInfo>{TemplateBackend().info()}; };
  family.create = [](std::string_view device) -> std::shared_ptr<porta::detail::Backend> {
    if (!device.empty())
      throw porta::Error(porta::ErrorCode::NotFound,
                         fmt::format("the template backend has no device '{}': it has one device, "
                                     "named plain \"template\"",
                                     device));
    return std::make_shared<TemplateBackend>();
  };
  return family;
}

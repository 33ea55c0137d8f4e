// The opencl backend: one porta device per OpenCL 1.2+ device ("opencl:N"; plain "opencl" is
// opencl:0), each with its own context, in-order queue and memory domain. Values stay in device
// buffers between ops; the runtime copies them only at the edges with other domains. Nodes are
// lowered once per segment (opencl_lowering.hpp); each run only binds addresses and enqueues, and
// reads back the records of the device-side index checks when the segment has any.
#include <charconv>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/ops.hpp>

#include "opencl_lowering.hpp"
#include "opencl_memory.hpp"
#include "opencl_runtime.hpp"
#include "opencl_tuning.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::opencl {

namespace {

// "porta kernels rms_norm" for an op lowered onto porta's own kernels.
std::string kernel_names(const LoweredOp& op) {
  std::string names;
  for (const Kernel& k : op.kernels) {
    char name[128] = {};
    if (clGetKernelInfo(k.get(), CL_KERNEL_FUNCTION_NAME, sizeof(name) - 1, name, nullptr) !=
        CL_SUCCESS)
      continue;
    names += names.empty() ? "porta kernel " : ", ";
    names += name;
  }
  return names.empty() ? "porta (no kernel: a view or a copy)" : names;
}

struct OpenclPlan final : Plan {
  std::vector<LoweredOp> ops;
  // The records of every op's index checks (opencl_lowering.hpp), null when no op checks any.
  std::unique_ptr<ClBuffer> check_records;
  std::size_t check_count = 0;
};

class OpenclBackend final : public Backend {
 public:
  OpenclBackend(DeviceLocation location, int index) : device_(location, index) {
    load_saved_tuning(device_);  // `porta tune` results for this device, if any
  }

  std::string name() const override { return fmt::format("opencl:{}", device_.index()); }
  DeviceInfo info() const override { return device_.info(); }
  std::string memory_domain() const override { return name(); }

  SupportResult supports(const GraphState& g, const Node& n) const override {
    return supports_node(device_, g, n);
  }

  std::unique_ptr<Buffer> allocate(std::size_t bytes) override {
    return allocate_buffer(device_, bytes);
  }
  void copy_in(Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) override {
    write_buffer(device_, dst, offset, src, bytes);
  }
  void copy_out(Buffer& src, std::size_t offset, void* dst, std::size_t bytes) override {
    read_buffer(device_, src, offset, dst, bytes);
  }

  std::unique_ptr<Plan> compile(const GraphState& g, std::span<const NodeId> nodes) override {
    auto plan = std::make_unique<OpenclPlan>();
    plan->ops.reserve(nodes.size());
    for (NodeId id : nodes) {
      const Node& n = g.nodes.at(id);
      if (auto verdict = supports(g, n); !verdict.supported)
        throw Error(ErrorCode::Unsupported, fmt::format("{} cannot run {}: {}", name(),
                                                        describe_node(g, n), verdict.reason));
      plan->ops.push_back(lower_node(device_, g, n));
      plan->note(id, plan->ops.back().implementation.empty() ? kernel_names(plan->ops.back())
                                                             : plan->ops.back().implementation);
      plan->ops.back().node = id;
      plan->ops.back().first_check = plan->check_count;
      plan->check_count += plan->ops.back().checks.size();
    }
    if (plan->check_count > 0)
      plan->check_records = allocate_buffer(device_, plan->check_count * sizeof(CheckRecord));
    return plan;
  }

  // Enqueues every op in order. With profiling, each op is waited for so that its host time and
  // its device time (the sum of its commands' event times) are its own.
  void execute(Plan& plan, const GraphState& g, const ExecContext& ctx) override {
    auto* opencl_plan = dynamic_cast<OpenclPlan*>(&plan);
    if (opencl_plan == nullptr)
      throw Error(ErrorCode::Internal,
                  fmt::format("{} was given a plan it did not compile", name()));
    for (const LoweredOp& op : opencl_plan->ops) {
      const Bindings bindings(ctx, device_, opencl_plan->check_records.get(), op.first_check);
      Enqueuer queue(device_, ctx.recorder != nullptr);
      try {
        if (ctx.recorder == nullptr) {
          op.run(bindings, queue);
          continue;
        }
        const double start = ctx.recorder->now_us();
        op.run(bindings, queue);
        const double device_us = queue.finish_and_time();
        ctx.recorder->record(op.node, start, ctx.recorder->now_us(), device_us);
      } catch (const Error& e) {
        throw Error(e.code(), fmt::format("{} running {}: {}", name(),
                                          describe_node(g, g.nodes[op.node]), e.what()));
      }
    }
    if (opencl_plan->check_count > 0) raise_failed_check(*opencl_plan, g);
  }

  void synchronize() override { check_cl(clFinish(device_.queue()), "waiting for the queue"); }

  Device& device() { return device_; }

 private:
  // One blocking read of every check record of the run (it also waits for the queue); the first
  // failed check in plan order becomes the error, as the reference would have raised it.
  void raise_failed_check(const OpenclPlan& plan, const GraphState& g) {
    std::vector<CheckRecord> records(plan.check_count);
    read_buffer(device_, *plan.check_records, 0, records.data(),
                records.size() * sizeof(CheckRecord));
    for (const LoweredOp& op : plan.ops)
      for (std::size_t i = 0; i < op.checks.size(); ++i) {
        const CheckRecord& record = records[op.first_check + i];
        if (record.position < 0) continue;
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{} running {}: {}", name(), describe_node(g, g.nodes[op.node]),
                                op.checks[i].describe(record)));
      }
  }

  mutable Device device_;
};

// Every device, discovered once per process (drivers are slow to enumerate).
struct Discovery {
  std::vector<DeviceLocation> devices;
  std::string why_none;
};
const Discovery& discovery() {
  static const Discovery found = [] {
    Discovery d;
    d.devices = discover_devices(&d.why_none);
    return d;
  }();
  return found;
}

int parse_device_index(std::string_view device, std::size_t count) {
  if (device.empty()) return 0;
  int index = -1;
  const auto [end, error] = std::from_chars(device.data(), device.data() + device.size(), index);
  if (error != std::errc() || end != device.data() + device.size() || index < 0 ||
      static_cast<std::size_t>(index) >= count)
    throw Error(ErrorCode::NotFound,
                fmt::format("the opencl backend has no device '{}': it has {} device(s), "
                            "opencl:0 to opencl:{}",
                            device, count, count == 0 ? 0 : count - 1));
  return index;
}

// One backend per device for the process, whichever name ("opencl", "opencl:0") asked first: two
// objects for one device would be two memory domains of the same name.
std::shared_ptr<OpenclBackend> backend_for(int index) {
  static std::mutex mutex;
  static std::map<int, std::shared_ptr<OpenclBackend>> backends;
  std::lock_guard lock(mutex);
  auto& slot = backends[index];
  if (!slot)
    slot = std::make_shared<OpenclBackend>(discovery().devices.at(static_cast<std::size_t>(index)),
                                           index);
  return slot;
}

}  // namespace

Device& device_of(Backend& backend) {
  auto* opencl = dynamic_cast<OpenclBackend*>(&backend);
  if (opencl == nullptr)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("'{}' is not an opencl backend", backend.name()));
  return opencl->device();
}

}  // namespace porta::detail::opencl

porta::detail::BackendFamily porta_backend_family_opencl() {
  using namespace porta::detail::opencl;
  porta::detail::BackendFamily family;
  family.name = "opencl";
  family.enumerate = [] {
    std::vector<porta::DeviceInfo> devices;
    const auto& found = discovery();
    if (found.devices.empty()) {
      porta::DeviceInfo d;
      d.name = "opencl";
      d.kind = "gpu";
      d.description = "OpenCL devices";
      d.available = false;
      d.unavailable_reason = found.why_none;
      devices.push_back(std::move(d));
      return devices;
    }
    for (std::size_t i = 0; i < found.devices.size(); ++i) {
      try {
        devices.push_back(backend_for(static_cast<int>(i))->info());
      } catch (const porta::Error& e) {
        porta::DeviceInfo d = describe_device(found.devices[i], static_cast<int>(i));
        d.available = false;
        d.unavailable_reason = e.what();
        devices.push_back(std::move(d));
      }
    }
    return devices;
  };
  family.create = [](std::string_view device) -> std::shared_ptr<porta::detail::Backend> {
    const auto& found = discovery();
    if (found.devices.empty())
      throw porta::Error(porta::ErrorCode::NotFound,
                         fmt::format("the opencl backend is unavailable: {}", found.why_none));
    const int index = parse_device_index(device, found.devices.size());
    return backend_for(index);
  };
  return family;
}

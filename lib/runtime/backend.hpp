// The backend contract (internal): what a device must provide for ops to lower onto it.
//
// A Backend is a thin adapter: it answers supports() honestly and cheaply, manages buffers in its
// memory domain, compiles a segment (consecutive nodes placed on it) into a Plan once, and
// executes plans. Placement, memory planning, transfers and profiling are shared code in
// lib/runtime. Backends are registered by family ("cpu", "opencl", ...) and created per device
// ("opencl:1"); one Backend object serves every Executable that uses it, from any thread, so its
// methods must be safe to call concurrently for different plans. backends/template/README.md
// walks through adding one.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <porta/comm.hpp>
#include <porta/device.hpp>
#include <porta/error.hpp>
#include <porta/graph.hpp>

#include "graph/graph_state.hpp"

namespace porta::detail {

// Memory in one backend's domain. Host-visible memory exposes a pointer.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual std::size_t size() const = 0;
  virtual void* host_ptr() = 0;  // nullptr when the memory is not host-visible
};

// Where one value lives while a plan executes.
struct TensorRef {
  Buffer* buffer = nullptr;
  std::size_t offset = 0;
  const ValueInfo* info = nullptr;  // shape and dtype
  // A stacked constant (Tensor::stacked()) has no buffer: its parts along dimension 0 are at
  // these addresses. Only inputs for which the backend's reads_stacked() said yes are bound so.
  std::span<void* const> parts = {};

  // Part i along dimension 0 (an expert's matrix), stacked or not.
  const void* part(std::int64_t i) const {
    if (!parts.empty()) return parts[static_cast<std::size_t>(i)];
    const std::int64_t n = info->shape.rank() == 0 ? 1 : info->shape[0];
    return static_cast<const char*>(host()) +
           static_cast<std::size_t>(i) * (n == 0 ? 0 : nbytes() / static_cast<std::size_t>(n));
  }

  void* host() const {
    if (buffer == nullptr) return nullptr;
    auto* base = static_cast<char*>(buffer->host_ptr());
    return base == nullptr ? nullptr : base + offset;
  }
  template <class T>
  T* host_as() const {
    return static_cast<T*>(host());
  }
  const Shape& shape() const { return info->shape; }
  DType dtype() const { return info->dtype; }
  std::size_t nbytes() const {
    return static_cast<std::size_t>(info->shape.numel()) * dtype_size(info->dtype);
  }
};

// The inputs of the MoE ops that are stacked expert weights [E, N, K]: grouped_matmul's weights,
// moe_experts' and moe_experts_ep's routed gate, up and down, and the data, scales and zeros of
// their quantized forms.
// Backends whose kernels address experts through TensorRef::part answer reads_stacked() with this.
inline bool is_expert_weight_input(const Node& n, std::size_t input) {
  return (n.op == OpKind::GroupedMatmul && input == 1) ||
         ((n.op == OpKind::MoeExperts || n.op == OpKind::MoeExpertsEp) && input >= 5 &&
          input <= 7) ||
         (n.op == OpKind::QuantGroupedMatmul && input >= 2) ||
         (n.op == OpKind::QuantMoeExperts && input >= 5);
}

struct SupportResult {
  bool supported = false;
  std::string reason;  // why not, for the placement report
  static SupportResult yes() { return {true, {}}; }
  static SupportResult no(std::string why) { return {false, std::move(why)}; }
};

// Receives per-op timings. Times are microseconds since the start of run().
class OpRecorder {
 public:
  virtual ~OpRecorder() = default;
  virtual void record(NodeId node, double start_us, double end_us, double device_us = -1) = 0;
  // Adds a backend-specific figure (OpProfile::metrics) to the op recorded last for `node`.
  virtual void annotate(NodeId node, const std::string& key, double value) = 0;
  virtual double now_us() const = 0;
};

struct ExecContext {
  std::span<const TensorRef> values;  // indexed by ValueId, in this backend's memory domain
  OpRecorder* recorder = nullptr;     // null when profiling is off
  // The processes collective ops exchange with (CompileOptions::comm); never null at run time.
  Communicator* comm = nullptr;

  const TensorRef& input(const Node& n, std::size_t i) const { return values[n.inputs[i]]; }
  const TensorRef& output(const Node& n, std::size_t i) const { return values[n.outputs[i]]; }

  // Runs `body` and records its wall time for `node` when profiling.
  template <class F>
  void timed(NodeId node, F&& body) const {
    if (recorder == nullptr) {
      body();
      return;
    }
    const double start = recorder->now_us();
    body();
    recorder->record(node, start, recorder->now_us());
  }
};

// A compiled segment. Backends subclass it to hold their primitives, kernels, tile programs.
class Plan {
 public:
  virtual ~Plan() = default;

  // Bytes of weight copies the plan keeps (reordered into a kernel's preferred layout, widened to
  // another dtype): reported by Executable::copied_weight_bytes.
  virtual std::uint64_t weight_copy_bytes() const { return 0; }

  // What compile() chose for each node, in words: the oneDNN implementation, the CLBlast routine,
  // porta's kernel and its tile configuration, nodes fused into another, the weight layout.
  // Executable::describe() and PORTA_VERBOSE print it; a node with no entry shows the backend only.
  void note(NodeId node, std::string what) { choices_[node] = std::move(what); }
  const std::map<NodeId, std::string>& choices() const { return choices_; }

 private:
  std::map<NodeId, std::string> choices_;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // The canonical device name: "reference", "cpu", "opencl:0", "npu-sim:910b2".
  virtual std::string name() const = 0;
  virtual DeviceInfo info() const = 0;
  // Backends in the same domain read each other's buffers directly; values crossing to another
  // domain are copied by the runtime (copy_out from one, copy_in to the other).
  virtual std::string memory_domain() const { return "host"; }

  // Honest and cheap; never throws for an op it cannot run, never aborts.
  virtual SupportResult supports(const GraphState& graph, const Node& node) const = 0;
  // Whether the kernel for `node` addresses its input `input` part by part (TensorRef::part), so
  // that a stacked constant there needs no contiguous copy. Host-domain backends only; the
  // runtime gathers a stacked constant into one buffer when any reader says no (and counts it).
  virtual bool reads_stacked(const GraphState& graph, const Node& node, std::size_t input) const {
    (void)graph, (void)node, (void)input;
    return false;
  }

  // Buffers. Host-domain backends use the runtime's host buffers and need not override these.
  virtual std::unique_ptr<Buffer> allocate(std::size_t bytes);
  virtual void copy_in(Buffer& dst, std::size_t offset, const void* src, std::size_t bytes);
  virtual void copy_out(Buffer& src, std::size_t offset, void* dst, std::size_t bytes);

  // Validation and kernel choice, once per segment. `nodes` are in execution order.
  virtual std::unique_ptr<Plan> compile(const GraphState& graph, std::span<const NodeId> nodes) = 0;
  // Runs a plan. All inputs of its nodes are present in ctx.values, outputs are allocated.
  virtual void execute(Plan& plan, const GraphState& graph, const ExecContext& ctx) = 0;
  // Waits for queued work (asynchronous devices).
  virtual void synchronize() {}

  // The normalised error `porta check` accepts from this backend for `op` in `dtype`, where its
  // numerics differ from the reference's by design (npu-sim rounds each cube kernel's output);
  // `contraction` is the case's longest dot product. nullopt: the library's default tolerance.
  virtual std::optional<double> conformance_tolerance(OpKind op, DType dtype,
                                                      std::int64_t contraction) const {
    (void)op, (void)dtype, (void)contraction;
    return std::nullopt;
  }
};

// Plain host memory, 64-byte aligned; also wraps memory someone else owns.
class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(std::size_t bytes);                  // owning, zero-filled
  HostBuffer(void* borrowed, std::size_t bytes) noexcept;  // non-owning
  // Points a non-owning buffer at other memory (a run's input or output tensor).
  void rebind(void* borrowed, std::size_t bytes) noexcept;
  ~HostBuffer() override;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  std::size_t size() const override { return size_; }
  void* host_ptr() override { return data_; }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
  bool owned_ = false;
};

// ---- registry ---------------------------------------------------------------------------------

struct BackendFamily {
  std::string name;  // "cpu", "opencl", "npu-sim"
  // Every device of the family, available or not (for `porta devices`).
  std::function<std::vector<DeviceInfo>()> enumerate;
  // Creates the backend for `device` (the text after ':' in the name, maybe empty). Throws
  // porta::Error when the device does not exist or is unavailable.
  std::function<std::shared_ptr<Backend>(std::string_view device)> create;
};

// Adds a family; a family of the same name is replaced. Thread-safe.
void register_backend_family(BackendFamily family);
// The backend for a name like "cpu" or "opencl:1", created once per process and shared.
// Throws porta::Error (NotFound) naming the backend and listing the known ones.
std::shared_ptr<Backend> get_backend(const std::string& name);
std::vector<std::string> backend_family_names();

}  // namespace porta::detail

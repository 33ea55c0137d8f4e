// Two small backends registered from the tests, to exercise placement, fallback, pins and
// transfers between memory domains without any real device:
//   "test-add": host memory, runs only Add of two same-shape f32 tensors.
//   "test-dev": its own memory domain ("test-dev", buffers the host cannot see), runs Add and Mul
//               of same-shape f32 tensors, and counts allocations and copies.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/backend.hpp"

namespace runtime_test {

using porta::detail::Backend;
using porta::detail::Buffer;
using porta::detail::ExecContext;
using porta::detail::GraphState;
using porta::detail::Plan;
using porta::detail::SupportResult;

// Both test backends run elementwise ops on two f32 operands of one shape, and nothing else.
inline SupportResult same_shape_f32_binary(const GraphState& g, const porta::Node& n,
                                           std::initializer_list<porta::OpKind> ops,
                                           const std::string& who) {
  bool known = false;
  for (auto op : ops) known = known || n.op == op;
  if (!known)
    return SupportResult::no(fmt::format("{} does not implement {}", who, porta::op_name(n.op)));
  const auto& a = g.input_of(n, 0);
  const auto& b = g.input_of(n, 1);
  if (a.dtype != porta::DType::F32 || b.dtype != porta::DType::F32)
    return SupportResult::no(fmt::format("{} takes only f32", who));
  if (a.shape != b.shape)
    return SupportResult::no(fmt::format("{} cannot broadcast {} with {}", who, a.shape.to_string(),
                                         b.shape.to_string()));
  return SupportResult::yes();
}

struct NodeListPlan final : Plan {
  std::vector<porta::NodeId> nodes;
};

inline void apply_binary(porta::OpKind op, const float* a, const float* b, float* out,
                         std::size_t count) {
  for (std::size_t i = 0; i < count; ++i)
    out[i] = op == porta::OpKind::Add ? a[i] + b[i] : a[i] * b[i];
}

class TestAddBackend final : public Backend {
 public:
  std::string name() const override { return "test-add"; }
  porta::DeviceInfo info() const override {
    porta::DeviceInfo d;
    d.name = "test-add";
    d.kind = "test";
    return d;
  }
  SupportResult supports(const GraphState& g, const porta::Node& n) const override {
    return same_shape_f32_binary(g, n, {porta::OpKind::Add}, "test-add");
  }
  std::unique_ptr<Plan> compile(const GraphState&, std::span<const porta::NodeId> nodes) override {
    auto plan = std::make_unique<NodeListPlan>();
    plan->nodes.assign(nodes.begin(), nodes.end());
    return plan;
  }
  void execute(Plan& plan, const GraphState& g, const ExecContext& ctx) override {
    for (auto id : static_cast<NodeListPlan&>(plan).nodes) {
      const porta::Node& n = g.nodes[id];
      ctx.timed(id, [&] {
        const auto& out = ctx.output(n, 0);
        apply_binary(n.op, ctx.input(n, 0).host_as<float>(), ctx.input(n, 1).host_as<float>(),
                     out.host_as<float>(), static_cast<std::size_t>(out.shape().numel()));
      });
      ++executed;
    }
  }
  std::atomic<int> executed{0};
};

// Device memory the host cannot address: host_ptr() is null, so every byte must move through
// copy_in/copy_out.
class DeviceBuffer final : public Buffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : storage_(bytes) {}
  std::size_t size() const override { return storage_.size(); }
  void* host_ptr() override { return nullptr; }
  std::byte* device_bytes() { return storage_.data(); }

 private:
  std::vector<std::byte> storage_;
};

// Named "test-dev" by default; its memory domain has the same name, so two instances with
// different names are two devices that cannot see each other's memory.
class TestDeviceBackend final : public Backend {
 public:
  explicit TestDeviceBackend(std::string name = "test-dev") : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  porta::DeviceInfo info() const override {
    porta::DeviceInfo d;
    d.name = name_;
    d.kind = "accelerator";
    return d;
  }
  std::string memory_domain() const override { return name_; }
  SupportResult supports(const GraphState& g, const porta::Node& n) const override {
    return same_shape_f32_binary(g, n, {porta::OpKind::Add, porta::OpKind::Mul}, name_);
  }
  std::unique_ptr<Buffer> allocate(std::size_t bytes) override {
    ++allocations;
    return std::make_unique<DeviceBuffer>(bytes);
  }
  void copy_in(Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) override {
    check_range(dst, offset, bytes);
    if (bytes > 0) std::memcpy(device(dst) + offset, src, bytes);
    ++copy_in_calls;
    copy_in_bytes += bytes;
  }
  void copy_out(Buffer& src, std::size_t offset, void* dst, std::size_t bytes) override {
    check_range(src, offset, bytes);
    if (bytes > 0) std::memcpy(dst, device(src) + offset, bytes);
    ++copy_out_calls;
    copy_out_bytes += bytes;
  }
  std::unique_ptr<Plan> compile(const GraphState&, std::span<const porta::NodeId> nodes) override {
    auto plan = std::make_unique<NodeListPlan>();
    plan->nodes.assign(nodes.begin(), nodes.end());
    return plan;
  }
  void execute(Plan& plan, const GraphState& g, const ExecContext& ctx) override {
    for (auto id : static_cast<NodeListPlan&>(plan).nodes) {
      const porta::Node& n = g.nodes[id];
      ctx.timed(id, [&] {
        const auto& out = ctx.output(n, 0);
        auto at = [](const porta::detail::TensorRef& ref) {
          return reinterpret_cast<float*>(device(*ref.buffer) + ref.offset);
        };
        apply_binary(n.op, at(ctx.input(n, 0)), at(ctx.input(n, 1)), at(out),
                     static_cast<std::size_t>(out.shape().numel()));
      });
      ++executed;
    }
  }

  std::atomic<int> allocations{0};
  std::atomic<int> copy_in_calls{0};
  std::atomic<int> copy_out_calls{0};
  std::atomic<std::size_t> copy_in_bytes{0};
  std::atomic<std::size_t> copy_out_bytes{0};
  std::atomic<int> executed{0};
  std::atomic<int> out_of_range{0};  // copies that would overrun a buffer (must stay 0)

 private:
  std::string name_;
  static std::byte* device(Buffer& buffer) {
    return dynamic_cast<DeviceBuffer&>(buffer).device_bytes();
  }
  void check_range(const Buffer& buffer, std::size_t offset, std::size_t bytes) {
    if (offset > buffer.size() || bytes > buffer.size() - offset) {
      ++out_of_range;
      throw porta::Error(porta::ErrorCode::Internal, "test-dev copy out of range");
    }
  }
};

// Registers `backend` as the only device of the family of its name; returns it for inspection.
// Registering again replaces the previous instance (the registry drops its cached one). The
// family enumerates no devices, so `porta devices` and list_devices() stay as they were.
template <class B>
std::shared_ptr<B> install(std::shared_ptr<B> backend) {
  porta::detail::BackendFamily family;
  family.name = backend->name();
  family.enumerate = [] { return std::vector<porta::DeviceInfo>{}; };
  family.create = [backend](std::string_view device) -> std::shared_ptr<Backend> {
    if (!device.empty())
      throw porta::Error(porta::ErrorCode::NotFound,
                         fmt::format("{} has no device '{}'", backend->name(), device));
    return backend;
  };
  porta::detail::register_backend_family(std::move(family));
  return backend;
}

}  // namespace runtime_test

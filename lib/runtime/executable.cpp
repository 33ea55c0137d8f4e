// compile() and Executable::run(): dead-node removal, placement, segmentation, transfers at
// memory-domain edges, the memory plan, lowering each segment once; then cheap runs.
#include <porta/executable.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "graph/catalogue.hpp"
#include "runtime/backend.hpp"
#include "runtime/memory_plan.hpp"
#include "runtime/placement.hpp"

namespace porta {

namespace detail {

namespace {

constexpr int kHostDomain = 0;

struct Domain {
  std::string name;
  std::shared_ptr<Backend> owner;  // allocates and copies; null for the host domain
  std::unique_ptr<Buffer> arena;
  std::vector<std::unique_ptr<Buffer>> constant_buffers;
  std::vector<TensorRef> refs;  // by ValueId; entries without a buffer are not present here
  std::size_t arena_bytes = 0;
  std::size_t unplanned_bytes = 0;

  void copy_in(const TensorRef& dst, const void* src, std::size_t bytes) const {
    if (owner) {
      owner->copy_in(*dst.buffer, dst.offset, src, bytes);
    } else if (bytes > 0) {
      std::memcpy(dst.host(), src, bytes);
    }
  }
  void copy_out(const TensorRef& src, void* dst, std::size_t bytes) const {
    if (owner) {
      owner->copy_out(*src.buffer, src.offset, dst, bytes);
    } else if (bytes > 0) {
      std::memcpy(dst, src.host(), bytes);
    }
  }
};

struct Step {
  enum class Kind { Segment, Transfer } kind = Kind::Segment;
  // Segment
  std::shared_ptr<Backend> backend;
  std::unique_ptr<Plan> plan;
  std::vector<NodeId> nodes;
  // Segment (its domain) or Transfer (the destination)
  int domain = kHostDomain;
  // Transfer
  ValueId value = 0;
  int from_domain = kHostDomain;
};

class RunRecorder final : public OpRecorder {
 public:
  RunRecorder(const GraphState& g, const std::vector<OpCost>& costs,
              const std::vector<std::string>& backend_of_node, Profile& profile)
      : g_(g),
        costs_(costs),
        backend_of_node_(backend_of_node),
        profile_(profile),
        start_(std::chrono::steady_clock::now()) {}

  void record(NodeId node, double start_us, double end_us, double device_us) override {
    OpProfile op;
    op.node = g_.nodes[node].name;
    op.op = std::string(op_name(g_.nodes[node].op));
    op.backend = backend_of_node_[node];
    op.start_us = start_us;
    op.time_us = end_us - start_us;
    op.device_us = device_us;
    op.flops = costs_[node].flops;
    op.bytes = costs_[node].bytes;
    profile_.ops.push_back(std::move(op));
  }
  void annotate(NodeId node, const std::string& key, double value) override {
    const std::string& name = g_.nodes[node].name;
    for (auto op = profile_.ops.rbegin(); op != profile_.ops.rend(); ++op)
      if (op->node == name) {
        op->metrics[key] = value;
        return;
      }
  }
  double now_us() const override {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start_)
        .count();
  }

 private:
  const GraphState& g_;
  const std::vector<OpCost>& costs_;
  const std::vector<std::string>& backend_of_node_;
  Profile& profile_;
  std::chrono::steady_clock::time_point start_;
};

// Marks a node without a placement (dead code) in ExecutableImpl::placement_of_node. A
// namespace-scope constant, not a static member: an odr-used static member of the exported
// ExecutableImpl would be emitted as a unique global and leak out of libporta.
constexpr std::size_t kNoPlacement = static_cast<std::size_t>(-1);

}  // namespace

struct ExecutableImpl {
  GraphState graph;
  CompileOptions options;
  std::vector<NodePlacement> placement;
  std::vector<std::string> backend_of_node;    // by NodeId, empty for dead nodes
  std::vector<std::size_t> placement_of_node;  // by NodeId: index into placement, or kNoPlacement
  std::vector<OpCost> costs;              // by NodeId
  std::vector<int> home;                  // by ValueId: the domain that holds the value
  std::uint64_t copied_weight_bytes = 0;  // see Executable::copied_weight_bytes()
  std::vector<Domain> domains;            // [0] is the host
  std::vector<Step> steps;
  Profile profile;
  std::mutex run_mutex;
  // By ValueId: a graph output produced in host memory. It has no arena slot; each run points it
  // at the caller's output tensor, so the producing kernel writes there and nothing is copied.
  std::vector<bool> written_in_place;
  // Storage for such outputs when run(inputs, outputs) was not given them, kept across runs.
  std::map<ValueId, Tensor> spare_outputs;
  // By ValueId: views of the caller's input and output tensors, re-pointed on every run.
  std::vector<std::unique_ptr<HostBuffer>> views;

  HostBuffer* view(ValueId v, void* data, std::size_t bytes) {
    auto& slot = views[v];
    if (!slot) slot = std::make_unique<HostBuffer>(nullptr, 0);
    slot->rebind(data, bytes);
    return slot.get();
  }

  int domain_index(const std::shared_ptr<Backend>& backend) {
    const std::string name = backend->memory_domain();
    if (name == "host") return kHostDomain;
    for (std::size_t i = 0; i < domains.size(); ++i)
      if (domains[i].name == name) return static_cast<int>(i);
    Domain d;
    d.name = name;
    d.owner = backend;
    d.refs.resize(graph.values.size());
    domains.push_back(std::move(d));
    return static_cast<int>(domains.size() - 1);
  }
};

namespace {

std::size_t value_bytes(const ValueInfo& v) {
  return static_cast<std::size_t>(v.shape.numel()) * dtype_size(v.dtype);
}

std::vector<bool> live_nodes(const GraphState& g) {
  std::vector<bool> live(g.nodes.size(), false);
  std::vector<ValueId> stack;
  for (const auto& [name, id] : g.outputs) stack.push_back(id);
  while (!stack.empty()) {
    const ValueId v = stack.back();
    stack.pop_back();
    const auto producer = g.values[v].producer;
    if (producer == kNoNode || live[producer]) continue;
    live[producer] = true;
    for (auto in : g.nodes[producer].inputs) stack.push_back(in);
  }
  return live;
}

void build(ExecutableImpl& x) {
  GraphState& g = x.graph;
  if (g.outputs.empty())
    throw Error(ErrorCode::InvalidArgument, "the graph has no outputs to compute");
  const auto live = live_nodes(g);
  x.domains.resize(1);
  x.domains[kHostDomain].name = "host";
  x.domains[kHostDomain].refs.resize(g.values.size());
  x.home.assign(g.values.size(), kHostDomain);
  x.backend_of_node.assign(g.nodes.size(), std::string());
  x.placement_of_node.assign(g.nodes.size(), kNoPlacement);
  x.costs.resize(g.nodes.size());

  // Placement, then segments of consecutive nodes on one backend.
  const auto placed = place_nodes(g, live, x.options);
  for (const auto& n : g.nodes) {
    if (!live[n.id]) continue;
    const auto& p = placed[n.id];
    x.placement_of_node[n.id] = x.placement.size();
    x.placement.push_back({n.name, std::string(op_name(n.op)), p.backend->name(), p.reason});
    x.backend_of_node[n.id] = p.backend->name();
    x.costs[n.id] = op_cost(g, n);
    const int domain = x.domain_index(p.backend);
    for (auto out : n.outputs) x.home[out] = domain;
    if (x.steps.empty() || x.steps.back().kind != Step::Kind::Segment ||
        x.steps.back().backend != p.backend) {
      Step s;
      s.backend = p.backend;
      s.domain = domain;
      x.steps.push_back(std::move(s));
    }
    x.steps.back().nodes.push_back(n.id);
  }

  // Transfers: a value read in a domain other than its home is copied there once, right before
  // the first segment that needs it. Constants are uploaded now instead of on every run.
  std::vector<std::vector<bool>> present(x.domains.size(),
                                         std::vector<bool>(g.values.size(), false));
  for (ValueId v = 0; v < g.values.size(); ++v)
    present[static_cast<std::size_t>(x.home[v])][v] = true;
  std::vector<Step> scheduled;
  for (auto& segment : x.steps) {
    for (auto node : segment.nodes) {
      for (auto in : g.nodes[node].inputs) {
        auto& here = present[static_cast<std::size_t>(segment.domain)];
        if (here[in]) continue;
        here[in] = true;
        if (g.values[in].kind == ValueKind::Constant) continue;  // uploaded below
        Step t;
        t.kind = Step::Kind::Transfer;
        t.value = in;
        t.from_domain = x.home[in];
        t.domain = segment.domain;
        scheduled.push_back(std::move(t));
      }
    }
    scheduled.push_back(std::move(segment));
  }
  x.steps = std::move(scheduled);

  x.written_in_place.assign(g.values.size(), false);
  x.views.resize(g.values.size());
  for (const auto& [name, v] : g.outputs)
    x.written_in_place[v] = g.values[v].kind == ValueKind::NodeOutput && x.home[v] == kHostDomain;

  // Lifetimes in steps (each node is a step of its own, so values are reused within a segment).
  const int end_of_run = 1 << 30;
  std::vector<std::map<ValueId, BufferRequest>> requests(x.domains.size());
  int step_index = 0;
  for (const auto& s : x.steps) {
    if (s.kind == Step::Kind::Transfer) {
      requests[static_cast<std::size_t>(s.domain)][s.value] = {value_bytes(g.values[s.value]),
                                                               step_index, step_index};
      auto& src = requests[static_cast<std::size_t>(s.from_domain)];
      if (auto it = src.find(s.value); it != src.end()) it->second.last_step = step_index;
      ++step_index;
      continue;
    }
    auto& reqs = requests[static_cast<std::size_t>(s.domain)];
    for (auto node : s.nodes) {
      for (auto in : g.nodes[node].inputs)
        if (auto it = reqs.find(in); it != reqs.end())
          it->second.last_step = std::max(it->second.last_step, step_index);
      for (auto out : g.nodes[node].outputs)
        if (!x.written_in_place[out])
          reqs[out] = {value_bytes(g.values[out]), step_index, step_index};
      ++step_index;
    }
  }
  for (const auto& [name, v] : g.outputs) {
    auto& reqs = requests[static_cast<std::size_t>(x.home[v])];
    if (auto it = reqs.find(v); it != reqs.end()) it->second.last_step = end_of_run;
  }

  // One arena per domain.
  for (std::size_t d = 0; d < x.domains.size(); ++d) {
    auto& domain = x.domains[d];
    std::vector<ValueId> ids;
    std::vector<BufferRequest> reqs;
    for (const auto& [v, r] : requests[d]) {
      ids.push_back(v);
      reqs.push_back(r);
    }
    const auto plan = plan_memory(reqs);
    domain.arena_bytes = plan.arena_bytes;
    domain.unplanned_bytes = plan.unplanned_bytes;
    domain.arena = domain.owner ? domain.owner->allocate(plan.arena_bytes)
                                : std::make_unique<HostBuffer>(plan.arena_bytes);
    for (std::size_t i = 0; i < ids.size(); ++i)
      domain.refs[ids[i]] = {domain.arena.get(), plan.offsets[i], &g.values[ids[i]]};
  }

  // A stacked constant stays a table of parts only where every host-domain reader addresses it
  // part by part; otherwise it is gathered into one buffer here, once, and counted.
  for (ValueId v = 0; v < g.values.size(); ++v) {
    auto& info = g.values[v];
    if (info.kind != ValueKind::Constant || !info.constant.stacked()) continue;
    bool by_parts = true;
    for (const auto& n : g.nodes) {
      if (!live[n.id]) continue;
      for (std::size_t i = 0; i < n.inputs.size() && by_parts; ++i)
        if (n.inputs[i] == v && placed[n.id].backend->memory_domain() == "host")
          by_parts = placed[n.id].backend->reads_stacked(g, n, i);
    }
    for (const auto& [name, out] : g.outputs) by_parts = by_parts && out != v;
    if (!by_parts && present[kHostDomain][v]) {
      info.constant = info.constant.contiguous();
      x.copied_weight_bytes += info.constant.nbytes();
    }
  }

  // Constants: host views of the user's tensors; uploads to every other domain that reads them.
  for (ValueId v = 0; v < g.values.size(); ++v) {
    const auto& info = g.values[v];
    if (info.kind != ValueKind::Constant) continue;
    for (std::size_t d = 0; d < x.domains.size(); ++d) {
      if (!present[d][v]) continue;
      auto& domain = x.domains[d];
      const Tensor& c = info.constant;
      if (!domain.owner && c.stacked()) {
        domain.refs[v] = {nullptr, 0, &info, c.parts()};
        continue;
      }
      std::unique_ptr<Buffer> buffer;
      if (domain.owner) {
        // A device copies the weight into its own memory anyway: a stacked one part by part.
        buffer = domain.owner->allocate(c.nbytes());
        if (c.stacked()) {
          for (std::int64_t e = 0; e < c.shape()[0]; ++e)
            domain.owner->copy_in(*buffer, static_cast<std::size_t>(e) * c.part_bytes(), c.part(e),
                                  c.part_bytes());
        } else {
          domain.owner->copy_in(*buffer, 0, c.data(), c.nbytes());
        }
      } else {
        buffer = std::make_unique<HostBuffer>(c.data(), c.nbytes());
      }
      domain.refs[v] = {buffer.get(), 0, &info};
      domain.constant_buffers.push_back(std::move(buffer));
    }
  }

  // Lowering, once per segment.
  for (auto& s : x.steps) {
    if (s.kind != Step::Kind::Segment) continue;
    try {
      s.plan = s.backend->compile(g, s.nodes);
      x.copied_weight_bytes += s.plan->weight_copy_bytes();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(ErrorCode::Backend,
                  fmt::format("backend '{}' failed to compile {}: {}", s.backend->name(),
                              describe_node(g, g.nodes[s.nodes.front()]), e.what()));
    }
    for (const auto& [node, what] : s.plan->choices())
      if (x.placement_of_node.at(node) != kNoPlacement)
        x.placement[x.placement_of_node[node]].implementation = what;
  }
}

void check_inputs(const ExecutableImpl& x, const std::map<std::string, Tensor>& inputs) {
  const auto& g = x.graph;
  for (const auto& [name, tensor] : inputs) {
    const bool known = std::any_of(g.inputs.begin(), g.inputs.end(),
                                   [&](const auto& in) { return in.first == name; });
    if (!known) {
      std::vector<std::string> names;
      for (const auto& in : g.inputs) names.push_back(in.first);
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("'{}' is not an input of the graph (inputs: {})", name,
                              names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
    }
  }
  for (const auto& [name, id] : g.inputs) {
    auto it = inputs.find(name);
    if (it == inputs.end())
      throw Error(ErrorCode::InvalidArgument, fmt::format("missing graph input '{}'", name));
    const auto& info = g.values[id];
    const Tensor& t = it->second;
    if (t.shape() != info.shape)
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("input '{}' has shape {} but the graph declares {}", name,
                              t.shape().to_string(), info.shape.to_string()));
    if (t.dtype() != info.dtype)
      throw Error(ErrorCode::DTypeMismatch,
                  fmt::format("input '{}' has dtype {} but the graph declares {}", name,
                              dtype_name(t.dtype()), dtype_name(info.dtype)));
    if (t.data() == nullptr && t.numel() > 0)
      throw Error(ErrorCode::InvalidArgument, fmt::format("input '{}' has no data", name));
    if (x.options.check_finite_inputs && is_floating(t.dtype())) {
      for (std::int64_t i = 0; i < t.numel(); ++i) {
        const float value = load_as_f32(t.data(), t.dtype(), static_cast<std::size_t>(i));
        if (!std::isfinite(value))
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("input '{}' holds a non-finite value ({}) at element {}", name,
                                  value, i));
      }
    }
  }
}

// The tensors given to run(inputs, outputs): graph outputs of the declared shape and dtype, at
// an aligned address, overlapping neither an input nor each other (a kernel would read what it
// had just overwritten).
void check_outputs(const ExecutableImpl& x, const std::map<std::string, Tensor>& inputs,
                   const std::map<std::string, Tensor>& outputs) {
  const auto& g = x.graph;
  const auto overlap = [](const Tensor& a, const Tensor& b) {
    const auto* pa = static_cast<const char*>(a.data());
    const auto* pb = static_cast<const char*>(b.data());
    return a.nbytes() > 0 && b.nbytes() > 0 && pa < pb + b.nbytes() && pb < pa + a.nbytes();
  };
  for (auto it = outputs.begin(); it != outputs.end(); ++it) {
    const auto& [name, t] = *it;
    const auto found = std::find_if(g.outputs.begin(), g.outputs.end(),
                                    [&](const auto& out) { return out.first == name; });
    if (found == g.outputs.end()) {
      std::vector<std::string> names;
      for (const auto& out : g.outputs) names.push_back(out.first);
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("'{}' is not an output of the graph (outputs: {})", name,
                              fmt::join(names, ", ")));
    }
    const auto& info = g.values[found->second];
    if (t.shape() != info.shape)
      throw Error(
          ErrorCode::ShapeMismatch,
          fmt::format("output '{}' was given a tensor of shape {} but the graph declares {}", name,
                      t.shape().to_string(), info.shape.to_string()));
    if (t.dtype() != info.dtype)
      throw Error(
          ErrorCode::DTypeMismatch,
          fmt::format("output '{}' was given a tensor of dtype {} but the graph declares {}", name,
                      dtype_name(t.dtype()), dtype_name(info.dtype)));
    if (t.data() == nullptr && t.numel() > 0)
      throw Error(ErrorCode::InvalidArgument, fmt::format("output '{}' has no data", name));
    if (reinterpret_cast<std::uintptr_t>(t.data()) % dtype_size(t.dtype()) != 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("output '{}' is not aligned to its {}-byte elements", name,
                              dtype_size(t.dtype())));
    for (const auto& [input, given] : inputs)
      if (overlap(t, given))
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("output '{}' shares memory with input '{}'", name, input));
    for (auto other = std::next(it); other != outputs.end(); ++other)
      if (overlap(t, other->second))
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("outputs '{}' and '{}' share memory", name, other->first));
  }
}

}  // namespace

}  // namespace detail

// ---- Executable ---------------------------------------------------------------------------------

Executable::Executable() = default;
Executable::~Executable() = default;
Executable::Executable(Executable&&) noexcept = default;
Executable& Executable::operator=(Executable&&) noexcept = default;

Executable compile(const Graph& graph, const CompileOptions& options) {
  auto impl = std::make_unique<detail::ExecutableImpl>();
  impl->graph.nodes.assign(graph.nodes().begin(), graph.nodes().end());
  for (std::size_t v = 0; v < graph.num_values(); ++v) {
    impl->graph.values.push_back(graph.value(static_cast<ValueId>(v)));
    // Kernels may read elements through typed pointers; a weight viewed at an odd offset of a
    // safetensors mapping gets one aligned copy here rather than a misaligned access per run.
    auto& info = impl->graph.values.back();
    if (info.kind != ValueKind::Constant) continue;
    bool misaligned = false;
    const auto align = dtype_size(info.dtype);
    if (info.constant.stacked()) {
      for (void* p : info.constant.parts())
        misaligned = misaligned || reinterpret_cast<std::uintptr_t>(p) % align != 0;
    } else {
      misaligned = reinterpret_cast<std::uintptr_t>(info.constant.data()) % align != 0;
    }
    if (misaligned) {
      info.constant = info.constant.clone();
      impl->copied_weight_bytes += info.constant.nbytes();
    }
  }
  impl->graph.inputs = graph.inputs();
  impl->graph.outputs = graph.outputs();
  impl->options = options;
  detail::build(*impl);
  Executable exe;
  exe.impl_ = std::move(impl);
  if (const char* verbose = std::getenv("PORTA_VERBOSE");
      verbose != nullptr && std::string_view(verbose) != "0" && std::string_view(verbose) != "")
    fmt::print(stderr, "{}", exe.describe());
  return exe;
}

std::map<std::string, Tensor> Executable::run(const std::map<std::string, Tensor>& inputs) {
  if (!impl_)
    throw Error(ErrorCode::InvalidArgument, "run() on an empty Executable (use porta::compile)");
  std::map<std::string, Tensor> outputs;
  for (const auto& [name, id] : impl_->graph.outputs) {
    const auto& info = impl_->graph.values[id];
    outputs[name] = Tensor::empty(info.shape, info.dtype);
  }
  run(inputs, outputs);
  return outputs;
}

void Executable::run(const std::map<std::string, Tensor>& inputs,
                     const std::map<std::string, Tensor>& outputs) {
  using namespace detail;
  if (!impl_)
    throw Error(ErrorCode::InvalidArgument, "run() on an empty Executable (use porta::compile)");
  auto& x = *impl_;
  std::lock_guard lock(x.run_mutex);
  const auto& g = x.graph;
  check_inputs(x, inputs);
  check_outputs(x, inputs, outputs);

  // Graph inputs are read in place from the caller's tensors.
  auto& host = x.domains[kHostDomain];
  std::vector<Tensor> aligned_inputs;  // copies of inputs given at misaligned addresses
  aligned_inputs.reserve(g.inputs.size());
  for (const auto& [name, id] : g.inputs) {
    const Tensor* given = &inputs.at(name);
    if (reinterpret_cast<std::uintptr_t>(given->data()) % dtype_size(given->dtype()) != 0) {
      aligned_inputs.push_back(given->clone());
      given = &aligned_inputs.back();
    }
    host.refs[id] = {x.view(id, given->data(), given->nbytes()), 0, &g.values[id]};
  }
  // Outputs produced in host memory are computed straight into the caller's tensors (the first
  // one given, when two output names share a value), else into storage kept for the purpose.
  std::vector<bool> bound(g.values.size(), false);
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& [name, id] : g.outputs) {
      if (!x.written_in_place[id] || bound[id]) continue;
      const auto it = outputs.find(name);
      const Tensor* target = it != outputs.end() ? &it->second : nullptr;
      if (target == nullptr) {
        if (pass == 0) continue;
        Tensor& spare = x.spare_outputs[id];
        if (!spare.defined() || spare.data() == nullptr)
          spare = Tensor::empty(g.values[id].shape, g.values[id].dtype);
        target = &spare;
      }
      host.refs[id] = {x.view(id, target->data(), target->nbytes()), 0, &g.values[id]};
      bound[id] = true;
    }
  struct Unbind {  // no ref outlives the caller's tensors, even when a kernel throws
    ExecutableImpl& x;
    ~Unbind() {
      for (const auto& [name, id] : x.graph.inputs) x.domains[kHostDomain].refs[id] = {};
      for (const auto& [name, id] : x.graph.outputs)
        if (x.written_in_place[id]) x.domains[kHostDomain].refs[id] = {};
    }
  } unbind{x};

  x.profile = Profile{};
  RunRecorder recorder(g, x.costs, x.backend_of_node, x.profile);
  std::vector<char> staging;
  for (auto& s : x.steps) {
    if (s.kind == Step::Kind::Transfer) {
      const auto& from = x.domains[static_cast<std::size_t>(s.from_domain)];
      const auto& to = x.domains[static_cast<std::size_t>(s.domain)];
      const auto& src = from.refs[s.value];
      const auto& dst = to.refs[s.value];
      const std::size_t bytes = src.nbytes();
      const double start = recorder.now_us();
      if (s.from_domain == kHostDomain) {
        to.copy_in(dst, src.host(), bytes);
      } else if (s.domain == kHostDomain) {
        from.copy_out(src, dst.host(), bytes);
      } else {
        staging.resize(bytes);
        from.copy_out(src, staging.data(), bytes);
        to.copy_in(dst, staging.data(), bytes);
      }
      x.profile.transfers.push_back(
          {g.values[s.value].name, from.name, to.name, start, recorder.now_us() - start, bytes});
      continue;
    }
    ExecContext ctx{x.domains[static_cast<std::size_t>(s.domain)].refs,
                    x.options.profile ? &recorder : nullptr};
    try {
      s.backend->execute(*s.plan, g, ctx);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(ErrorCode::Backend,
                  fmt::format("backend '{}' failed while running {}: {}", s.backend->name(),
                              describe_node(g, g.nodes[s.nodes.front()]), e.what()));
    }
  }
  for (std::size_t d = 1; d < x.domains.size(); ++d) x.domains[d].owner->synchronize();

  // The given outputs not written in place: constants, inputs, values in a device's memory, and
  // a second name for a value already written under another.
  for (const auto& [name, id] : g.outputs) {
    const auto given = outputs.find(name);
    if (given == outputs.end()) continue;
    const Tensor& t = given->second;
    if (x.written_in_place[id] && host.refs[id].host() == t.data()) continue;
    const auto& info = g.values[id];
    const std::size_t bytes = t.nbytes();
    if (bytes == 0) continue;
    if (info.kind == ValueKind::Constant) {
      std::memcpy(t.data(), info.constant.contiguous().data(), bytes);
    } else if (info.kind == ValueKind::Input) {
      std::memcpy(t.data(), host.refs[id].host(), bytes);
    } else {
      const auto& domain = x.domains[static_cast<std::size_t>(x.home[id])];
      domain.copy_out(domain.refs[id], t.data(), bytes);
    }
  }
  x.profile.total_us = recorder.now_us();
}

const Profile& Executable::profile() const {
  static const Profile empty;
  return impl_ ? impl_->profile : empty;
}

void Executable::write_trace(const std::string& path) const {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(ErrorCode::Io, fmt::format("cannot open '{}' to write a trace", path));
  out << profile().to_chrome_trace();
  if (!out) throw Error(ErrorCode::Io, fmt::format("failed writing the trace to '{}'", path));
}

const std::vector<NodePlacement>& Executable::placement() const {
  static const std::vector<NodePlacement> empty;
  return impl_ ? impl_->placement : empty;
}

std::uint64_t Executable::arena_bytes() const {
  std::uint64_t total = 0;
  if (impl_)
    for (const auto& d : impl_->domains) total += d.arena_bytes;
  return total;
}

std::uint64_t Executable::copied_weight_bytes() const {
  return impl_ ? impl_->copied_weight_bytes : 0;
}

std::uint64_t Executable::unplanned_bytes() const {
  std::uint64_t total = 0;
  if (impl_)
    for (const auto& d : impl_->domains) total += d.unplanned_bytes;
  return total;
}

std::string Executable::describe() const {
  if (!impl_) return "porta: empty executable\n";
  const auto& x = *impl_;
  std::string out = fmt::format("porta: plan of {} nodes\n", x.placement.size());
  for (const Node& n : x.graph.nodes) {
    if (x.placement_of_node[n.id] == detail::kNoPlacement) continue;
    const NodePlacement& p = x.placement[x.placement_of_node[n.id]];
    std::string result;
    if (!n.outputs.empty()) {
      const auto& v = x.graph.values[n.outputs[0]];
      result = fmt::format("{}{}", dtype_name(v.dtype), v.shape.to_string());
    }
    out += fmt::format("porta: {:<14} {:<28} -> {:<22} on {:<14} {}{}\n", p.op, p.node, result,
                       p.backend, p.implementation.empty() ? "-" : p.implementation,
                       p.reason.empty() ? "" : fmt::format(" (placed here: {})", p.reason));
  }
  for (const auto& s : x.steps)
    if (s.kind == detail::Step::Kind::Transfer)
      out += fmt::format("porta: transfer {} : {} -> {}\n", x.graph.values[s.value].name,
                         x.domains[static_cast<std::size_t>(s.from_domain)].name,
                         x.domains[static_cast<std::size_t>(s.domain)].name);
  return out;
}

std::string Executable::summary() const {
  if (!impl_) return "empty executable\n";
  const auto& x = *impl_;
  std::string out = fmt::format("{} nodes placed, {} steps\n", x.placement.size(), x.steps.size());
  for (const auto& s : x.steps) {
    if (s.kind == detail::Step::Kind::Transfer) {
      out += fmt::format("  transfer {} : {} -> {}\n", x.graph.values[s.value].name,
                         x.domains[static_cast<std::size_t>(s.from_domain)].name,
                         x.domains[static_cast<std::size_t>(s.domain)].name);
      continue;
    }
    std::vector<std::string> names;
    for (auto n : s.nodes) names.push_back(x.graph.nodes[n].name);
    out += fmt::format("  segment on {}: {}\n", s.backend->name(), fmt::join(names, ", "));
  }
  for (const auto& p : x.placement)
    if (!p.reason.empty())
      out += fmt::format("  {} ({}) on {}: {}\n", p.node, p.op, p.backend, p.reason);
  for (const auto& d : x.domains)
    out += fmt::format("  arena {}: {} bytes planned ({} without reuse)\n", d.name, d.arena_bytes,
                       d.unplanned_bytes);
  return out;
}

}  // namespace porta

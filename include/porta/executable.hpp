// compile() turns a Graph into an Executable: validated, placed on backends, lowered, with a
// memory plan; run() then only executes.
//
// Describe once, execute many times: every check, placement decision, kernel choice and weight
// upload happens in compile(). An Executable owns its memory arena and plans; separate
// Executables (even of the same Graph) run independently on separate threads. One Executable's
// run() calls are serialised.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <porta/comm.hpp>
#include <porta/graph.hpp>
#include <porta/tensor.hpp>

PORTA_API_BEGIN
namespace porta {

struct CompileOptions {
  // Where nodes go unless pinned: "reference", "cpu", "opencl", "opencl:1", "npu-sim:910b2", ...
  std::string backend = "reference";
  // Where nodes the chosen backend does not support go. Empty: such nodes are an error.
  std::string fallback = "reference";
  // Node name (or a prefix ending in '*') -> backend. Graph::pin() pins win over these.
  std::map<std::string, std::string> pins;
  // Time every op (cheap: two clock reads per op).
  bool profile = true;
  // Reject run() inputs holding NaN or infinity with a porta::Error naming the input.
  bool check_finite_inputs = false;
  // The processes the collective ops (all_to_all, moe_experts_ep, ...) exchange data with.
  // Null: this process alone (a single-process communicator).
  std::shared_ptr<Communicator> comm;
};

struct NodePlacement {
  std::string node;
  std::string op;
  std::string backend;
  std::string reason;  // why it is not on the requested backend, when it is not
  // What the backend chose for it: the oneDNN implementation, the CLBlast routine, porta's own
  // kernel and its tile configuration, "fused into <node>", the weight layout. Empty when the
  // backend says nothing beyond its name.
  std::string implementation;
};

struct OpProfile {
  std::string node;
  std::string op;
  std::string backend;
  double start_us = 0;    // from the start of run()
  double time_us = 0;     // measured wall time on the host
  double device_us = -1;  // modelled device time (npu-sim), -1 when not modelled
  double flops = 0;
  double bytes = 0;  // bytes read and written by the op
  // Backend-specific figures, named by the backend (npu-sim: "cycles", "compute_utilization",
  // "hbm_utilization", ...). Empty for most backends.
  std::map<std::string, double> metrics;
};

struct TransferProfile {
  std::string value;
  std::string from, to;
  double start_us = 0;
  double time_us = 0;
  std::uint64_t bytes = 0;
};

struct Profile {
  std::vector<OpProfile> ops;
  std::vector<TransferProfile> transfers;  // copies between memory domains at backend edges
  double total_us = 0;

  // A per-op table (op, node, backend, time, GFLOP/s, GB/s), sorted by time.
  std::string to_table() const;
  // Chrome trace-event JSON: one track per backend; opens in Perfetto and chrome://tracing.
  std::string to_chrome_trace() const;
};

namespace detail {
struct ExecutableImpl;
}

class Executable {
 public:
  Executable();
  ~Executable();
  Executable(Executable&&) noexcept;
  Executable& operator=(Executable&&) noexcept;

  // Runs the graph. Every graph input must be given, with its declared shape and dtype; names
  // that are not graph inputs are an error. Returns every graph output by name, in tensors
  // allocated for this call.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs);

  // Runs the graph writing outputs into the caller's tensors: each given tensor must name a
  // graph output and have its shape and dtype, and must not share memory with an input or with
  // another given output. Outputs not named are computed and dropped. An output computed in host
  // memory is written in place by the kernel that produces it (no allocation, no copy), so a
  // serving loop that reuses its output tensors allocates nothing per call.
  void run(const std::map<std::string, Tensor>& inputs,
           const std::map<std::string, Tensor>& outputs);

  // The profile of the most recent run().
  const Profile& profile() const;
  void write_trace(const std::string& path) const;

  const std::vector<NodePlacement>& placement() const;
  // Bytes of the planned arenas (all memory domains) and what the intermediates would need with
  // no buffer reuse: their ratio is the memory planner's saving.
  std::uint64_t arena_bytes() const;
  std::uint64_t unplanned_bytes() const;
  // Bytes of weights compile() copied in host memory: a weight at an address misaligned for its
  // dtype, or a stacked weight (Tensor::stacked) gathered for a kernel that needs one buffer.
  // Uploads to a device's own memory are not counted (they are the device's copy).
  std::uint64_t copied_weight_bytes() const;
  // Placement, segments and memory plan, readable.
  std::string summary() const;
  // The plan as ONEDNN_VERBOSE would show it: one line per node with its op, output shape and
  // dtype, backend and chosen implementation, then the transfers. compile() also prints it to
  // stderr when the environment sets PORTA_VERBOSE=1.
  std::string describe() const;

 private:
  friend Executable compile(const Graph&, const CompileOptions&);
  std::unique_ptr<detail::ExecutableImpl> impl_;
};

Executable compile(const Graph& graph, const CompileOptions& options = {});

}  // namespace porta
PORTA_API_END

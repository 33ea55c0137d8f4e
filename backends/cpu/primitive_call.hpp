// A oneDNN primitive with its arguments prepared once: run() only swaps in this run's addresses
// (when they changed) and calls the C API with a prebuilt argument array, so executing a
// primitive allocates nothing and looks nothing up.
#pragma once

#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

namespace porta::detail::cpu {

class PrimitiveCall {
 public:
  PrimitiveCall() = default;
  // Logs the implementation oneDNN chose (lowering_log.hpp) for the plan's description.
  explicit PrimitiveCall(dnnl::primitive primitive);

  // Adds an argument; returns its slot for bind(). `handle` may be null until bound.
  int add(int arg, const dnnl::memory::desc& desc, const dnnl::engine& engine,
          void* handle = nullptr);
  // Points slot `slot` at `handle` for the next run.
  void bind(int slot, void* handle) {
    if (handles_[static_cast<std::size_t>(slot)] == handle) return;
    memories_[static_cast<std::size_t>(slot)].set_data_handle(handle);
    handles_[static_cast<std::size_t>(slot)] = handle;
  }
  // Executes on `stream` (synchronously for oneDNN's OpenMP cpu runtime). Throws dnnl::error.
  void run(dnnl::stream& stream);
  bool empty() const { return !primitive_; }

 private:
  dnnl::primitive primitive_;
  std::vector<dnnl::memory> memories_;
  std::vector<void*> handles_;
  std::vector<dnnl_exec_arg_t> args_;
  std::vector<int> arg_ids_;
};

}  // namespace porta::detail::cpu

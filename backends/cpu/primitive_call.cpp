#include "primitive_call.hpp"

namespace porta::detail::cpu {

int PrimitiveCall::add(int arg, const dnnl::memory::desc& desc, const dnnl::engine& engine,
                       void* handle) {
  // A null handle is DNNL_MEMORY_NONE: a memory object without storage until bind().
  memories_.emplace_back(desc, engine, handle);
  handles_.push_back(handle);
  args_.clear();
  for (std::size_t i = 0; i < memories_.size(); ++i) args_.push_back({0, memories_[i].get()});
  arg_ids_.push_back(arg);
  for (std::size_t i = 0; i < memories_.size(); ++i) args_[i].arg = arg_ids_[i];
  return static_cast<int>(memories_.size() - 1);
}

void PrimitiveCall::run(dnnl::stream& stream) {
  dnnl::error::wrap_c_api(dnnl_primitive_execute(primitive_.get(), stream.get(),
                                                 static_cast<int>(args_.size()), args_.data()),
                          "could not execute a primitive");
}

}  // namespace porta::detail::cpu

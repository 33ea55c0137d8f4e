#include "primitive_call.hpp"

#include <oneapi/dnnl/dnnl_debug.h>

#include <fmt/format.h>

#include "lowering_log.hpp"

namespace porta::detail::cpu {

PrimitiveCall::PrimitiveCall(dnnl::primitive primitive) : primitive_(std::move(primitive)) {
  const_dnnl_primitive_desc_t pd = nullptr;
  if (dnnl_primitive_get_primitive_desc(primitive_.get(), &pd) != dnnl_success) return;
  const char* impl = nullptr;
  dnnl_primitive_kind_t kind = dnnl_undefined_primitive;
  if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success) return;
  dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, &kind);
  log_choice(fmt::format("oneDNN {} {}", dnnl_prim_kind2str(kind), impl));
}

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

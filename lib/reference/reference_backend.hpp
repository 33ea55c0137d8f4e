// The reference backend: every op of the catalogue in plain, obviously correct host code. It is
// the oracle every other backend is tested against, and the fallback for ops a device lacks.
#pragma once

#include <memory>

#include "runtime/backend.hpp"

namespace porta::detail {

// The "reference" family: one device, named "reference" (no device suffix).
BackendFamily reference_backend_family();

// The backend itself, for code that wants it without going through the registry.
std::shared_ptr<Backend> make_reference_backend();

namespace reference {
// Computes node `n` with the reference kernels (values in host memory, as `ctx` holds them).
// Backends whose numerics equal the reference's for some ops (npu-sim's vector-core ops) call it.
void run_node(const GraphState& g, const Node& n, const ExecContext& ctx);
}  // namespace reference

}  // namespace porta::detail

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

}  // namespace porta::detail

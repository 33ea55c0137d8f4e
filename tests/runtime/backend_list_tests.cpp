// The backends are declared once, in the top-level CMakeLists.txt, by the names porta::compile()
// accepts; the registry's list, <porta/config.hpp>'s PORTA_HAS_BACKEND_<ID> and the installed
// porta_BACKENDS are generated from that declaration (the packaging test checks porta_BACKENDS).
// Here: every backend built in is registered under its declared name, and compile() knows it.
#include <algorithm>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/config.hpp>
#include <porta/porta.hpp>

#include "runtime/backend.hpp"

namespace runtime_backend_list_tests {

namespace {

// (id, name) of each backend built in, from the same generated list the registry includes.
struct Declared {
  std::string id, name;
};
const std::vector<Declared> kBuiltIn{
#define PORTA_BUILTIN_BACKEND(id, name) {#id, name},
#include "porta_builtin_backends.inc"
#undef PORTA_BUILTIN_BACKEND
};

bool built_in(const std::string& name) {
  return std::any_of(kBuiltIn.begin(), kBuiltIn.end(),
                     [&](const Declared& d) { return d.name == name; });
}

}  // namespace

TEST_CASE("every backend built in is registered under its declared name", "[runtime][backends]") {
  const auto families = porta::detail::backend_family_names();
  auto registered = [&](const std::string& name) {
    return std::find(families.begin(), families.end(), name) != families.end();
  };
  CHECK(registered("reference"));
  for (const auto& [id, name] : kBuiltIn) {
    CAPTURE(id, name);
    CHECK(registered(name));
    std::string id_from_name = name;
    std::replace(id_from_name.begin(), id_from_name.end(), '-', '_');
    CHECK(id == id_from_name);
    // compile() knows the name: it may find no device here (opencl without an ICD), but never
    // calls the backend unknown.
    porta::Graph g;
    g.output("y", g.silu(g.input("x", {2}, porta::DType::F32)));
    try {
      porta::compile(g, {.backend = name});
    } catch (const porta::Error& e) {
      CHECK_THAT(e.what(), !Catch::Contains("unknown backend"));
    }
  }
  // <porta/config.hpp> says the same as the registry.
  CHECK(built_in("cpu") == bool(PORTA_HAS_BACKEND_CPU));
  CHECK(built_in("opencl") == bool(PORTA_HAS_BACKEND_OPENCL));
  CHECK(built_in("npu-sim") == bool(PORTA_HAS_BACKEND_NPU_SIM));
  CHECK(built_in("template") == bool(PORTA_HAS_BACKEND_TEMPLATE));
  CHECK_FALSE(built_in("npu_sim"));
}

}  // namespace runtime_backend_list_tests

// The program every opencl device builds: a prelude generated from porta's own definitions, then
// the embedded kernels/*.cl. The prelude gives the kernels the op codes (PORTA_OP_<Kind> is the
// OpKind value the host passes) and the unary kernel's cases (kernels/unary_ops.def), so the host
// and the kernels cannot disagree on either.
#include <string>

#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_runtime.hpp"

namespace porta::detail::opencl {

namespace {

#define PORTA_CL_UNARY(kind, expr) "case PORTA_OP_" #kind ": r = (" #expr "); break; "
constexpr const char kUnaryCases[] =
#include "kernels/unary_ops.def"
    "";
#undef PORTA_CL_UNARY

std::string prelude() {
  std::string text = "// ---- generated prelude: op codes and unary cases ----\n";
#define PORTA_CL_OP_CODE(kind, ...) \
  text += fmt::format("#define PORTA_OP_{} {}\n", #kind, static_cast<int>(OpKind::kind));
  PORTA_OP_LIST(PORTA_CL_OP_CODE)
#undef PORTA_CL_OP_CODE
  text += fmt::format("#define PORTA_CL_UNARY_CASES {}\n", kUnaryCases);
  return text;
}

}  // namespace

std::string_view program_source() {
  static const std::string source = prelude() + std::string(kernel_source());
  return source;
}

}  // namespace porta::detail::opencl

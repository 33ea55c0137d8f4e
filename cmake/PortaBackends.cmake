# porta's backends, declared once (top-level CMakeLists.txt calls porta_backend() for each).
#
# A backend is known by the name porta::compile() accepts ("npu-sim"). Everything else derives
# from that name: its id ("npu_sim": '-' becomes '_'), which names the folder backends/<id>/, the
# tests folder tests/<id>/, the benchmark prefix bench/<id>_*.cpp, the CMake target
# porta_backend_<id>, the registration function porta_backend_family_<id>(), the option
# PORTA_BACKEND_<ID> and the macro PORTA_HAS_BACKEND_<ID> of <porta/config.hpp>. The installed
# package's porta_BACKENDS lists the names of the backends built in.

set(PORTA_ALL_BACKENDS "")

# porta_backend_id(<name> <out-var>): the C identifier of a backend name.
function(porta_backend_id name out_var)
  string(REPLACE "-" "_" id "${name}")
  if(NOT id MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "porta: backend name '${name}' does not make a C identifier")
  endif()
  set(${out_var} "${id}" PARENT_SCOPE)
endfunction()

# porta_backend_option(<name> <out-var>): the option that builds the backend, e.g. PORTA_BACKEND_NPU_SIM.
function(porta_backend_option name out_var)
  porta_backend_id("${name}" id)
  string(TOUPPER "${id}" upper)
  set(${out_var} "PORTA_BACKEND_${upper}" PARENT_SCOPE)
endfunction()

# porta_backend(<name> <ON|OFF> <description>): declares a backend and its option.
macro(porta_backend name default description)
  porta_backend_option("${name}" _porta_option)
  option(${_porta_option} "${description}" ${default})
  list(APPEND PORTA_ALL_BACKENDS "${name}")
endmacro()

# porta_backend_built(<name> <out-var>): TRUE when the backend's target exists (after backends/).
function(porta_backend_built name out_var)
  porta_backend_id("${name}" id)
  if(TARGET porta_backend_${id})
    set(${out_var} TRUE PARENT_SCOPE)
  else()
    set(${out_var} FALSE PARENT_SCOPE)
  endif()
endfunction()

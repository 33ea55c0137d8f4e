# The packaging test (ctest porta:embed_example): installs the build tree into a scratch prefix,
# then builds and runs examples/embed against that prefix twice, once through
# find_package(porta) and once through pkg-config, exactly as a user of an installed porta would.
#
# Run as `cmake -P run_embed_test.cmake` with:
#   PORTA_BUILD_DIR   the configured and built porta tree to install
#   EMBED_SOURCE_DIR  examples/embed
#   WORK_DIR          scratch directory (wiped first)
#   INSTALL_LIBDIR    CMAKE_INSTALL_LIBDIR of that build (relative), where porta.pc lands
#   CXX_COMPILER, BUILD_TYPE, GENERATOR   as the porta build used
#   EXTRA_CXX_FLAGS, EXTRA_LINK_FLAGS     flags every porta object was built with (the
#                     sanitizers): an instrumented libporta needs an instrumented program
#   PKG_CONFIG        the pkg-config program
#   STATIC_LIBPORTA   ON when libporta is a static library
#   BACKENDS          the backends built in, by the names compile() accepts (porta_BACKENDS)
#   ALL_BACKENDS      every backend of the project (to check headers of the others are absent)
#   NM                the nm program (checks what a shared libporta exports)
# (BACKENDS and ALL_BACKENDS are comma-separated: a ';' would split the ctest command's argument.)

cmake_policy(VERSION 3.25)

foreach(required PORTA_BUILD_DIR EMBED_SOURCE_DIR WORK_DIR INSTALL_LIBDIR CXX_COMPILER GENERATOR
                 PKG_CONFIG ALL_BACKENDS NM)
  if(NOT DEFINED ${required} OR "${${required}}" STREQUAL "")
    message(FATAL_ERROR "run_embed_test.cmake: -D${required}=... is required")
  endif()
endforeach()

string(REPLACE "," ";" BACKENDS "${BACKENDS}")
string(REPLACE "," ";" ALL_BACKENDS "${ALL_BACKENDS}")
set(prefix ${WORK_DIR}/prefix)
set(cmake_build ${WORK_DIR}/cmake-build)
set(libdir ${prefix}/${INSTALL_LIBDIR})

# Runs a command; on failure prints what ran and its output, and fails the test.
function(run_step description)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "embed test: ${description} failed (${rc}):\n  ${command}\n${out}${err}")
  endif()
  string(STRIP "${out}${err}" output)
  set(step_output "${output}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

run_step("installing porta" ${CMAKE_COMMAND} --install ${PORTA_BUILD_DIR} --prefix ${prefix})
foreach(installed include/porta/porta.hpp include/porta/version.hpp include/porta/config.hpp
                  ${INSTALL_LIBDIR}/cmake/porta/porta-config.cmake
                  ${INSTALL_LIBDIR}/cmake/porta/porta-config-version.cmake
                  ${INSTALL_LIBDIR}/pkgconfig/porta.pc
                  share/doc/porta/README.md share/doc/porta/LICENSE
                  share/doc/porta/architecture.md share/doc/porta/env.md)
  if(NOT EXISTS ${prefix}/${installed})
    message(FATAL_ERROR "embed test: the install did not produce ${prefix}/${installed}")
  endif()
endforeach()
# A backend's own header (include/porta/<id>.hpp) is installed exactly when the backend is built.
foreach(backend IN LISTS ALL_BACKENDS)
  string(REPLACE "-" "_" id "${backend}")
  if(NOT EXISTS ${EMBED_SOURCE_DIR}/../../include/porta/${id}.hpp)
    continue()
  endif()
  set(header ${prefix}/include/porta/${id}.hpp)
  if(backend IN_LIST BACKENDS AND NOT EXISTS ${header})
    message(FATAL_ERROR "embed test: ${backend} is built but ${header} was not installed")
  elseif(NOT backend IN_LIST BACKENDS AND EXISTS ${header})
    message(FATAL_ERROR "embed test: ${backend} is not built but ${header} was installed")
  endif()
endforeach()
message(STATUS "installed porta into ${prefix}")

# ---- what a shared libporta exports: the public API, never porta::detail -------------------------
if(NOT STATIC_LIBPORTA)
  file(GLOB libporta ${libdir}/libporta.so)
  run_step("listing libporta's exported symbols" ${NM} -D --defined-only -C ${libporta})
  string(REPLACE "\n" ";" exported "${step_output}")
  set(detail_symbols "")
  set(api_count 0)
  foreach(line IN LISTS exported)
    if(line MATCHES "porta::detail::")
      list(APPEND detail_symbols "${line}")
    elseif(line MATCHES "porta::")
      math(EXPR api_count "${api_count} + 1")
    endif()
  endforeach()
  if(detail_symbols)
    list(LENGTH detail_symbols count)
    list(SUBLIST detail_symbols 0 10 first)
    list(JOIN first "\n  " first)
    message(FATAL_ERROR "embed test: libporta exports ${count} porta::detail symbols, e.g.\n  ${first}")
  endif()
  if(api_count LESS 50)
    message(FATAL_ERROR "embed test: libporta exports only ${api_count} porta:: symbols")
  endif()
  message(STATUS "libporta exports ${api_count} porta:: symbols and no porta::detail one")
endif()

# ---- find_package(porta) -------------------------------------------------------------------------
set(configure_args -S ${EMBED_SOURCE_DIR} -B ${cmake_build} -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
if(BUILD_TYPE)
  list(APPEND configure_args -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
endif()
if(EXTRA_CXX_FLAGS)
  list(APPEND configure_args "-DCMAKE_CXX_FLAGS=${EXTRA_CXX_FLAGS}")
endif()
if(EXTRA_LINK_FLAGS)
  list(APPEND configure_args "-DCMAKE_EXE_LINKER_FLAGS=${EXTRA_LINK_FLAGS}")
endif()
run_step("configuring examples/embed" ${CMAKE_COMMAND} ${configure_args})
# porta_BACKENDS names the backends as porta::compile() accepts them.
string(FIND "${step_output}\n" "backends: reference;${BACKENDS}\n" at)
if(at EQUAL -1)
  message(FATAL_ERROR "embed test: porta_BACKENDS is not 'reference;${BACKENDS}':\n${step_output}")
endif()

# The package must come from the scratch prefix, not from a porta installed elsewhere.
file(STRINGS ${cmake_build}/CMakeCache.txt porta_dir_line REGEX "^porta_DIR:")
string(REGEX REPLACE "^porta_DIR:[A-Z]+=" "" porta_dir "${porta_dir_line}")
file(REAL_PATH "${porta_dir}" porta_dir)
file(REAL_PATH "${prefix}" real_prefix)
string(FIND "${porta_dir}" "${real_prefix}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "embed test: find_package(porta) used ${porta_dir}, not the prefix ${prefix}")
endif()

run_step("building examples/embed" ${CMAKE_COMMAND} --build ${cmake_build})
run_step("running examples/embed (CMake build)" ${cmake_build}/embed)
message(STATUS "find_package build: ${step_output}")
if(NOT step_output MATCHES ": OK")
  message(FATAL_ERROR "embed test: examples/embed did not report OK:\n${step_output}")
endif()

# ---- pkg-config ----------------------------------------------------------------------------------
set(pc_env ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${libdir}/pkgconfig)
set(pc_static "")
if(STATIC_LIBPORTA)
  set(pc_static --static)
endif()
run_step("pkg-config --modversion porta" ${pc_env} ${PKG_CONFIG} --modversion porta)
string(STRIP "${step_output}" pc_version)
run_step("pkg-config --cflags --libs porta" ${pc_env} ${PKG_CONFIG} ${pc_static} --cflags --libs porta)
string(STRIP "${step_output}" pc_flags)
message(STATUS "pkg-config porta ${pc_version}: ${pc_flags}")
foreach(expected "-I${prefix}/include" "-L${libdir}" "-lporta")
  string(FIND " ${pc_flags} " " ${expected} " at)
  if(at EQUAL -1)
    message(FATAL_ERROR "embed test: pkg-config flags lack '${expected}': ${pc_flags}")
  endif()
endforeach()

separate_arguments(pc_flag_list UNIX_COMMAND "${pc_flags}")
separate_arguments(extra_cxx_list UNIX_COMMAND "${EXTRA_CXX_FLAGS}")
separate_arguments(extra_link_list UNIX_COMMAND "${EXTRA_LINK_FLAGS}")
set(pc_program ${WORK_DIR}/embed-pkg-config)
# No flag but pkg-config's (and the sanitizers' of an instrumented build): flags before the
# source, libraries after it, as a static link needs.
run_step("compiling examples/embed with pkg-config flags"
         ${CXX_COMPILER} ${extra_cxx_list} ${EMBED_SOURCE_DIR}/main.cpp
         ${extra_link_list} ${pc_flag_list} -o ${pc_program})

# Under an older standard a porta header stops the compile with a message that says why.
run_step("pkg-config --cflags porta" ${pc_env} ${PKG_CONFIG} --cflags porta)
separate_arguments(pc_cflag_list UNIX_COMMAND "${step_output}")
list(REMOVE_ITEM pc_cflag_list -std=c++20)
execute_process(COMMAND ${CXX_COMPILER} -std=c++17 ${pc_cflag_list} -fsyntax-only
                        ${EMBED_SOURCE_DIR}/main.cpp
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "porta's headers need C\\+\\+20")
  message(FATAL_ERROR "embed test: a C++17 compile of examples/embed did not stop at porta's "
                      "#error (exit ${rc}):\n${out}${err}")
endif()
message(STATUS "C++17 compile: stopped by porta's #error")

run_step("running examples/embed (pkg-config build)"
         ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${libdir} ${pc_program})
message(STATUS "pkg-config build: ${step_output}")
if(NOT step_output MATCHES ": OK")
  message(FATAL_ERROR "embed test: the pkg-config build did not report OK:\n${step_output}")
endif()

# ---- the installed program finds the installed libporta (its RPATH is relative to itself) -------
if(EXISTS ${prefix}/bin/porta)
  run_step("running the installed 'porta --version'" ${prefix}/bin/porta --version)
  if(NOT step_output STREQUAL "porta ${pc_version}")
    message(FATAL_ERROR "embed test: installed 'porta --version' printed '${step_output}', "
                        "expected 'porta ${pc_version}'")
  endif()
  message(STATUS "installed program: ${step_output}")
endif()

# Install rules and the package files that let another project use an installed porta, either
# with `find_package(porta)` + `porta::porta` or with `pkg-config --cflags --libs porta`.
#
# Installed: libporta (EXPORT porta-targets, NAMESPACE porta::), include/porta/ plus the generated
# version.hpp and config.hpp, the `porta` program when it is built, porta-config{,-version}.cmake,
# porta.pc, and the documentation in share/doc/porta.
# Tested by the ctest porta:embed_example, which installs into a scratch prefix and builds
# examples/embed against it exactly as a user would.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(PORTA_INSTALL "Generate porta's install rules" ${PORTA_IS_TOP_LEVEL})
if(NOT PORTA_INSTALL)
  return()
endif()

set(PORTA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/porta
    CACHE STRING "Where porta-config.cmake is installed, relative to the prefix")
set(PORTA_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig
    CACHE STRING "Where porta.pc is installed, relative to the prefix")

get_target_property(_porta_type porta TYPE)
if(_porta_type STREQUAL "STATIC_LIBRARY")
  set(PORTA_INSTALL_STATIC ON)
else()
  set(PORTA_INSTALL_STATIC OFF)
endif()

# ---- what an installed static libporta still needs from its consumers ---------------------------
# A shared libporta carries its private dependencies (JSON, oneDNN, OpenMP, CLBlast, OpenCL) inside
# itself: consumers need only Threads and fmt (public: porta::porta brings it). A static libporta does not: the consumer's link must name
# them, so the exported target, porta-config.cmake and porta.pc must too. Internal targets linked
# into porta (porta_project_options, each backend's object library) are never installed; in a
# static build their link items appear in porta's INTERFACE_LINK_LIBRARIES as $<LINK_ONLY:...>,
# which would make install(EXPORT) fail. _porta_hide_internal_links() keeps them for the build
# tree only and re-adds, for the install tree, the imported libraries they bring in.
#
# Imported target (prefix) -> CMake package | pkg-config module | plain linker flags.
set(_porta_known_dependencies
  "fmt::|fmt|fmt|"
  "nlohmann_json::|nlohmann_json|nlohmann_json|"
  "DNNL::|dnnl||-ldnnl"
  "OpenMP::|OpenMP||-fopenmp"
  "clblast|CLBlast|clblast|"
  "OpenCL::|OpenCL|OpenCL|"
  "Eigen3::|Eigen3|eigen3|"
  "Threads::|Threads||-pthread")

# Strips the $<LINK_ONLY:...> (the form CMake stores private items of static libraries in) and
# $<BUILD_INTERFACE:...> (porta's in-tree object libraries) wrappers around a link item.
function(_porta_link_item_name item out_var)
  while(item MATCHES "^\\$<(LINK_ONLY|BUILD_INTERFACE):(.+)>$")
    set(item "${CMAKE_MATCH_2}")
  endwhile()
  set(${out_var} "${item}" PARENT_SCOPE)
endfunction()

# Collects, through internal (non-imported) targets only, every imported target or plain library
# name that linking `target` brings in. Results accumulate in the caller's `out_var`.
function(_porta_collect_external_links target out_var)
  set(found ${${out_var}})
  foreach(property LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
    get_target_property(items ${target} ${property})
    if(NOT items)
      continue()
    endif()
    foreach(item IN LISTS items)
      _porta_link_item_name("${item}" name)
      if(name MATCHES "^\\$<" OR name STREQUAL "" OR name IN_LIST found)
        continue()
      endif()
      if(TARGET ${name})
        get_target_property(imported ${name} IMPORTED)
        if(imported)
          list(APPEND found ${name})
        elseif(NOT name STREQUAL "porta")
          set(inner ${found})
          _porta_collect_external_links(${name} inner)
          set(found ${inner})
        endif()
      else()
        list(APPEND found ${name})  # a plain library name such as "dl"
      endif()
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES found)
  set(${out_var} ${found} PARENT_SCOPE)
endfunction()

function(_porta_hide_internal_links)
  get_target_property(items porta INTERFACE_LINK_LIBRARIES)
  if(NOT items)
    return()
  endif()
  set(rewritten "")
  set(internal "")
  foreach(item IN LISTS items)
    _porta_link_item_name("${item}" name)
    if(TARGET ${name} AND NOT name STREQUAL "porta")
      get_target_property(imported ${name} IMPORTED)
      if(NOT imported)
        list(APPEND rewritten "$<BUILD_INTERFACE:${item}>")
        list(APPEND internal ${name})
        continue()
      endif()
    endif()
    list(APPEND rewritten "${item}")
  endforeach()
  set(external "")
  foreach(name IN LISTS internal)
    _porta_collect_external_links(${name} external)
  endforeach()
  foreach(name IN LISTS external)
    list(APPEND rewritten "$<INSTALL_INTERFACE:$<LINK_ONLY:${name}>>")
  endforeach()
  set_target_properties(porta PROPERTIES INTERFACE_LINK_LIBRARIES "${rewritten}")
endfunction()

# Fills PORTA_CONFIG_DEPENDENCIES (find_dependency lines), PORTA_PC_REQUIRES_PRIVATE and
# PORTA_PC_LIBS_PRIVATE from everything a static libporta's consumers must link.
function(_porta_static_dependencies)
  set(links "")
  _porta_collect_external_links(porta links)
  set(packages "")
  set(pc_modules "")
  set(pc_flags "")
  foreach(name IN LISTS links)
    if(name STREQUAL "Threads::Threads")
      continue()  # a public dependency: porta-config.cmake and porta.pc name it in any case
    endif()
    if(NOT TARGET ${name})
      list(APPEND pc_flags "-l${name}")
      continue()
    endif()
    set(matched OFF)
    foreach(entry IN LISTS _porta_known_dependencies)
      string(REPLACE "|" ";" fields "${entry}")
      list(GET fields 0 prefix)
      list(GET fields 1 package)
      list(GET fields 2 module)
      list(GET fields 3 flags)
      string(FIND "${name}" "${prefix}" at)
      if(at EQUAL 0)
        list(APPEND packages ${package})
        if(module)
          list(APPEND pc_modules ${module})
        endif()
        if(flags)
          list(APPEND pc_flags ${flags})
        endif()
        set(matched ON)
        break()
      endif()
    endforeach()
    if(NOT matched)
      message(FATAL_ERROR "porta: a static libporta links the imported target '${name}', which "
                          "cmake/PortaInstall.cmake does not know how to find for consumers; add "
                          "it to _porta_known_dependencies there.")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES packages)
  list(REMOVE_DUPLICATES pc_modules)
  list(REMOVE_DUPLICATES pc_flags)
  set(lines "")
  foreach(package IN LISTS packages)
    string(APPEND lines "find_dependency(${package})\n")
  endforeach()
  list(JOIN pc_modules " " pc_modules)
  list(JOIN pc_flags " " pc_flags)
  set(PORTA_CONFIG_DEPENDENCIES "${lines}" PARENT_SCOPE)
  set(PORTA_PC_REQUIRES_PRIVATE "${pc_modules}" PARENT_SCOPE)
  set(PORTA_PC_LIBS_PRIVATE "${pc_flags}" PARENT_SCOPE)
endfunction()

if(PORTA_INSTALL_STATIC)
  _porta_static_dependencies()
  _porta_hide_internal_links()
else()
  set(PORTA_CONFIG_DEPENDENCIES "")
  set(PORTA_PC_REQUIRES_PRIVATE "")
  set(PORTA_PC_LIBS_PRIVATE "")
endif()

# ---- the library, its headers, the program -----------------------------------------------------
install(TARGETS porta EXPORT porta-targets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT porta_runtime
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT porta_runtime
          NAMELINK_COMPONENT porta_development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT porta_development)
# A header that belongs to one backend (include/porta/<id>.hpp) is installed only with it.
set(_porta_header_excludes "")
foreach(_backend IN LISTS PORTA_ALL_BACKENDS)
  porta_backend_id(${_backend} _id)
  if(NOT _backend IN_LIST PORTA_BUILT_BACKENDS)
    list(APPEND _porta_header_excludes PATTERN "${_id}.hpp" EXCLUDE)
  endif()
endforeach()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/porta
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT porta_development
        FILES_MATCHING PATTERN "*.hpp" ${_porta_header_excludes})
install(FILES ${PROJECT_BINARY_DIR}/generated/porta/version.hpp
              ${PROJECT_BINARY_DIR}/generated/porta/config.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/porta COMPONENT porta_development)

if(TARGET porta_cli)
  # The program links libporta's objects itself (it uses internals libporta does not export).
  install(TARGETS porta_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT porta_runtime)
endif()

# The documentation (share/doc/porta): the README, docs/ and the license.
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT porta_runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT porta_runtime)

# ---- CMake package ------------------------------------------------------------------------------
# porta_BACKENDS: the names porta::compile() accepts, "reference" first.
set(PORTA_INSTALLED_BACKENDS reference ${PORTA_BUILT_BACKENDS})

install(EXPORT porta-targets
        NAMESPACE porta::
        FILE porta-targets.cmake
        DESTINATION ${PORTA_INSTALL_CMAKEDIR} COMPONENT porta_development)
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/porta-config.cmake.in
  ${PROJECT_BINARY_DIR}/porta-config.cmake
  INSTALL_DESTINATION ${PORTA_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/porta-config-version.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/porta-config.cmake
              ${PROJECT_BINARY_DIR}/porta-config-version.cmake
        DESTINATION ${PORTA_INSTALL_CMAKEDIR} COMPONENT porta_development)

# ---- pkg-config ---------------------------------------------------------------------------------
# The prefix is the one given at install time (`cmake --install --prefix P`), not the configure
# time CMAKE_INSTALL_PREFIX, so porta.pc is finished by the install script itself. The directory
# variables stay relative when GNUInstallDirs left them relative, as pkg-config users expect.
foreach(_porta_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_porta_dir}}")
    set(PORTA_PC_${_porta_dir} "${CMAKE_INSTALL_${_porta_dir}}")
  else()
    set(PORTA_PC_${_porta_dir} "\${prefix}/${CMAKE_INSTALL_${_porta_dir}}")
  endif()
endforeach()
# @PORTA_PC_PREFIX@ is kept literally in the template and replaced at install time.
set(PORTA_PC_PREFIX "@PORTA_PC_PREFIX@")
configure_file(${PROJECT_SOURCE_DIR}/cmake/porta.pc.in ${PROJECT_BINARY_DIR}/porta.pc.template @ONLY)
install(CODE "
  file(READ \"${PROJECT_BINARY_DIR}/porta.pc.template\" _porta_pc)
  string(REPLACE \"@PORTA_PC_PREFIX@\" \"\${CMAKE_INSTALL_PREFIX}\" _porta_pc \"\${_porta_pc}\")
  file(WRITE \"${PROJECT_BINARY_DIR}/porta.pc\" \"\${_porta_pc}\")"
  COMPONENT porta_development)
install(FILES ${PROJECT_BINARY_DIR}/porta.pc
        DESTINATION ${PORTA_INSTALL_PKGCONFIGDIR} COMPONENT porta_development)

# Warnings and sanitizer flags shared by every porta target (applied through porta_project_options).
add_library(porta_project_options INTERFACE)
# -Wswitch-enum: a switch over an enum names every value (no `default:` silently taking a new op
# kind or dtype); the op catalogue's generated switches rely on it (docs/architecture.md).
target_compile_options(porta_project_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow=local
                                                       -Wswitch-enum
                                                       -Wno-missing-field-initializers)
if(PORTA_WERROR)
  target_compile_options(porta_project_options INTERFACE -Werror)
endif()
if(PORTA_SANITIZE)
  # Sanitizers must reach every translation unit and the link, including the tests and tools.
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()

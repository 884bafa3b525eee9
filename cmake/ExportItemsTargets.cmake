# Project-wide compile settings and helpers for declaring components, tests and benchmarks.

add_library(ei_warnings INTERFACE)
target_compile_options(ei_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Werror)

add_library(ei_sanitizers INTERFACE)
if(EI_SANITIZE)
  target_compile_options(ei_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(ei_sanitizers INTERFACE -fsanitize=address,undefined)
  target_compile_definitions(ei_sanitizers INTERFACE EI_SANITIZED=1)
elseif(EI_FUZZ)
  # libFuzzer builds (tests/fuzz): every library gets coverage instrumentation plus ASan/UBSan;
  # the fuzz targets themselves add -fsanitize=fuzzer, which brings libFuzzer's main.
  target_compile_options(ei_sanitizers INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(ei_sanitizers INTERFACE -fsanitize=address,undefined)
  target_compile_definitions(ei_sanitizers INTERFACE EI_SANITIZED=1)
endif()

# ei_library(<name> SOURCES ... [PUBLIC ...] [PRIVATE ...])
# One static library per component; the repository root is the include root, so headers
# are included as "api/model.hpp", "storage/state_store.hpp", ... and include/ holds the
# public headers ("export_items/stage.hpp"). Installed (cmake/ExportItemsInstall.cmake), only
# include/export_items/ is: the installed include root is <prefix>/include and holds nothing
# else. ei_warnings and ei_sanitizers are build-tree only: they never reach the installed
# interface.
function(ei_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:include>)
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC} PRIVATE ${ARG_PRIVATE}
                        $<BUILD_INTERFACE:ei_warnings>)
  target_link_libraries(${name} PUBLIC $<BUILD_INTERFACE:ei_sanitizers>)
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

# ei_executable(<name> SOURCES ... [LIBS ...])
function(ei_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} ei_warnings ei_sanitizers)
endfunction()

# ei_test(<name> SOURCES ... [LIBS ...] [LABELS ...] [TIMEOUT seconds])
# A GoogleTest executable registered with ctest; every test has a bounded timeout.
function(ei_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main
                        ei_warnings ei_sanitizers)
  add_test(NAME ${name} COMMAND ${name})
  # `unit`: in-process tests that start no other program and kill nothing (ctest -L unit,
  # `make check`); crash, distributed and embed tests keep only their own labels.
  set(labels ${ARG_LABELS})
  if(NOT ("crash" IN_LIST labels OR "distributed" IN_LIST labels OR "embed" IN_LIST labels
          OR "apps" IN_LIST labels))
    list(APPEND labels unit)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${labels}")
endfunction()

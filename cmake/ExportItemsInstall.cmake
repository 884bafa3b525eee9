# `cmake --install`: the static libraries, the embedding header and the internal headers it
# includes, and a CMake package so that embedders write
#
#   find_package(ExportItems REQUIRED)
#   target_link_libraries(app PRIVATE ExportItems::export_items)
#
# Installed layout (docs/embedding.md):
#   <prefix>/include/export_items/stage.hpp             the public header
#   <prefix>/include/export_items/{actors,api,...}/     the internal headers it includes
#   <prefix>/lib/libei_*.a
#   <prefix>/lib/cmake/ExportItems/                     config, version, targets, FindCAF.cmake
# Include roots: <prefix>/include ("export_items/stage.hpp") and <prefix>/include/export_items
# (the repository root: "actors/batch.hpp"), mirroring include/ and the repository root here.
# Install from a non-sanitized build (release preset): sanitizer flags are not exported.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Every library ei_pipeline links, also privately (static libraries carry their link
# dependencies): a new one must be added here, or install(EXPORT) stops the configure step
# naming the target that is "not in any export set".
set(_ei_install_libs ei_common ei_log ei_api ei_http ei_export_api ei_beast ei_storage ei_simulator
                     ei_actors ei_writeback ei_pipeline)

# What embedders link: every library and both include roots, C++20.
add_library(export_items INTERFACE)
add_library(ExportItems::export_items ALIAS export_items)
target_link_libraries(export_items INTERFACE ei_pipeline)
target_compile_features(export_items INTERFACE cxx_std_20)

# The header closure of include/export_items/stage.hpp plus simulator/simulator.hpp (for hosts
# and tests that run the simulator in-process). Keep it equal to what `g++ -MM` lists for those
# two headers: scripts/embed-example.sh builds examples/embed against the installed tree, so a
# missing header fails CI.
set(_ei_install_headers
  actors/atoms.hpp actors/batch.hpp actors/downstream.hpp actors/fetcher.hpp actors/job.hpp
  actors/report.hpp actors/settings.hpp actors/store.hpp
  api/credentials.hpp api/http_client.hpp api/http_error.hpp api/model.hpp api/query.hpp
  api/retry.hpp
  common/result.hpp
  pipeline/config.hpp
  simulator/simulator.hpp
  storage/state_store.hpp
  writeback/writeback.hpp)

set(_ei_include_dir ${CMAKE_INSTALL_INCLUDEDIR}/export_items)
install(FILES ${PROJECT_SOURCE_DIR}/include/export_items/stage.hpp
              ${PROJECT_SOURCE_DIR}/include/export_items/log.hpp
        DESTINATION ${_ei_include_dir} COMPONENT ExportItems_Development)
foreach(_header IN LISTS _ei_install_headers)
  get_filename_component(_dir ${_header} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/${_header} DESTINATION ${_ei_include_dir}/${_dir}
          COMPONENT ExportItems_Development)
endforeach()

install(TARGETS ${_ei_install_libs} export_items EXPORT ExportItemsTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT ExportItems_Development)

set(_ei_config_dir ${CMAKE_INSTALL_LIBDIR}/cmake/ExportItems)
install(EXPORT ExportItemsTargets NAMESPACE ExportItems:: DESTINATION ${_ei_config_dir}
        COMPONENT ExportItems_Development)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ExportItemsConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/ExportItemsConfig.cmake
                              INSTALL_DESTINATION ${_ei_config_dir})
# 0.x: a new minor version may change the embedding API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ExportItemsConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ExportItemsConfig.cmake
              ${PROJECT_BINARY_DIR}/ExportItemsConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake
        DESTINATION ${_ei_config_dir} COMPONENT ExportItems_Development)

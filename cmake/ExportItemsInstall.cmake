# `cmake --install`: the static libraries, the public headers and a CMake package, so that
# embedders write
#
#   find_package(ExportItems REQUIRED)
#   target_link_libraries(app PRIVATE ExportItems::export_items)
#
# Installed layout (docs/embedding.md):
#   <prefix>/include/export_items/*.hpp                 the public headers, and nothing else
#   <prefix>/lib/libei_*.a
#   <prefix>/lib/cmake/ExportItems/                     config, version, targets, FindCAF.cmake
# The include root is <prefix>/include; the public headers include only each other (plus the
# standard library and CAF), so no internal header (common/, api/, ...) is installed.
# The simulator is not installed: hosts and their tests run it as a program (export-items-sim).
# Install from a non-sanitized build (release preset): sanitizer flags are not exported.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Every library ei_pipeline links, also privately (static libraries carry their link
# dependencies): a new one must be added here, or install(EXPORT) stops the configure step
# naming the target that is "not in any export set".
set(_ei_install_libs ei_common ei_log ei_api ei_http ei_export_api ei_beast ei_storage ei_actors
                     ei_writeback ei_pipeline)

# What embedders link: every library and the include root, C++20.
add_library(export_items INTERFACE)
add_library(ExportItems::export_items ALIAS export_items)
target_link_libraries(export_items INTERFACE ei_pipeline)
target_compile_features(export_items INTERFACE cxx_std_20)

# Every public header, and only those: scripts/embed-example.sh builds examples/embed against
# the installed tree, whose CMake checks that <prefix>/include holds nothing but export_items/,
# so a public header that includes an internal one fails CI.
file(GLOB _ei_public_headers ${PROJECT_SOURCE_DIR}/include/export_items/*.hpp)
install(FILES ${_ei_public_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/export_items
        COMPONENT ExportItems_Development)

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

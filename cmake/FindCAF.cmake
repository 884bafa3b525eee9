# FindCAF: the C++ Actor Framework 0.17 as Debian packages it (libcaf-dev ships no CMake
# config). Components: core io openssl. Defines CAF_FOUND and the imported targets
# CAF::core, CAF::io, CAF::openssl. A missing piece names the Debian package to install.

set(_caf_components ${CAF_FIND_COMPONENTS})
if(NOT _caf_components)
  set(_caf_components core)
endif()

find_path(CAF_INCLUDE_DIR NAMES caf/all.hpp caf/config.hpp)
set(CAF_FOUND TRUE)
if(NOT CAF_INCLUDE_DIR)
  set(CAF_FOUND FALSE)
  if(CAF_FIND_REQUIRED)
    message(FATAL_ERROR "CAF headers (caf/all.hpp) not found: install the Debian package 'libcaf-dev'")
  endif()
endif()

foreach(_comp IN LISTS _caf_components)
  find_library(CAF_${_comp}_LIBRARY NAMES caf_${_comp})
  if(NOT CAF_${_comp}_LIBRARY)
    set(CAF_FOUND FALSE)
    if(CAF_FIND_REQUIRED)
      message(FATAL_ERROR "CAF library 'caf_${_comp}' not found: install the Debian package 'libcaf-dev'")
    endif()
    continue()
  endif()
  if(NOT TARGET CAF::${_comp})
    add_library(CAF::${_comp} SHARED IMPORTED)
    set_target_properties(CAF::${_comp} PROPERTIES
      IMPORTED_LOCATION "${CAF_${_comp}_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES Threads::Threads)
  endif()
endforeach()

if(TARGET CAF::io AND TARGET CAF::core)
  set_property(TARGET CAF::io APPEND PROPERTY INTERFACE_LINK_LIBRARIES CAF::core)
endif()
if(TARGET CAF::openssl)
  set_property(TARGET CAF::openssl APPEND PROPERTY INTERFACE_LINK_LIBRARIES CAF::io OpenSSL::SSL)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF REQUIRED_VARS CAF_INCLUDE_DIR CAF_FOUND)
mark_as_advanced(CAF_INCLUDE_DIR)

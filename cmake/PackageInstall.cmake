# PackageInstall.cmake - the package.install test (cmake -P): installs the
# build tree BUILD_DIR into a fresh PREFIX. It is the setup fixture of the other
# package.* tests.

cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS BUILD_DIR PREFIX)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "PackageInstall.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${PREFIX}")
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed (${result})")
endif()

file(GLOB_RECURSE config "${PREFIX}/*/flushkitConfig.cmake")
file(GLOB_RECURSE umbrella "${PREFIX}/*/flushkit/flushkit.hpp")
if(NOT config OR NOT umbrella)
  message(FATAL_ERROR "the install tree under ${PREFIX} lacks flushkitConfig.cmake or flushkit/flushkit.hpp")
endif()

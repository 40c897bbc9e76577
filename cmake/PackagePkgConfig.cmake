# PackagePkgConfig.cmake - the package.pkg_config test (cmake -P): the
# installed flushkit.pc must be found through PKG_CONFIG_PATH, report the
# project version and an include path inside the install prefix, and its flags
# must build and run the find_package consumer's main.cpp.
#
# Inputs (-D): PKG_CONFIG, PKG_CONFIG_DIR, PREFIX, CXX, SOURCE, WORK_DIR,
# EXPECTED_VERSION.

cmake_minimum_required(VERSION 3.25)

set(ENV{PKG_CONFIG_PATH} "${PKG_CONFIG_DIR}")

function(run_pkg_config var)
  execute_process(
    COMMAND "${PKG_CONFIG}" ${ARGN} flushkit
    RESULT_VARIABLE result
    OUTPUT_VARIABLE out
    ERROR_VARIABLE err
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR
      "PKG_CONFIG_PATH=${PKG_CONFIG_DIR} ${PKG_CONFIG} ${ARGN} flushkit failed:\n${err}")
  endif()
  set(${var} "${out}" PARENT_SCOPE)
endfunction()

run_pkg_config(version --modversion)
if(NOT version STREQUAL EXPECTED_VERSION)
  message(FATAL_ERROR "pkg-config reports version '${version}', expected '${EXPECTED_VERSION}'")
endif()

run_pkg_config(cflags --cflags)
run_pkg_config(libs --libs)
message(STATUS "pkg-config --cflags flushkit: ${cflags}")
message(STATUS "pkg-config --libs flushkit: ${libs}")

separate_arguments(cflag_list UNIX_COMMAND "${cflags}")
set(include_ok FALSE)
file(REAL_PATH "${PREFIX}" real_prefix)
foreach(flag IN LISTS cflag_list)
  if(flag MATCHES "^-I(.+)$")
    file(REAL_PATH "${CMAKE_MATCH_1}" dir)
    if(dir MATCHES "^${real_prefix}/" AND EXISTS "${dir}/flushkit/flushkit.hpp")
      set(include_ok TRUE)
    endif()
  endif()
endforeach()
if(NOT include_ok)
  message(FATAL_ERROR "pkg-config --cflags flushkit has no -I<dir> with flushkit/flushkit.hpp under ${PREFIX}")
endif()

separate_arguments(lib_list UNIX_COMMAND "${libs}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(exe "${WORK_DIR}/consumer")
execute_process(
  COMMAND "${CXX}" -std=c++20 ${cflag_list} "${SOURCE}" -o "${exe}" ${lib_list}
  RESULT_VARIABLE result
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "building ${SOURCE} with the pkg-config flags failed:\n${out}")
endif()
execute_process(COMMAND "${exe}" RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the pkg-config consumer exited with ${result}")
endif()

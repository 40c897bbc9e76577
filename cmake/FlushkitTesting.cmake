# FlushkitTesting.cmake - test registration for flushkit. Feature engineers do
# not edit CMake to add tests; they drop files into the conventional places:
#
#   tests/<layer>/*.cpp        all files of a directory form ONE executable
#                              flushkit_<layer>_tests; every doctest TEST_CASE
#                              becomes the ctest test "<layer>.<test case name>".
#   tests/alloc/<name>.cpp     one executable per file, flushkit_alloc_<name>
#                              (each may replace the global operator new);
#                              ctest names "alloc.<name>.<test case name>".
#   tests/<dir>/CMakeLists.txt if present, the directory is add_subdirectory'd
#                              instead of globbed (use flushkit_add_doctest_executable).
#   tests/compile_fail/*.cpp   first line "// EXPECT: <CMake regex>"; the test
#                              compile_fail.<name> passes iff compiling fails
#                              with a diagnostic that matches the regex.
#   tests/package/             packaging consumers (install, find_package,
#                              add_subdirectory, FetchContent, pkg-config).
#   tests/support/             shared helpers (#include "support/x.hpp") and
#                              main.cpp (doctest's main, compiled once).
#
# Labels of a discovered test (ctest -L <regex>):
#   * the directory name (core, exec, alloc, ...);
#   * the doctest TEST_SUITE name (TEST_SUITE("exec/ordered_executor") ->
#     "exec/ordered_executor"), like doctest_discover_tests(... ADD_LABELS 1);
#   * every "[tag]" in the test case name (TEST_CASE("... [race]") -> "race").
# ctest -L takes a regex: use anchors, e.g. ctest -L '^(race|exec)$'.
# Every test has TIMEOUT 120 and SKIP_RETURN_CODE 77 (exit 77 = skipped).

include_guard(GLOBAL)

set(_FLUSHKIT_TESTING_DIR "${CMAKE_CURRENT_LIST_DIR}")

# Directories of tests/ that are not globbed into a <layer> executable.
set(FLUSHKIT_TEST_SPECIAL_DIRS support alloc package compile_fail)

# Heavy headers precompiled once and shared by every test executable.
set(FLUSHKIT_TEST_PCH_HEADERS
  <boost/asio/io_context.hpp>
  <boost/asio/strand.hpp>
  <boost/asio/awaitable.hpp>
  <boost/asio/co_spawn.hpp>
  <doctest/doctest.h>)

# Targets shared by all test executables: doctest's main (compiled once, never
# with the precompiled header: it must define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
# before doctest.h is seen) and the owner of the precompiled header.
function(_flushkit_test_common_targets)
  if(TARGET flushkit_test_main)
    return()
  endif()
  set(tests_dir "${PROJECT_SOURCE_DIR}/tests")

  add_library(flushkit_test_main OBJECT "${tests_dir}/support/main.cpp")
  target_link_libraries(flushkit_test_main PRIVATE flushkit::flushkit doctest::doctest)

  set(pch_src "${CMAKE_CURRENT_BINARY_DIR}/flushkit_test_pch.cpp")
  file(CONFIGURE OUTPUT "${pch_src}" CONTENT "// owner of the tests' precompiled header\n")
  add_library(flushkit_test_pch OBJECT "${pch_src}")
  _flushkit_test_usage(flushkit_test_pch)
  target_precompile_headers(flushkit_test_pch PRIVATE ${FLUSHKIT_TEST_PCH_HEADERS})
endfunction()

function(_flushkit_test_usage target)
  target_link_libraries(${target} PRIVATE
    flushkit::flushkit doctest::doctest flushkit_dev_flags)
  target_include_directories(${target} PRIVATE "${PROJECT_SOURCE_DIR}/tests")
endfunction()

# flushkit_add_doctest_executable(<target> SOURCES <cpp>... [PREFIX <p>] [LABELS <l>...]
#                                 [COMPILE_OPTIONS <opt>...] [NO_PCH])
# Builds a doctest executable with tests/support/main.cpp, links the library,
# doctest and the developer flags, and registers every test case with ctest.
function(flushkit_add_doctest_executable target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "NO_PCH" "PREFIX;TIMEOUT" "SOURCES;LABELS;COMPILE_OPTIONS")
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "flushkit_add_doctest_executable(${target}): no SOURCES")
  endif()
  if(NOT DEFINED arg_PREFIX)
    set(arg_PREFIX "${target}.")
  endif()
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 120)
  endif()
  _flushkit_test_common_targets()

  add_executable(${target} ${arg_SOURCES})
  target_link_libraries(${target} PRIVATE flushkit_test_main)
  _flushkit_test_usage(${target})
  if(arg_COMPILE_OPTIONS)
    target_compile_options(${target} PRIVATE ${arg_COMPILE_OPTIONS})
  endif()
  if(NOT arg_NO_PCH)
    target_precompile_headers(${target} REUSE_FROM flushkit_test_pch)
  endif()
  flushkit_discover_doctests(${target}
    PREFIX "${arg_PREFIX}" LABELS ${arg_LABELS} TIMEOUT ${arg_TIMEOUT})
endfunction()

# flushkit_discover_doctests(<target> [PREFIX <p>] [LABELS <l>...] [TIMEOUT <s>])
# Like doctest_discover_tests(... ADD_LABELS 1), but the fixed LABELS are kept
# next to the suite labels (doctest's module replaces them), the suites are
# listed with one run of the binary, and "[tag]"s in names become labels.
# Discovery runs after each link (POST_BUILD), so a binary that crashes at
# start-up fails the build.
function(flushkit_discover_doctests target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "PREFIX;TIMEOUT" "LABELS")
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 120)
  endif()
  set(ctest_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake")
  set(include_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake")
  string(REPLACE ";" "|" labels "${arg_LABELS}")
  add_custom_command(TARGET ${target} POST_BUILD
    BYPRODUCTS "${ctest_file}"
    COMMAND "${CMAKE_COMMAND}"
      "-DTEST_EXECUTABLE=$<TARGET_FILE:${target}>"
      "-DTEST_WORKING_DIR=${CMAKE_CURRENT_BINARY_DIR}"
      "-DTEST_PREFIX=${arg_PREFIX}"
      "-DTEST_LABELS=${labels}"
      "-DTEST_TIMEOUT=${arg_TIMEOUT}"
      "-DCTEST_FILE=${ctest_file}"
      -P "${_FLUSHKIT_TESTING_DIR}/FlushkitDoctestDiscover.cmake"
    COMMENT "Discovering doctest cases in ${target}"
    VERBATIM)
  file(CONFIGURE OUTPUT "${include_file}" CONTENT
"if(EXISTS \"${ctest_file}\")
  include(\"${ctest_file}\")
else()
  add_test(${target}_NOT_BUILT ${target}_NOT_BUILT)
endif()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${include_file}")
endfunction()

# Globs tests/<dir>/ for every directory (see the conventions at the top).
function(flushkit_add_test_directories tests_dir)
  file(GLOB entries LIST_DIRECTORIES true CONFIGURE_DEPENDS "${tests_dir}/*")
  # Re-run the configure step when an escape-hatch CMakeLists.txt appears.
  file(GLOB _ CONFIGURE_DEPENDS "${tests_dir}/*/CMakeLists.txt")
  list(SORT entries)
  foreach(dir IN LISTS entries)
    if(NOT IS_DIRECTORY "${dir}")
      continue()
    endif()
    get_filename_component(name "${dir}" NAME)
    if(name STREQUAL "alloc")
      if(FLUSHKIT_BUILD_ALLOC_TESTS)
        _flushkit_add_alloc_tests("${dir}")
      else()
        message(STATUS "flushkit: tests/alloc skipped (FLUSHKIT_BUILD_ALLOC_TESTS is OFF)")
      endif()
      continue()
    endif()
    if(name IN_LIST FLUSHKIT_TEST_SPECIAL_DIRS)
      continue()
    endif()
    if(EXISTS "${dir}/CMakeLists.txt")
      add_subdirectory("${dir}")
      continue()
    endif()
    file(GLOB sources CONFIGURE_DEPENDS "${dir}/*.cpp")
    if(NOT sources)
      continue()
    endif()
    if(NOT name MATCHES "^[A-Za-z0-9_]+$")
      message(FATAL_ERROR "tests/${name}: test directory names must match [A-Za-z0-9_]+")
    endif()
    flushkit_add_doctest_executable(flushkit_${name}_tests
      SOURCES ${sources} PREFIX "${name}." LABELS ${name})
  endforeach()
endfunction()

function(_flushkit_add_alloc_tests dir)
  if(EXISTS "${dir}/CMakeLists.txt")
    add_subdirectory("${dir}")
    return()
  endif()
  # The allocation tests measure Asio as it is shipped: a build that turns
  # coroutine-frame recycling off (the sanitizer presets do, so that ASan sees
  # a frame used after free) gets it back here, without the shared
  # precompiled header, which was built with the macro.
  set(extra "")
  if(CMAKE_CXX_FLAGS MATCHES "BOOST_ASIO_DISABLE_AWAITABLE_FRAME_RECYCLING")
    set(extra NO_PCH COMPILE_OPTIONS -UBOOST_ASIO_DISABLE_AWAITABLE_FRAME_RECYCLING)
  endif()
  file(GLOB sources CONFIGURE_DEPENDS "${dir}/*.cpp")
  foreach(src IN LISTS sources)
    get_filename_component(name "${src}" NAME_WE)
    flushkit_add_doctest_executable(flushkit_alloc_${name}
      SOURCES "${src}" PREFIX "alloc.${name}." LABELS alloc ${extra})
  endforeach()
endfunction()

# tests/compile_fail/<name>.cpp -> ctest compile_fail.<name> (label compile_fail).
function(flushkit_add_compile_fail_tests dir)
  if(NOT IS_DIRECTORY "${dir}")
    return()
  endif()
  file(GLOB sources CONFIGURE_DEPENDS "${dir}/*.cpp")
  string(TOUPPER "${CMAKE_BUILD_TYPE}" build_type)
  set(flags "${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${build_type}}")
  # Boost's include directory, unless it is one the compiler searches anyway
  # (-isystem /usr/include would break #include_next in libstdc++).
  get_target_property(boost_dirs Boost::headers INTERFACE_INCLUDE_DIRECTORIES)
  set(system_dirs "")
  foreach(d IN LISTS boost_dirs)
    if(d AND NOT d IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      list(APPEND system_dirs "${d}")
    endif()
  endforeach()
  list(JOIN system_dirs "|" system_dirs)
  foreach(src IN LISTS sources)
    get_filename_component(name "${src}" NAME_WE)
    add_test(NAME compile_fail.${name}
      COMMAND "${CMAKE_COMMAND}"
        "-DCXX=${CMAKE_CXX_COMPILER}"
        "-DSOURCE=${src}"
        "-DINCLUDE_DIRS=${PROJECT_SOURCE_DIR}/include|${PROJECT_SOURCE_DIR}/tests"
        "-DSYSTEM_INCLUDE_DIRS=${system_dirs}"
        "-DDEFINES=BOOST_ASIO_NO_DEPRECATED|BOOST_ASIO_NO_TS_EXECUTORS"
        "-DFLAGS=${flags}"
        -P "${_FLUSHKIT_TESTING_DIR}/CompileFail.cmake")
    set_tests_properties(compile_fail.${name} PROPERTIES
      LABELS compile_fail
      TIMEOUT 300)
  endforeach()
endfunction()

# Packaging tests (label package). package.install installs into
# <build>/package-test/prefix and is the setup fixture of the others.
function(flushkit_add_package_tests dir)
  if(NOT IS_DIRECTORY "${dir}")
    return()
  endif()
  set(work "${CMAKE_BINARY_DIR}/package-test")
  set(prefix "${work}/prefix")
  set(build_and_test
    "${CMAKE_CTEST_COMMAND}" --build-and-test)
  set(build_opts
    --build-generator "${CMAKE_GENERATOR}"
    --build-makeprogram "${CMAKE_MAKE_PROGRAM}"
    --build-options
      "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
      "-DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE}"
      "-DBoost_DIR=${Boost_DIR}")
  set(tests "")

  add_test(NAME package.install
    COMMAND "${CMAKE_COMMAND}"
      "-DBUILD_DIR=${CMAKE_BINARY_DIR}"
      "-DPREFIX=${prefix}"
      -P "${_FLUSHKIT_TESTING_DIR}/PackageInstall.cmake")
  set_tests_properties(package.install PROPERTIES FIXTURES_SETUP flushkit_package_installed)
  list(APPEND tests package.install)

  if(EXISTS "${dir}/find_package/CMakeLists.txt")
    # Against the installed tree.
    add_test(NAME package.find_package
      COMMAND ${build_and_test} "${dir}/find_package" "${work}/find_package"
        ${build_opts} "-DCMAKE_PREFIX_PATH=${prefix}"
        "-DFLUSHKIT_EXPECTED_VERSION=${PROJECT_VERSION}"
        --test-command consumer)
    # Against the build tree's export() (no install).
    add_test(NAME package.build_tree
      COMMAND ${build_and_test} "${dir}/find_package" "${work}/build_tree"
        ${build_opts} "-Dflushkit_DIR=${PROJECT_BINARY_DIR}"
        "-DFLUSHKIT_EXPECTED_VERSION=${PROJECT_VERSION}"
        --test-command consumer)
    list(APPEND tests package.find_package package.build_tree)

    find_program(FLUSHKIT_PKG_CONFIG NAMES pkg-config pkgconf)
    if(FLUSHKIT_PKG_CONFIG)
      add_test(NAME package.pkg_config
        COMMAND "${CMAKE_COMMAND}"
          "-DPKG_CONFIG=${FLUSHKIT_PKG_CONFIG}"
          "-DPKG_CONFIG_DIR=${prefix}/${CMAKE_INSTALL_DATADIR}/pkgconfig"
          "-DPREFIX=${prefix}"
          "-DCXX=${CMAKE_CXX_COMPILER}"
          "-DSOURCE=${dir}/find_package/main.cpp"
          "-DWORK_DIR=${work}/pkg_config"
          "-DEXPECTED_VERSION=${PROJECT_VERSION}"
          -P "${_FLUSHKIT_TESTING_DIR}/PackagePkgConfig.cmake")
      list(APPEND tests package.pkg_config)
    else()
      message(STATUS "flushkit: pkg-config not found, package.pkg_config is not registered")
    endif()
  endif()

  foreach(kind IN ITEMS add_subdirectory fetch_content)
    if(EXISTS "${dir}/${kind}/CMakeLists.txt")
      add_test(NAME package.${kind}
        COMMAND ${build_and_test} "${dir}/${kind}" "${work}/${kind}"
          ${build_opts} "-DFLUSHKIT_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
          --test-command consumer)
      list(APPEND tests package.${kind})
    endif()
  endforeach()

  set(consumers ${tests})
  list(REMOVE_ITEM consumers package.install)
  if(consumers)
    set_tests_properties(${consumers} PROPERTIES FIXTURES_REQUIRED flushkit_package_installed)
  endif()
  set_tests_properties(${tests} PROPERTIES LABELS package TIMEOUT 600)
endfunction()

# CompileFail.cmake - a compile-fail test (cmake -P).
#
# The first line of SOURCE must be
#     // EXPECT: <regex>
# (CMake regular-expression syntax, matched against the compiler's combined
# output in the C locale, so quotes are plain ASCII). The test passes iff
# compiling SOURCE fails AND the output matches the regex.
#
# Inputs (-D): CXX, SOURCE, INCLUDE_DIRS and SYSTEM_INCLUDE_DIRS and DEFINES
# ("|"-separated), FLAGS (one shell-like string, e.g. CMAKE_CXX_FLAGS).

cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS CXX SOURCE)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "CompileFail.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${SOURCE}" head LIMIT 4096)
string(REGEX MATCH "^[^\n]*" first_line "${head}")
string(REGEX REPLACE "\r$" "" first_line "${first_line}")
if(NOT first_line MATCHES "^[ \t]*//[ \t]*EXPECT:[ \t]*(.*[^ \t])[ \t]*$")
  message(FATAL_ERROR
    "${SOURCE}: the first line must be '// EXPECT: <regex>', found:\n  ${first_line}")
endif()
set(expect "${CMAKE_MATCH_1}")

set(args -std=c++20 -fsyntax-only -fdiagnostics-color=never)
if(FLAGS)
  separate_arguments(flag_list UNIX_COMMAND "${FLAGS}")
  list(APPEND args ${flag_list})
endif()
string(REPLACE "|" ";" include_dirs "${INCLUDE_DIRS}")
foreach(dir IN LISTS include_dirs)
  if(dir)
    list(APPEND args "-I${dir}")
  endif()
endforeach()
string(REPLACE "|" ";" system_dirs "${SYSTEM_INCLUDE_DIRS}")
foreach(dir IN LISTS system_dirs)
  if(dir)
    list(APPEND args -isystem "${dir}")
  endif()
endforeach()
string(REPLACE "|" ";" defines "${DEFINES}")
foreach(def IN LISTS defines)
  if(def)
    list(APPEND args "-D${def}")
  endif()
endforeach()
list(APPEND args "${SOURCE}")

set(ENV{LC_ALL} C)
set(ENV{LANG} C)
execute_process(
  COMMAND "${CXX}" ${args}
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)

list(JOIN args " " shown_args)
if(result EQUAL 0)
  message(FATAL_ERROR
    "${SOURCE} compiled, but it must be rejected with a diagnostic matching\n"
    "  ${expect}\n"
    "command: ${CXX} ${shown_args}")
endif()
if(NOT output MATCHES "${expect}")
  message(FATAL_ERROR
    "${SOURCE} failed to compile (as it must), but no diagnostic matches\n"
    "  ${expect}\n"
    "command: ${CXX} ${shown_args}\n"
    "---- compiler output ----\n${output}")
endif()
message(STATUS "${SOURCE}: rejected as expected (matched '${expect}')")

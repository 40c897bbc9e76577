# CheckSnippets.cmake - fails when a ```cpp block of the documentation is not
# real code. Run as a script (ctest docs.snippets):
#
#   cmake -DSOURCE_DIR=<flushkit source dir> -P cmake/CheckSnippets.cmake
#
# Documents: README.md and docs/*.md (a missing README.md is not an error).
# Code:      every *.cpp, *.hpp and *.h file under examples/, tests/, include/.
#
# Rule: every block fenced with a line "```cpp" ... "```" must appear verbatim
# in one code file, after normalising both sides the same way:
#   * trailing spaces and tabs are removed from every line;
#   * leading and trailing blank lines of the block are dropped;
#   * the block's common indentation (spaces) is removed;
#   * in the code file, the block may sit at any uniform indentation of
#     0..40 spaces (blank lines stay blank): it must match consecutive whole
#     lines there.
# A block that is not meant to compile (a diagnostic, pseudo-code, an
# excerpt with "...") uses another fence: ```text, ```sh, ```cmake, ...
# Every failing block is reported as <file>:<line>; the exit status is
# non-zero when any block fails.

cmake_minimum_required(VERSION 3.25)

if(NOT SOURCE_DIR)
  message(FATAL_ERROR "CheckSnippets.cmake: pass -DSOURCE_DIR=<flushkit source dir>")
endif()

# CMake lists split on ';' and treat '[' ']' specially: park them while a
# text is a list of lines.
function(_snip_to_lines var text)
  string(REPLACE ";" "@SNIP_SEMI@" text "${text}")
  string(REPLACE "[" "@SNIP_LBR@" text "${text}")
  string(REPLACE "]" "@SNIP_RBR@" text "${text}")
  string(REPLACE "\\" "@SNIP_BSL@" text "${text}")
  string(REGEX REPLACE "[ \t\r]+\n" "\n" text "${text}")
  string(REPLACE "\n" ";" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

function(_snip_restore var text)
  string(REPLACE "@SNIP_SEMI@" ";" text "${text}")
  string(REPLACE "@SNIP_LBR@" "[" text "${text}")
  string(REPLACE "@SNIP_RBR@" "]" text "${text}")
  string(REPLACE "@SNIP_BSL@" "\\" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

# The code corpus: every code file, whitespace-normalised, each framed by
# newlines so a match is always a run of whole lines.
file(GLOB_RECURSE code_files
  "${SOURCE_DIR}/examples/*.cpp" "${SOURCE_DIR}/examples/*.hpp" "${SOURCE_DIR}/examples/*.h"
  "${SOURCE_DIR}/tests/*.cpp" "${SOURCE_DIR}/tests/*.hpp" "${SOURCE_DIR}/tests/*.h"
  "${SOURCE_DIR}/include/*.cpp" "${SOURCE_DIR}/include/*.hpp" "${SOURCE_DIR}/include/*.h")
set(corpus "\n")
foreach(f IN LISTS code_files)
  file(READ "${f}" content)
  string(REGEX REPLACE "[ \t\r]+\n" "\n" content "${content}")
  string(APPEND corpus "${content}\n\n")
endforeach()

set(docs "")
if(EXISTS "${SOURCE_DIR}/README.md")
  list(APPEND docs "${SOURCE_DIR}/README.md")
endif()
file(GLOB doc_files "${SOURCE_DIR}/docs/*.md")
list(SORT doc_files)
list(APPEND docs ${doc_files})

set(checked 0)
set(failures 0)

# Checks one block: `lines` is the parked list of its lines.
function(_snip_check doc first_line lines)
  # Drop leading and trailing blank lines.
  list(LENGTH lines n)
  while(n GREATER 0)
    list(GET lines 0 l)
    if(NOT l STREQUAL "")
      break()
    endif()
    list(REMOVE_AT lines 0)
    math(EXPR first_line "${first_line} + 1")
    list(LENGTH lines n)
  endwhile()
  while(n GREATER 0)
    list(GET lines -1 l)
    if(NOT l STREQUAL "")
      break()
    endif()
    list(REMOVE_AT lines -1)
    list(LENGTH lines n)
  endwhile()
  if(n EQUAL 0)
    message(NOTICE "${doc}:${first_line}: error: empty ```cpp block")
    math(EXPR f "${failures} + 1")
    set(failures ${f} PARENT_SCOPE)
    return()
  endif()

  # Common indentation of the non-blank lines.
  set(indent 1000)
  foreach(l IN LISTS lines)
    if(l STREQUAL "")
      continue()
    endif()
    set(k 0)
    if(l MATCHES "^( +)")
      string(LENGTH "${CMAKE_MATCH_1}" k)
    endif()
    if(k LESS indent)
      set(indent ${k})
    endif()
  endforeach()

  # The block re-indented by 0..40 spaces must be a run of whole lines of the corpus.
  set(found FALSE)
  foreach(pad RANGE 0 40)
    string(REPEAT " " ${pad} prefix)
    set(text "")
    foreach(l IN LISTS lines)
      if(l STREQUAL "")
        string(APPEND text "\n")
      else()
        string(SUBSTRING "${l}" ${indent} -1 l)
        string(APPEND text "${prefix}${l}\n")
      endif()
    endforeach()
    _snip_restore(text "${text}")
    string(FIND "${corpus}" "\n${text}" at)
    if(at GREATER -1)
      set(found TRUE)
      break()
    endif()
  endforeach()
  if(NOT found)
    message(NOTICE
      "${doc}:${first_line}: error: this ```cpp block is not found verbatim in any file under "
      "examples/, tests/ or include/ (copy it from compiled code, or fence it ```text)")
    math(EXPR f "${failures} + 1")
    set(failures ${f} PARENT_SCOPE)
  endif()
endfunction()

foreach(doc IN LISTS docs)
  file(READ "${doc}" content)
  file(RELATIVE_PATH rel "${SOURCE_DIR}" "${doc}")
  _snip_to_lines(doc_lines "${content}")
  set(line_no 0)
  set(in_block FALSE)
  set(block "")
  set(block_start 0)
  foreach(l IN LISTS doc_lines)
    math(EXPR line_no "${line_no} + 1")
    if(NOT in_block)
      if(l MATCHES "^ *```cpp$")
        set(in_block TRUE)
        set(block "")
        math(EXPR block_start "${line_no} + 1")
      endif()
    elseif(l MATCHES "^ *```$")
      set(in_block FALSE)
      math(EXPR checked "${checked} + 1")
      # An empty element must survive: join with ';' explicitly.
      _snip_check("${rel}" ${block_start} "${block}")
    else()
      if(block_start EQUAL line_no)
        set(block "${l}")
      else()
        set(block "${block};${l}")
      endif()
    endif()
  endforeach()
  if(in_block)
    message(NOTICE "${rel}:${block_start}: error: unterminated ```cpp block")
    math(EXPR failures "${failures} + 1")
  endif()
endforeach()

if(failures GREATER 0)
  message(FATAL_ERROR "docs.snippets: ${failures} of ${checked} ```cpp blocks failed")
endif()
message(STATUS "docs.snippets: all ${checked} ```cpp blocks appear in examples/, tests/ or include/")

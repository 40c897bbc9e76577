# bench/check_json_lines.cmake - cmake -DBENCH=<flushkit-bench> -P check_json_lines.cmake
#
# Runs `flushkit-bench --scenario overhead --seconds 0.2 --json` and fails
# unless it exits 0 and prints at least one line, every line being a JSON
# object with the required keys, numeric where a number is required.
cmake_minimum_required(VERSION 3.25)

if(NOT BENCH)
  message(FATAL_ERROR "usage: cmake -DBENCH=<path to flushkit-bench> -P check_json_lines.cmake")
endif()

execute_process(
  COMMAND "${BENCH}" --scenario overhead --seconds 0.2 --json
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  RESULT_VARIABLE rc
  TIMEOUT 50)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "flushkit-bench exited with '${rc}'\nstdout:\n${out}\nstderr:\n${err}")
endif()

set(string_keys scenario model kernel fs_type)
set(number_keys inflight ops seconds acks_per_s ns_per_op flushes flushes_per_ack
    p50_us p99_us submit_p50_ns)
set(nullable_number_keys allocs_per_op) # null where counting is off (sanitizer builds)

string(REPLACE ";" "\\;" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(count 0)
foreach(line IN LISTS lines)
  if(line STREQUAL "")
    continue()
  endif()
  string(JSON kind ERROR_VARIABLE json_err TYPE "${line}")
  if(json_err OR NOT kind STREQUAL "OBJECT")
    message(FATAL_ERROR "not a JSON object: ${line}\n${json_err}")
  endif()
  foreach(key IN LISTS string_keys number_keys nullable_number_keys)
    string(JSON type ERROR_VARIABLE json_err TYPE "${line}" ${key})
    if(json_err)
      message(FATAL_ERROR "missing key '${key}' in: ${line}")
    endif()
    if(key IN_LIST string_keys AND NOT type STREQUAL "STRING")
      message(FATAL_ERROR "'${key}' is ${type}, expected a string: ${line}")
    endif()
    if(key IN_LIST number_keys AND NOT type STREQUAL "NUMBER")
      message(FATAL_ERROR "'${key}' is ${type}, expected a number: ${line}")
    endif()
    if(key IN_LIST nullable_number_keys AND NOT type MATCHES "^(NUMBER|NULL)$")
      message(FATAL_ERROR "'${key}' is ${type}, expected a number or null: ${line}")
    endif()
  endforeach()
  string(JSON scenario GET "${line}" scenario)
  if(NOT scenario STREQUAL "overhead")
    message(FATAL_ERROR "unexpected scenario '${scenario}': ${line}")
  endif()
  string(JSON ops GET "${line}" ops)
  if(ops LESS_EQUAL 0)
    message(FATAL_ERROR "no operation completed in the window: ${line}")
  endif()
  math(EXPR count "${count} + 1")
endforeach()
if(count EQUAL 0)
  message(FATAL_ERROR "flushkit-bench printed no result line\nstderr:\n${err}")
endif()
message(STATUS "bench.quick_smoke: ${count} valid JSON result lines")

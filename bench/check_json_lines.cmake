# bench/check_json_lines.cmake - cmake -DBENCH=<flushkit-bench> -P check_json_lines.cmake
#
# Runs `flushkit-bench --scenario all --seconds 0.05 --inflight 1,4 --json`
# (every scenario, every model, briefly) and fails unless it exits 0 and:
#  - every line is a JSON object: a result with the required keys (numeric
#    where a number is required, at least one op) or a skip line (scenario,
#    model and the "skipped" reason as strings);
#  - every model `flushkit-bench --list-models` names appears on at least one
#    line of its scenario.
cmake_minimum_required(VERSION 3.25)

if(NOT BENCH)
  message(FATAL_ERROR "usage: cmake -DBENCH=<path to flushkit-bench> -P check_json_lines.cmake")
endif()

function(run_bench out_var)
  execute_process(
    COMMAND "${BENCH}" ${ARGN}
    OUTPUT_VARIABLE out
    ERROR_VARIABLE err
    RESULT_VARIABLE rc
    TIMEOUT 100)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "flushkit-bench ${ARGN} exited with '${rc}'\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  # One list element per line (a line's own ';' escaped).
  string(REPLACE ";" "\\;" out "${out}")
  string(REPLACE "\n" ";" out "${out}")
  list(REMOVE_ITEM out "")
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

# Fails unless `line` has `key` of a type matching `types` (a regex).
function(require_key line key types)
  string(JSON type ERROR_VARIABLE json_err TYPE "${line}" ${key})
  if(json_err)
    message(FATAL_ERROR "missing key '${key}' in: ${line}")
  endif()
  if(NOT type MATCHES "^(${types})$")
    message(FATAL_ERROR "'${key}' is ${type}, expected ${types}: ${line}")
  endif()
endfunction()

set(string_keys scenario model kernel fs_type build)
set(number_keys inflight ops errors seconds acks_per_s ns_per_op flushes flushes_per_ack
    p50_us p99_us submit_p50_ns submit_p99_ns cpu_us_per_ack nproc)
# null where not measured: allocation counting off (sanitizer builds), no
# block device, no flush issued, a model that does not report its memory.
set(nullable_number_keys allocs_per_op device_flushes_per_ack avg_batch bytes_per_request)

run_bench(registered --list-models)
run_bench(lines --scenario all --seconds 0.05 --inflight 1,4 --json)

set(results 0)
set(skips 0)
set(seen "")
foreach(line IN LISTS lines)
  string(JSON kind ERROR_VARIABLE json_err TYPE "${line}")
  if(json_err OR NOT kind STREQUAL "OBJECT")
    message(FATAL_ERROR "not a JSON object: ${line}\n${json_err}")
  endif()
  require_key("${line}" scenario STRING)
  require_key("${line}" model STRING)
  string(JSON scenario GET "${line}" scenario)
  string(JSON model GET "${line}" model)
  list(APPEND seen "${scenario} ${model}")
  string(JSON skipped ERROR_VARIABLE no_skip GET "${line}" skipped)
  if(NOT no_skip)
    require_key("${line}" skipped STRING)
    math(EXPR skips "${skips} + 1")
    continue()
  endif()
  foreach(key IN LISTS string_keys)
    require_key("${line}" ${key} STRING)
  endforeach()
  foreach(key IN LISTS number_keys)
    require_key("${line}" ${key} NUMBER)
  endforeach()
  foreach(key IN LISTS nullable_number_keys)
    require_key("${line}" ${key} "NUMBER|NULL")
  endforeach()
  string(JSON ops GET "${line}" ops)
  if(ops LESS_EQUAL 0)
    message(FATAL_ERROR "no operation completed in the window: ${line}")
  endif()
  math(EXPR results "${results} + 1")
endforeach()

foreach(entry IN LISTS registered)
  if(NOT entry IN_LIST seen)
    message(FATAL_ERROR "model '${entry}' is registered but printed neither a result nor a skip line")
  endif()
endforeach()
foreach(entry IN LISTS seen)
  if(NOT entry IN_LIST registered)
    message(FATAL_ERROR "a line names '${entry}', which --list-models does not")
  endif()
endforeach()
list(LENGTH registered models)
message(STATUS "bench.quick_smoke: ${results} result and ${skips} skip lines, all ${models} models reported")

# Runs one fuzzer for the test suite: replays regressions/<target>/* (each once), then fuzzes for
# SECONDS over a scratch copy of the seed corpus; any crash fails the test, the input is kept in
# WORK/artifacts/. Prints libFuzzer's statistics (executions, executions per second).
file(REMOVE_RECURSE ${WORK})
# Undefined behaviour stops the run like a crash, except the benign reports ubsan.supp lists.
set(env ${CMAKE_COMMAND} -E env
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=${SUPPRESSIONS}")
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/artifacts)
get_filename_component(name ${FUZZER} NAME)

file(GLOB regressions ${REGRESSIONS}/*)
file(GLOB seeds ${CORPUS}/*)
list(LENGTH regressions regression_count)
list(LENGTH seeds seed_count)
if(seed_count EQUAL 0)
  message(FATAL_ERROR "${name}: no seed corpus in ${CORPUS}")
endif()
if(regression_count GREATER 0)
  execute_process(COMMAND ${env} ${FUZZER} -runs=1 ${regressions} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: a regression input fails again:\n${out}")
  endif()
endif()
message(STATUS "${name}: ${regression_count} regression inputs pass")

if(SECONDS GREATER 0)
  execute_process(COMMAND ${env} ${FUZZER} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
                          -print_final_stats=1 -artifact_prefix=${WORK}/artifacts/
                          ${WORK}/corpus ${CORPUS}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  string(REGEX MATCHALL "stat::[a-z_]+: *[0-9]+" stats "${out}")
  string(REPLACE ";" "\n  " stats "${stats}")
  message(STATUS "${name}: ${SECONDS} s over ${seed_count} seeds:\n  ${stats}")
  if(NOT rc EQUAL 0)
    file(GLOB found ${WORK}/artifacts/*)
    message(FATAL_ERROR "${name} found a failure (input kept: ${found}):\n${out}")
  endif()
else()
  execute_process(COMMAND ${env} ${FUZZER} -runs=1 ${seeds} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: a seed input fails:\n${out}")
  endif()
  message(STATUS "${name}: ${seed_count} seeds replayed (UNETSRNN_FUZZ_SECONDS=0)")
endif()

# Packaging test: install the configured build tree into a scratch prefix, then configure, build and
# run tests/consumer against that prefix alone. Run as
#   cmake -DSOURCE_DIR=<repo> -DBINARY_DIR=<configured build> -DWORK_DIR=<scratch> -P install_consumer.cmake
# Any failing step stops with FATAL_ERROR and the step's output.
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS SOURCE_DIR BINARY_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "install_consumer: -D${var}=... is required")
  endif()
endforeach()
if(NOT DEFINED WORK_DIR)
  set(WORK_DIR "${BINARY_DIR}/consumer_work")
endif()
if(NOT EXISTS "${BINARY_DIR}/CMakeCache.txt")
  message(FATAL_ERROR "install_consumer: ${BINARY_DIR} is not a configured build tree")
endif()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Use the main build's compiler and generator, so the consumer is built the way the library is.
file(STRINGS "${BINARY_DIR}/CMakeCache.txt" cached_compiler REGEX "^CMAKE_CXX_COMPILER:[A-Z]+=")
string(REGEX REPLACE "^[^=]*=" "" cxx_compiler "${cached_compiler}")
file(STRINGS "${BINARY_DIR}/CMakeCache.txt" cached_generator REGEX "^CMAKE_GENERATOR:[A-Z]+=")
string(REGEX REPLACE "^[^=]*=" "" generator "${cached_generator}")

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${what} failed (${rc}):\n${out}")
  endif()
  message(STATUS "install_consumer: ${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

run_step("install into ${prefix}"
  "${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${prefix}" --config Release)

# Only the scratch prefix may provide unetsrnn: no package registries, no source tree.
run_step("configure tests/consumer"
  "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer" -B "${consumer_build}"
  -G "${generator}" "-DCMAKE_CXX_COMPILER=${cxx_compiler}" -DCMAKE_BUILD_TYPE=Release
  "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)

file(STRINGS "${consumer_build}/CMakeCache.txt" found_dir REGEX "^unetsrnn_DIR:")
string(REGEX REPLACE "^[^=]*=" "" found_dir "${found_dir}")
file(REAL_PATH "${prefix}" real_prefix)
file(REAL_PATH "${found_dir}" real_found_dir)
string(FIND "${real_found_dir}" "${real_prefix}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "install_consumer: the consumer found unetsrnn in '${found_dir}', "
                      "not under the install prefix '${prefix}'")
endif()

run_step("build the consumer" "${CMAKE_COMMAND}" --build "${consumer_build}" --config Release)

# The package imposes no code-generation flags: the consumer is compiled for the compiler's
# baseline and must still run the CPU's best kernels (it checks so itself).
file(GLOB_RECURSE consumer_flags "${consumer_build}/CMakeFiles/app.dir/flags.make")
foreach(flags_file IN LISTS consumer_flags)
  file(READ "${flags_file}" flags)
  if(flags MATCHES "-march|-mavx|-mfma")
    message(FATAL_ERROR "install_consumer: the consumer was compiled with ISA flags:\n${flags}")
  endif()
endforeach()

set(app "${consumer_build}/app")
if(NOT EXISTS "${app}" AND EXISTS "${consumer_build}/Release/app")
  set(app "${consumer_build}/Release/app")  # multi-config generators
endif()
run_step("run the consumer" "${app}")
message(STATUS "install_consumer: app printed:\n${step_output}")

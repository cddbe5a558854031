# flatbench_optional_package(NAME TARGET): find an optional CMake-config package only when its
# config really works. Some Debian configs call find_package(... REQUIRED) on dependencies that
# are merely Recommends of the -dev package (libdnnl-dev needs OpenCL that way); such a failure
# inside find_package would stop our whole configure. The package is first configured in a
# throw-away project (cmake/probe_package) by a child CMake; if that fails, the package is
# disabled with a message naming the reason and <NAME>_FOUND stays false.
function(flatbench_optional_package name target)
  set(probe_dir ${CMAKE_BINARY_DIR}/probe_package/${name})
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/probe_package -B ${probe_dir}
            -G ${CMAKE_GENERATOR} -DPROBE_PACKAGE=${name} -DPROBE_TARGET=${target}
            -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
            "-DCMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH}" "-D${name}_DIR=${${name}_DIR}"
    RESULT_VARIABLE probe_rc OUTPUT_VARIABLE probe_log ERROR_VARIABLE probe_log)
  set(found FALSE)
  if(probe_rc EQUAL 0)
    find_package(${name} QUIET CONFIG)
    set(found ${${name}_FOUND})
  endif()
  if(found)
    message(STATUS "flatbench: optional package ${name} found")
  else()
    string(REGEX REPLACE "[ \n]+" " " flat_log "${probe_log}")
    string(REGEX MATCH "Could NOT find [^(.]*|Could not find a package configuration file provided by \"[^\"]*\""
           reason "${flat_log}")
    if(reason STREQUAL "")
      set(reason "its CMake config failed: see ${probe_dir}")
    endif()
    message(WARNING "flatbench: optional package ${name} disabled: ${reason}. "
                    "scripts/deps.sh installs everything it needs.")
  endif()
  set(${name}_FOUND ${found} PARENT_SCOPE)
endfunction()

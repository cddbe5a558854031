# ctest: cmake -DFLATBENCH_ROOT=... -DWORK_DIR=... -P check.cmake
# Configures ./project with a package prefix whose config is broken; passes when the configure
# succeeds and says the package was disabled (the fresh-machine failure of issue 16 item 1).
set(here ${CMAKE_CURRENT_LIST_DIR})
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${here}/project -B ${WORK_DIR} -G Ninja
          -DFLATBENCH_ROOT=${FLATBENCH_ROOT} -DCMAKE_PREFIX_PATH=${here}/broken_pkg
          -Dbrokenpkg_DIR=${here}/broken_pkg
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configure stopped on a broken optional package (rc ${rc}):\n${out}")
endif()
string(REGEX REPLACE "[ \n]+" " " out "${out}")  # CMake wraps warnings
if(NOT out MATCHES "optional package brokenpkg disabled: [^.]*FlatbenchDependencyThatIsNotInstalled")
  message(FATAL_ERROR "no message naming the disabled package and its reason:\n${out}")
endif()
if(NOT out MATCHES "configure went on without brokenpkg")
  message(FATAL_ERROR "configure did not go on:\n${out}")
endif()

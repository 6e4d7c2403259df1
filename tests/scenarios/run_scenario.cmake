# Runs the scenario replay on SCENARIO and compares its output with EXPECTED, byte for byte.
execute_process(COMMAND ${REPLAY} ${ARGS} ${SCENARIO}
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "scenario_replay exited with ${rc}")
endif()
file(READ ${EXPECTED} want)
if(NOT out STREQUAL want)
  get_filename_component(name ${SCENARIO} NAME_WE)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/${name}.actual "${out}")
  message(FATAL_ERROR "output differs from ${EXPECTED}\n--- expected\n${want}--- actual\n${out}")
endif()

# Checks that each doc's code sample equals the marked region of its example: the lines
# between "// [NAME-begin]" and "// [NAME-end]", dedented by the begin marker's indentation.
# Pairs: doc file | example file | marker name.
set(pairs
  "README.md|examples/readme_example.cpp|readme"
  "README.md|examples/readme_example.cpp|readme-folder"
  "docs/core.md|examples/core_demo.cpp|demo"
  "docs/concepts.md|examples/map_backend.cpp|tutorial")
set(failed FALSE)
foreach(pair IN LISTS pairs)
  string(REPLACE "|" ";" parts "${pair}")
  list(GET parts 0 doc)
  list(GET parts 1 example)
  list(GET parts 2 marker)
  file(READ "${SOURCE_DIR}/${example}" src)
  if(NOT src MATCHES "\n([ ]*)// \\[${marker}-begin\\]\n(.*)\n[ ]*// \\[${marker}-end\\]")
    message(SEND_ERROR "${example}: markers [${marker}-begin]/[${marker}-end] not found")
    set(failed TRUE)
    continue()
  endif()
  set(indent "${CMAKE_MATCH_1}")
  set(region "${CMAKE_MATCH_2}")
  if(NOT indent STREQUAL "")
    # (CMake's REGEX REPLACE re-anchors ^ after each match: dedent via a leading newline.)
    string(REPLACE "\n${indent}" "\n" region "\n${region}")
    string(SUBSTRING "${region}" 1 -1 region)
  endif()
  file(READ "${SOURCE_DIR}/${doc}" doctext)
  string(FIND "${doctext}" "${region}\n" found)
  if(found EQUAL -1)
    message(SEND_ERROR "${doc} does not contain the [${marker}] region of ${example} verbatim")
    set(failed TRUE)
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "doc samples out of date")
endif()
message(STATUS "doc samples match their examples")

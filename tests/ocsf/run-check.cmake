# Runs the vendored OCSF checker on one input and judges the outcome; used by CMakeLists.txt.
#
#   cmake -DPYTHON3=... -DCHECKER=.../ocsf-check -DINPUT=file -DMODE=<mode> [-DEXPECTED=file] -P run-check.cmake
#
# The checker reads one JSON record per line (NDJSON), but the upstream examples are
# pretty-printed, so INPUT is first compacted to a single line with python's json module
# (a structural no-op), then piped to the checker on stdin.  MODE:
#   exit     exit with the checker's status (so WILL_FAIL can invert it)
#   compare  pass iff the checker's stdout equals the file EXPECTED byte for byte
#            (INPUT is then already NDJSON and is piped unchanged)
# Trouble before the checker runs (python missing, unreadable input) is reported with the
# word SETUP-ERROR, which the tests list in FAIL_REGULAR_EXPRESSION so that WILL_FAIL
# cannot turn it into a pass.
foreach(v PYTHON3 CHECKER INPUT MODE)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "SETUP-ERROR: -D${v}= is required")
  endif()
endforeach()
if(NOT EXISTS "${INPUT}")
  message(FATAL_ERROR "SETUP-ERROR: no such input: ${INPUT}")
endif()

if(MODE STREQUAL "compare")
  set(feed ${CMAKE_COMMAND} -E cat "${INPUT}")
else()
  # (no ';' in the program: it would split the CMake list)
  set(feed "${PYTHON3}" -c "import json, sys\nprint(json.dumps(json.load(open(sys.argv[1]))))" "${INPUT}")
endif()

execute_process(
  COMMAND ${feed}
  COMMAND "${PYTHON3}" "${CHECKER}" --require-tcp-state
  RESULTS_VARIABLE rcs
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
message("${out}${err}")
list(LENGTH rcs n_rcs)
if(NOT n_rcs EQUAL 2)
  message(FATAL_ERROR "SETUP-ERROR: could not run the pipeline: ${rcs}")
endif()
list(GET rcs 0 feed_rc)
list(GET rcs 1 check_rc)
if(NOT check_rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "SETUP-ERROR: could not run the checker: ${check_rc}")
endif()
if(NOT feed_rc EQUAL 0)
  message(FATAL_ERROR "SETUP-ERROR: could not read/compact ${INPUT} (status ${feed_rc})")
endif()
if(err MATCHES "Traceback")
  message(FATAL_ERROR "SETUP-ERROR: the checker crashed (is python3-jsonschema installed for ${PYTHON3}?)")
endif()

# An empty feed would make the checker fail ("0 passed, 0 failed"), which WILL_FAIL would
# count as the expected failure.
if(NOT out MATCHES "([0-9]+) passed, ([0-9]+) failed\n$")
  message(FATAL_ERROR "SETUP-ERROR: no closing 'N passed, N failed' line from the checker")
endif()
math(EXPR seen "${CMAKE_MATCH_1} + ${CMAKE_MATCH_2}")
if(seen EQUAL 0)
  message(FATAL_ERROR "SETUP-ERROR: no record reached the checker")
endif()

if(MODE STREQUAL "exit")
  if(NOT check_rc EQUAL 0)
    message(FATAL_ERROR "checker exit status ${check_rc}")
  endif()
elseif(MODE STREQUAL "compare")
  file(READ "${EXPECTED}" want)
  if(NOT out STREQUAL want)
    message(FATAL_ERROR "checker output differs from ${EXPECTED}")
  endif()
else()
  message(FATAL_ERROR "SETUP-ERROR: unknown MODE ${MODE}")
endif()

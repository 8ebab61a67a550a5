# The driver's command line: bad usage and bad inputs (exit codes, messages,
# no partial output files).
add_test(NAME cli_errors COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/cli_errors.sh $<TARGET_FILE:morc> ${CMAKE_SOURCE_DIR})
# Every golden bad input of tests/bad through `morc dump`: exit code 1, the
# expected message, no output file.
add_test(NAME cli_bad_inputs COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/bad_inputs.sh $<TARGET_FILE:morc> ${CMAKE_SOURCE_DIR})

# Limits: the memory estimate of `morc run`, --max-memory and the default cap
# (physical memory); the CLI side is in tests/e2e/cli_errors.sh.
add_executable(test_limits ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_limits.c)
target_link_libraries(test_limits PRIVATE morcli morir PkgConfig::CHECK)
add_test(NAME limits_unit COMMAND test_limits)

# Frontend tests: the Check suite (valid models, layer map, defaults,
# diagnostics) and the golden bad-input files of tests/bad/frontend.
add_executable(test_frontend ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_frontend.c)
target_link_libraries(test_frontend PRIVATE morfront PkgConfig::CHECK)
target_compile_definitions(test_frontend PRIVATE MORC_BAD_DIR="${CMAKE_CURRENT_SOURCE_DIR}/bad/frontend")
add_test(NAME frontend_unit COMMAND test_frontend unit)
add_test(NAME frontend_bad COMMAND test_frontend bad)

# Reference interpreter: op-by-op unit tests against independent formulas.
add_executable(test_ref ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ref.c)
target_link_libraries(test_ref PRIVATE morref morfront morir PkgConfig::CHECK m)
add_test(NAME ref_unit COMMAND test_ref)

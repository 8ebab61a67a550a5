# IR core: round trip, builder, parse and verify errors.
add_executable(test_ir ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ir.c)
target_compile_definitions(test_ir PRIVATE BAD_IR_DIR="${CMAKE_CURRENT_SOURCE_DIR}/bad/ir")
target_link_libraries(test_ir PRIVATE morir PkgConfig::CHECK)
add_test(NAME ir_unit COMMAND test_ir)

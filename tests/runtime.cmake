# tests/runtime.cmake: the libmorrt Check suite (tokenizer goldens, JSON, sampler,
# .npy, thread pool). Test data: tests/data/tokenizer (made by make_tokenizer.py).
add_executable(test_runtime ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_runtime.c)
target_link_libraries(test_runtime PRIVATE morrt PkgConfig::CHECK)
target_compile_definitions(test_runtime PRIVATE MORRT_TEST_DATA="${CMAKE_CURRENT_SOURCE_DIR}/data")
add_test(NAME runtime COMMAND test_runtime)
set_tests_properties(runtime PROPERTIES TIMEOUT 600)

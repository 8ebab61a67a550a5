# Untrusted model files: hostile names (a model's folder name, tensor names,
# IR symbol names with quotes, newlines, "*/", backslashes, '%', control and
# non-UTF-8 bytes, a bidi override) through dump, dump --dot, report, opt,
# build --emit=llvm/bundle and error messages (tests/e2e/hostile_names.sh).
find_program(MORC_LLVM_AS llvm-as HINTS ${LLVM_TOOLS_BINARY_DIR} /usr/lib/llvm-19/bin)
add_test(NAME e2e_hostile_names
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/hostile_names.sh $<TARGET_FILE:morc> ${CMAKE_SOURCE_DIR} ${MORC_LLVM_AS})

# LLVM backend, libmorrt and `morc build`: the JIT against the reference
# interpreter (Check suite), every example variant through the JIT and
# through a built executable against the golden logits, and the behaviour of
# built programs (weights, bad inputs, generation, emit kinds, the C API).
add_executable(test_llvm ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_llvm.c)
target_link_libraries(test_llvm PRIVATE morllvm morref morpasses morfront morir morrt PkgConfig::CHECK m)
target_compile_definitions(test_llvm PRIVATE MORC_EXAMPLES_DIR="${CMAKE_SOURCE_DIR}/examples")
add_test(NAME llvm_unit COMMAND test_llvm)
set_tests_properties(llvm_unit PROPERTIES TIMEOUT 1200)

file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/golden/manifest.txt MORC_LLVM_GOLDEN)
foreach(line ${MORC_LLVM_GOLDEN})
  if(NOT line MATCHES "^([A-Za-z0-9_]+) ([01])$")
    message(FATAL_ERROR "tests/golden/manifest.txt: bad line '${line}'")
  endif()
  set(variant ${CMAKE_MATCH_1})
  set(causal ${CMAKE_MATCH_2})
  add_test(NAME e2e_llvm_jit_${variant}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/golden.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
            ${CMAKE_SOURCE_DIR}/examples/${variant} ${CMAKE_CURRENT_SOURCE_DIR}/golden/${variant} ${causal}
            --backend llvm)
  add_test(NAME e2e_llvm_exe_${variant}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/llvm/exe_golden.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
            ${CMAKE_SOURCE_DIR}/examples/${variant} ${CMAKE_CURRENT_SOURCE_DIR}/golden/${variant} ${causal})
endforeach()

# a model with random weights sized to the test tokenizer (for --prompt)
add_executable(mkmodel ${CMAKE_CURRENT_SOURCE_DIR}/llvm/mkmodel.c)
target_link_libraries(mkmodel PRIVATE morrt m)

foreach(case embedded beside mismatch bad_input generate emit capi max_tokens prompt)
  add_test(NAME llvm_exe_${case}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/llvm/exe_cases.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
            ${CMAKE_SOURCE_DIR} ${case})
  if(MORC_SANITIZE)
    # the example links the instrumented libmorrt.a itself
    set_tests_properties(llvm_exe_${case} PROPERTIES ENVIRONMENT "MORC_TEST_LDFLAGS=-fsanitize=address,undefined")
  endif()
endforeach()

# --weights-dtype bf16|f16|q8: exact where the file holds the format, bounded
# error everywhere, executables = JIT
add_test(NAME llvm_weights_dtype
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/llvm/weights_dtype.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp> ${CMAKE_SOURCE_DIR})
set_tests_properties(llvm_weights_dtype PROPERTIES TIMEOUT 900)
# --bf16-dot: vdpbf16ps in the code, usage errors, and (on CPUs with AVX512-BF16) every variant
add_test(NAME llvm_bf16_dot
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/llvm/bf16_dot.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp> ${CMAKE_SOURCE_DIR})
set_tests_properties(llvm_bf16_dot PROPERTIES TIMEOUT 900)

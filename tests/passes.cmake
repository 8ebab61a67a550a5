# Passes and IR inspection (issue 3): pass-by-pass equality on every example
# variant, FileCheck tests (tests/ir/*.mor and tests/passes/*.test, one
# behaviour per file, driven by their `// RUN:` lines), round trips of every
# dumped stage through `morc opt`, and `morc report` totals.
add_executable(pass_equal ${CMAKE_CURRENT_SOURCE_DIR}/passes/pass_equal.c)
target_link_libraries(pass_equal PRIVATE morpasses morref morfront morir m)

file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/golden/manifest.txt MORC_PASS_LINES)
foreach(line ${MORC_PASS_LINES})
  if(line MATCHES "^([A-Za-z0-9_]+) ([01])$")
    set(variant ${CMAKE_MATCH_1})
    set(causal ${CMAKE_MATCH_2})
    set(json ${CMAKE_SOURCE_DIR}/examples/${variant}/model.json)
    if(NOT EXISTS ${json})
      set(json ${CMAKE_SOURCE_DIR}/examples/${variant}/config.json)
    endif()
    add_test(NAME pass_equal_${variant}
      COMMAND pass_equal ${json} ${CMAKE_CURRENT_SOURCE_DIR}/golden/${variant} ${causal})
    add_test(NAME pass_roundtrip_${variant}
      COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/passes/roundtrip.sh $<TARGET_FILE:morc> ${json})
    # `morc run --backend ref -O2` interprets the optimized IR: golden logits,
    # whole and chunked (tests/e2e/golden.sh)
    add_test(NAME pass_golden_O2_${variant}
      COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/golden.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
              ${CMAKE_SOURCE_DIR}/examples/${variant} ${CMAKE_CURRENT_SOURCE_DIR}/golden/${variant} ${causal}
              --backend ref -O2)
    set_tests_properties(pass_equal_${variant} pass_roundtrip_${variant} pass_golden_O2_${variant}
      PROPERTIES ENVIRONMENT MORC_VERIFY_EACH=1)
  endif()
endforeach()

file(GLOB MORC_FILECHECK_TESTS ${CMAKE_CURRENT_SOURCE_DIR}/ir/*.mor ${CMAKE_CURRENT_SOURCE_DIR}/passes/*.test)
foreach(t ${MORC_FILECHECK_TESTS})
  get_filename_component(name ${t} NAME_WE)
  add_test(NAME ir_check_${name}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/passes/run_checks.sh ${t} $<TARGET_FILE:morc> ${FILECHECK}
            ${CMAKE_SOURCE_DIR}/examples)
  set_tests_properties(ir_check_${name} PROPERTIES ENVIRONMENT MORC_VERIFY_EACH=1)
endforeach()

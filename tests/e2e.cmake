# End-to-end: every example variant through `morc run --backend ref`
# against the golden logits of the independent PyTorch reference, whole and
# chunked (tests/e2e/golden.sh), plus invariant 3 across two models.
add_executable(npycmp ${CMAKE_CURRENT_SOURCE_DIR}/e2e/npycmp.c)
target_link_libraries(npycmp PRIVATE morrt m)

file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/golden/manifest.txt MORC_GOLDEN_LINES)
set(MORC_GOLDEN_VARIANTS "")
foreach(line ${MORC_GOLDEN_LINES})
  string(REGEX MATCH "^([A-Za-z0-9_]+) ([01])$" _m "${line}")
  if(NOT _m)
    message(FATAL_ERROR "tests/golden/manifest.txt: bad line '${line}'")
  endif()
  set(variant ${CMAKE_MATCH_1})
  set(causal ${CMAKE_MATCH_2})
  list(APPEND MORC_GOLDEN_VARIANTS "${variant}:${causal}")
  add_test(NAME e2e_ref_${variant}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/golden.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
            ${CMAKE_SOURCE_DIR}/examples/${variant} ${CMAKE_CURRENT_SOURCE_DIR}/golden/${variant} ${causal}
            --backend ref)
endforeach()

add_test(NAME e2e_invariant3_cycle_equals_unrolled_llama
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/same_logits.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
          ${CMAKE_SOURCE_DIR}/examples/none_cycle/model.json
          ${CMAKE_SOURCE_DIR}/examples/llama_unrolled_of_cycle/config.json
          ${CMAKE_CURRENT_SOURCE_DIR}/golden/none_cycle/tokens.txt)

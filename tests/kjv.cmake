# tests/kjv.cmake: the trained KJV model (examples/kjv, made by tools/train/):
# the compiled executable reproduces the logits and depths that the PyTorch
# reference (tests/reference/mor_ref.py, f64 compute on the same BF16 weights)
# gives on a validation snippet, whole, one thread, in chunks and token by token
# (threshold routing is causal); `morc run --backend llvm` the same; and the
# runtime's tokenizer encodes and decodes validation text exactly as the Hugging
# Face `tokenizers` package does. Goldens: tests/kjv/make_golden.py.
if(EXISTS ${CMAKE_SOURCE_DIR}/examples/kjv/model.json)
  add_executable(kjv_tok_golden ${CMAKE_CURRENT_SOURCE_DIR}/kjv/tok_golden.c)
  target_include_directories(kjv_tok_golden PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(kjv_tok_golden PRIVATE morrt m)
  add_test(NAME kjv_tokenizer
    COMMAND kjv_tok_golden ${CMAKE_SOURCE_DIR}/examples/kjv/tokenizer.json
            ${CMAKE_CURRENT_SOURCE_DIR}/kjv/tok val_ruth val_james edge)
  add_test(NAME kjv_exe_logits
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/llvm/exe_golden.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
            ${CMAKE_SOURCE_DIR}/examples/kjv ${CMAKE_CURRENT_SOURCE_DIR}/kjv/golden 1)
  add_test(NAME kjv_llvm_logits
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/golden.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
            ${CMAKE_SOURCE_DIR}/examples/kjv ${CMAKE_CURRENT_SOURCE_DIR}/kjv/golden 1 --backend llvm)
  set_tests_properties(kjv_tokenizer kjv_exe_logits kjv_llvm_logits PROPERTIES TIMEOUT 60)
endif()

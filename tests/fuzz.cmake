# Fuzz corpora replayed without libFuzzer (tests/fuzz/replay.c): every seed
# and every input that once crashed a harness runs again here, so the ASan
# build (scripts/test) checks them all. The fuzzers themselves are built with
# clang by tests/fuzz/run.sh.
set(MORC_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
function(morc_fuzz_replay name)
  add_executable(replay_${name} ${MORC_FUZZ_DIR}/fuzz_${name}.c ${MORC_FUZZ_DIR}/replay.c)
  target_link_libraries(replay_${name} PRIVATE ${ARGN})
  add_test(NAME fuzz_replay_${name} COMMAND replay_${name} ${MORC_FUZZ_DIR}/corpus/${name})
endfunction()
morc_fuzz_replay(config morfront)
morc_fuzz_replay(safetensors morfront)
morc_fuzz_replay(ir morir)
morc_fuzz_replay(cli morcli)
# passes: its seeds are the IR corpus (the -O2 pipeline on the IR that verifies)
add_executable(replay_passes ${MORC_FUZZ_DIR}/fuzz_passes.c ${MORC_FUZZ_DIR}/replay.c)
target_link_libraries(replay_passes PRIVATE morpasses morir)
add_test(NAME fuzz_replay_passes COMMAND replay_passes ${MORC_FUZZ_DIR}/corpus/ir)
if(TARGET morrt AND EXISTS ${CMAKE_SOURCE_DIR}/runtime/tokenizer.c)
  morc_fuzz_replay(tokenizer_load morrt)
  morc_fuzz_replay(tokenizer_encode morrt)
  target_compile_definitions(replay_tokenizer_encode PRIVATE
    MORC_FUZZ_TOKENIZER="${CMAKE_CURRENT_SOURCE_DIR}/data/tokenizer/tokenizer.json")
  morc_fuzz_replay(cuda_plan morrt) # the launch plan a CUDA executable reads from its own file
endif()

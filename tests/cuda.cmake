# tests/cuda.cmake: the CUDA backend without a GPU (skipped when morc is
# built without the CUDA toolkit). Every example variant's kernels compile
# with NVRTC for sm_80 and sm_90 and ptxas accepts the PTX; every variant
# runs through a built CUDA executable on the CPU emulation of the driver
# and GPU (tests/cuda/emu.h, emu_driver.c) and matches the golden logits;
# the executable says "no CUDA driver or GPU found" (exit 1) here; names
# from model files are escaped. The GPU itself is checked by tests/gpu/run.sh.
# All carry the label "cuda" (ctest -L cuda runs them alone, -LE cuda skips them).
if(MORC_HAVE_CUDA)
  set(MORC_PTXAS ${MORC_CUDA_ROOT}/bin/ptxas)
  add_executable(test_cuda ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cuda.c ${CMAKE_CURRENT_SOURCE_DIR}/unit/cuda_layout.c)
  target_link_libraries(test_cuda PRIVATE morcuda morfront morrt PkgConfig::CHECK)
  target_compile_definitions(test_cuda PRIVATE MORC_EXAMPLES="${CMAKE_SOURCE_DIR}/examples"
                                               MORC_CUDA_STUB="${MORC_CUDA_ROOT}/lib64/stubs/libcuda.so")
  add_test(NAME cuda_unit COMMAND test_cuda)
  set_tests_properties(cuda_unit PROPERTIES LABELS cuda)

  add_library(morcuda_emu SHARED ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu_driver.c)
  target_link_libraries(morcuda_emu PRIVATE ${CMAKE_DL_LIBS})
  add_dependencies(morcuda_emu morc)

  add_test(NAME cuda_no_gpu COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/nogpu.sh $<TARGET_FILE:morc>
           ${CMAKE_SOURCE_DIR}/examples/ec_defaults/model.json)
  add_test(NAME cuda_hostile_names COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/hostile.sh $<TARGET_FILE:morc> ${MORC_PTXAS}
           ${CMAKE_SOURCE_DIR}/examples/ec_defaults/model.json)
  set_tests_properties(cuda_no_gpu cuda_hostile_names PROPERTIES LABELS cuda)

  file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/golden/manifest.txt cuda_golden_lines)
  foreach(line ${cuda_golden_lines})
    string(REGEX MATCH "^([A-Za-z0-9_]+) ([01])$" _m "${line}")
    set(variant ${CMAKE_MATCH_1})
    set(causal ${CMAKE_MATCH_2})
    set(model ${CMAKE_SOURCE_DIR}/examples/${variant}/model.json)
    if(NOT EXISTS ${model})
      set(model ${CMAKE_SOURCE_DIR}/examples/${variant}/config.json)
    endif()
    add_test(NAME cuda_nvrtc_${variant}
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/nvrtc.sh $<TARGET_FILE:morc> ${MORC_PTXAS} ${model})
    set_tests_properties(cuda_nvrtc_${variant} PROPERTIES TIMEOUT 900 LABELS cuda)
    # f32 math everywhere: the reference's tolerance
    add_test(NAME cuda_emu_f32_${variant}
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu_e2e.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
                     ${CMAKE_CXX_COMPILER} ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu.h $<TARGET_FILE:morcuda_emu>
                     ${CMAKE_SOURCE_DIR}/examples/${variant} ${CMAKE_CURRENT_SOURCE_DIR}/golden/${variant} ${causal}
                     1e-4 --no-mma)
    set_tests_properties(cuda_emu_f32_${variant} PROPERTIES TIMEOUT 900 LABELS cuda)
  endforeach()
  # the high-level IR (-O0): the unfused kernels (rmsnorm, rope, kv_append, silu_mul, add, gate_add, scatter, ...)
  foreach(spec ec_recursive_sharing:1 tc_mlp:1 none_sequence_recursive_sharing:1 ec_mlp_sigmoid_topk:0)
    string(REPLACE ":" ";" parts ${spec})
    list(GET parts 0 variant)
    list(GET parts 1 causal)
    add_test(NAME cuda_emu_O0_${variant}
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu_e2e.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
                     ${CMAKE_CXX_COMPILER} ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu.h $<TARGET_FILE:morcuda_emu>
                     ${CMAKE_SOURCE_DIR}/examples/${variant} ${CMAKE_CURRENT_SOURCE_DIR}/golden/${variant} ${causal}
                     1e-4 --no-mma -O0)
    set_tests_properties(cuda_emu_O0_${variant} PROPERTIES TIMEOUT 900 LABELS cuda)
  endforeach()
  # realistic proportions (head_dim 64), 300 tokens a call: the large GEMM tiles and tensor-core attention
  add_test(NAME cuda_emu_medium
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu_medium.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
                   ${CMAKE_C_COMPILER} ${CMAKE_CXX_COMPILER} ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu.h
                   $<TARGET_FILE:morcuda_emu> ${CMAKE_SOURCE_DIR}/bench/mkweights.c)
  set_tests_properties(cuda_emu_medium PROPERTIES TIMEOUT 900 LABELS cuda)
  # a kernel that faults: the error, the hint, and --sync-steps naming the step
  add_test(NAME cuda_emu_faults
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu_faults.sh $<TARGET_FILE:morc> ${CMAKE_CXX_COMPILER}
                   ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu.h $<TARGET_FILE:morcuda_emu>
                   ${CMAKE_SOURCE_DIR}/examples/ec_defaults/model.json)
  set_tests_properties(cuda_emu_faults PROPERTIES TIMEOUT 300 LABELS cuda)
  # step dumps (--dump-steps) and stepcmp, which names the first kernel whose results differ
  # the decode GEMV's weight prefetch asks for exactly the lines of the weights
  add_executable(test_cuda_prefetch ${CMAKE_CURRENT_SOURCE_DIR}/cuda/prefetch_test.cc)
  target_include_directories(test_cuda_prefetch PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_features(test_cuda_prefetch PRIVATE cxx_std_17)
  target_compile_options(test_cuda_prefetch PRIVATE -w)
  add_test(NAME cuda_gemv_prefetch COMMAND test_cuda_prefetch)
  set_tests_properties(cuda_gemv_prefetch PROPERTIES LABELS cuda)
  add_executable(stepcmp ${CMAKE_CURRENT_SOURCE_DIR}/cuda/stepcmp.c)
  target_link_libraries(stepcmp PRIVATE m)
  add_test(NAME cuda_emu_stepdump
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu_stepdump.sh $<TARGET_FILE:morc> ${CMAKE_CXX_COMPILER}
                   ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu.h $<TARGET_FILE:morcuda_emu> $<TARGET_FILE:stepcmp>
                   ${CMAKE_SOURCE_DIR}/examples/ec_defaults/model.json)
  set_tests_properties(cuda_emu_stepdump PROPERTIES TIMEOUT 300 LABELS cuda)
  # tests/gpu/run.sh itself, dry-run on the emulation (prepare for two variants, run, a broken reference)
  add_test(NAME cuda_gpu_script COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/gpu_script.sh ${CMAKE_BINARY_DIR}
                                        $<TARGET_FILE:morcuda_emu>)
  set_tests_properties(cuda_gpu_script PROPERTIES TIMEOUT 600 LABELS "cuda;no_asan")
  # races: every kernel computes the same bits whatever order the emulation runs blocks and threads in
  add_test(NAME cuda_emu_schedules
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu_schedules.sh $<TARGET_FILE:morc> ${CMAKE_C_COMPILER}
                   ${CMAKE_CXX_COMPILER} ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu.h $<TARGET_FILE:morcuda_emu>
                   ${CMAKE_SOURCE_DIR}/bench/mkweights.c ${CMAKE_SOURCE_DIR}/examples ${CMAKE_CURRENT_SOURCE_DIR}/golden)
  set_tests_properties(cuda_emu_schedules PROPERTIES TIMEOUT 900 LABELS cuda)
  # blocks of one launch on several threads at once: same bits, and no data race under ThreadSanitizer
  add_test(NAME cuda_emu_parallel
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu_parallel.sh $<TARGET_FILE:morc> ${CMAKE_C_COMPILER}
                   ${CMAKE_CXX_COMPILER} ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu.h $<TARGET_FILE:morcuda_emu>
                   ${CMAKE_SOURCE_DIR}/bench/mkweights.c ${CMAKE_SOURCE_DIR}/examples ${CMAKE_CURRENT_SOURCE_DIR}/golden)
  set_tests_properties(cuda_emu_parallel PROPERTIES TIMEOUT 900 LABELS "cuda;no_asan")
  # BF16 tensor-core GEMMs (activations rounded to bf16): the bf16-stored variants
  foreach(variant ec_cycle tc_mlp llama_plain)
    add_test(NAME cuda_emu_mma_${variant}
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu_e2e.sh $<TARGET_FILE:morc> $<TARGET_FILE:npycmp>
                     ${CMAKE_CXX_COMPILER} ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emu.h $<TARGET_FILE:morcuda_emu>
                     ${CMAKE_SOURCE_DIR}/examples/${variant} ${CMAKE_CURRENT_SOURCE_DIR}/golden/${variant} 1 2e-2)
    set_tests_properties(cuda_emu_mma_${variant} PROPERTIES TIMEOUT 900 LABELS cuda)
  endforeach()
endif()

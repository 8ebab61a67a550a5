# perf_kernels.cmake: tests of the fast kernels (issue 5) against the
# reference numerics: the matmul kernels on awkward shapes, natively, and
# awkward-sized models through the LLVM JIT against the reference interpreter.
add_executable(test_gemm ${CMAKE_CURRENT_SOURCE_DIR}/perf/test_gemm.c
  ${CMAKE_SOURCE_DIR}/backend/llvm/kernels/matmul.c ${CMAKE_SOURCE_DIR}/backend/llvm/kernels/gemm.c
  ${CMAKE_SOURCE_DIR}/backend/llvm/kernels/gemv.c)
target_include_directories(test_gemm PRIVATE ${CMAKE_SOURCE_DIR}/backend/llvm ${CMAKE_SOURCE_DIR})
target_compile_options(test_gemm PRIVATE -Wno-psabi -Wno-unknown-pragmas)
target_link_libraries(test_gemm PRIVATE m)
add_test(NAME perf_gemm_awkward_shapes COMMAND test_gemm)

add_executable(perf_mkweights ${CMAKE_SOURCE_DIR}/bench/mkweights.c)
add_test(NAME perf_awkward_models_llvm_vs_ref
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/perf/awkward.sh $<TARGET_FILE:morc> $<TARGET_FILE:perf_mkweights>
          $<TARGET_FILE:npycmp>)

/* cuda_layout.c: the constants and struct layouts runtime/cuda_shim.h
 * copies from cuda.h (the shim is built without the toolkit), checked
 * against the installed toolkit's cuda.h at compile time: if one differs,
 * the test program does not build. Linked into test_cuda; the function
 * below only reports that the checks were compiled. */
#include <stddef.h>
#define CUresult morrt_shim_CUresult /* the shim's int; cuda.h's is an enum */
#include "runtime/cuda_shim.h"
#undef CUresult
#include <cuda.h>

_Static_assert(MORRT_CU_SUCCESS == CUDA_SUCCESS, "CUDA_SUCCESS");
_Static_assert(MORRT_CU_ERROR_NO_DEVICE == CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE");
_Static_assert(MORRT_CU_ERROR_INVALID_VALUE == CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE");
_Static_assert(MORRT_CU_ERROR_NOT_SUPPORTED == CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED");
_Static_assert(MORRT_CU_ATTR_SM_COUNT == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "SM count");
_Static_assert(MORRT_CU_ATTR_MEM_CLOCK_KHZ == CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, "memory clock");
_Static_assert(MORRT_CU_ATTR_BUS_WIDTH == CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, "bus width");
_Static_assert(MORRT_CU_ATTR_CC_MAJOR == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "cc major");
_Static_assert(MORRT_CU_ATTR_CC_MINOR == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "cc minor");
_Static_assert(MORRT_CU_STREAM_NON_BLOCKING == CU_STREAM_NON_BLOCKING, "CU_STREAM_NON_BLOCKING");
_Static_assert(MORRT_CU_CAPTURE_MODE_THREAD_LOCAL == CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, "capture mode");
_Static_assert(MORRT_CU_LAUNCH_ATTR_PDL == CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, "PDL attribute");
_Static_assert(sizeof(morrt_cu_launch_attr) == sizeof(CUlaunchAttribute), "CUlaunchAttribute size");
_Static_assert(offsetof(morrt_cu_launch_attr, v) == offsetof(CUlaunchAttribute, value), "CUlaunchAttribute value");
_Static_assert(sizeof(morrt_cu_launch_config) == sizeof(CUlaunchConfig), "CUlaunchConfig size");
_Static_assert(offsetof(morrt_cu_launch_config, gx) == offsetof(CUlaunchConfig, gridDimX), "gridDimX");
_Static_assert(offsetof(morrt_cu_launch_config, bx) == offsetof(CUlaunchConfig, blockDimX), "blockDimX");
_Static_assert(offsetof(morrt_cu_launch_config, smem) == offsetof(CUlaunchConfig, sharedMemBytes), "smem");
_Static_assert(offsetof(morrt_cu_launch_config, stream) == offsetof(CUlaunchConfig, hStream), "hStream");
_Static_assert(offsetof(morrt_cu_launch_config, attrs) == offsetof(CUlaunchConfig, attrs), "attrs");
_Static_assert(offsetof(morrt_cu_launch_config, n_attrs) == offsetof(CUlaunchConfig, numAttrs), "numAttrs");

int morrt_test_cuda_layout_checked(void) { return CUDA_VERSION; }

/* cuda_shim.c: dlopen the CUDA driver (libcuda.so.1, or $MORRT_CUDA_DRIVER)
 * and resolve the entry points of morrt_cu. Nothing here needs the CUDA
 * toolkit at build time. */
#include "runtime/cuda_shim.h"
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the layouts cuda.h gives these structs on 64-bit machines (tests/unit/test_cuda.c compares them with cuda.h) */
_Static_assert(sizeof(morrt_cu_launch_attr) == 72 && offsetof(morrt_cu_launch_attr, v) == 8, "CUlaunchAttribute");
_Static_assert(sizeof(morrt_cu_launch_config) == 56 && offsetof(morrt_cu_launch_config, stream) == 32 &&
                   offsetof(morrt_cu_launch_config, attrs) == 40 && offsetof(morrt_cu_launch_config, n_attrs) == 48,
               "CUlaunchConfig");

morrt_cu *morrt_cu_load(char *err, size_t errlen) {
  const char *path = getenv("MORRT_CUDA_DRIVER");
  if (!path || !*path) path = "libcuda.so.1";
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    snprintf(err, errlen, "no CUDA driver or GPU found: cannot load %s (%s)", path, why ? why : "not found");
    return NULL;
  }
  morrt_cu *cu = calloc(1, sizeof *cu);
  if (!cu) {
    dlclose(lib);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  cu->lib = lib;
  const char *missing = NULL;
#define SYM(field, name)                                                                                       \
  do {                                                                                                         \
    *(void **)&cu->field = dlsym(lib, name);                                                                   \
    if (!cu->field && !missing) missing = name;                                                                \
  } while (0)
  SYM(Init, "cuInit");
  SYM(DriverGetVersion, "cuDriverGetVersion");
  SYM(DeviceGetCount, "cuDeviceGetCount");
  SYM(DeviceGet, "cuDeviceGet");
  SYM(DeviceGetName, "cuDeviceGetName");
  SYM(DeviceGetAttribute, "cuDeviceGetAttribute");
  SYM(DeviceTotalMem, "cuDeviceTotalMem_v2");
  SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  SYM(CtxSetCurrent, "cuCtxSetCurrent");
  SYM(MemAlloc, "cuMemAlloc_v2");
  SYM(MemFree, "cuMemFree_v2");
  SYM(MemAllocHost, "cuMemAllocHost_v2");
  SYM(MemFreeHost, "cuMemFreeHost");
  SYM(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  SYM(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  SYM(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
  SYM(MemsetD8Async, "cuMemsetD8Async");
  SYM(ModuleLoadData, "cuModuleLoadData");
  SYM(ModuleUnload, "cuModuleUnload");
  SYM(ModuleGetFunction, "cuModuleGetFunction");
  SYM(LaunchKernel, "cuLaunchKernel");
  SYM(StreamCreate, "cuStreamCreate");
  SYM(StreamDestroy, "cuStreamDestroy_v2");
  SYM(StreamSynchronize, "cuStreamSynchronize");
  SYM(StreamBeginCapture, "cuStreamBeginCapture_v2");
  SYM(StreamEndCapture, "cuStreamEndCapture");
  SYM(GraphInstantiate, "cuGraphInstantiateWithFlags");
  SYM(GraphLaunch, "cuGraphLaunch");
  SYM(GraphExecDestroy, "cuGraphExecDestroy");
  SYM(GraphDestroy, "cuGraphDestroy");
  SYM(GetErrorString, "cuGetErrorString");
  SYM(GetErrorName, "cuGetErrorName");
#undef SYM
  *(void **)&cu->LaunchKernelEx = dlsym(lib, "cuLaunchKernelEx"); /* optional */
  if (missing) {
    snprintf(err, errlen, "the CUDA driver %s is too old: it has no %s", path, missing);
    dlclose(lib);
    free(cu);
    return NULL;
  }
  return cu;
}

void morrt_cu_unload(morrt_cu *cu) {
  if (!cu) return;
  /* the driver is left loaded: unloading it while its threads run is unsafe */
  free(cu);
}

/* Names for the codes a run is most likely to meet, for when the driver
 * cannot name them itself (the toolkit's stub libcuda.so, a broken
 * install): the values are cuda.h's CUresult. */
static const struct {
  int code;
  const char *name, *what;
} cu_known[] = {
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {34, "CUDA_ERROR_STUB_LIBRARY", "the CUDA toolkit's stub libcuda.so was loaded instead of a real driver"},
    {35, "CUDA_ERROR_INSUFFICIENT_DRIVER", "the driver is older than this program needs"},
    {46, "CUDA_ERROR_DEVICE_UNAVAILABLE", "the GPU is busy or unavailable"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for this GPU"},
    {218, "CUDA_ERROR_INVALID_PTX", "the PTX JIT compilation failed"},
    {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the PTX was made by a newer toolkit than the driver supports"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS", "a kernel accessed an illegal address"},
    {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {719, "CUDA_ERROR_LAUNCH_FAILED", "a kernel failed"},
    {803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", "the driver library and the kernel module differ in version"},
    {999, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

const char *morrt_cu_errstr(const morrt_cu *cu, CUresult r, char *buf, size_t n) {
  const char *name = NULL, *str = NULL;
  if (cu && cu->GetErrorName && cu->GetErrorName(r, &name) != MORRT_CU_SUCCESS) name = NULL;
  if (cu && cu->GetErrorString && cu->GetErrorString(r, &str) != MORRT_CU_SUCCESS) str = NULL;
  for (size_t i = 0; i < sizeof cu_known / sizeof cu_known[0] && (!name || !str); i++)
    if (cu_known[i].code == r) {
      if (!name) name = cu_known[i].name;
      if (!str) str = cu_known[i].what;
    }
  if (name)
    snprintf(buf, n, "%s (%s)", name, str ? str : "no description");
  else
    snprintf(buf, n, "CUDA error %d (%s)", (int)r, str ? str : "no description");
  return buf;
}

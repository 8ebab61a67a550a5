/* cuda_shim.c: dlopen the CUDA driver (libcuda.so.1, or $MORRT_CUDA_DRIVER)
 * and resolve the entry points of morrt_cu. Nothing here needs the CUDA
 * toolkit at build time. */
#include "runtime/cuda_shim.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

const char *morrt_cu_errstr(const morrt_cu *cu, CUresult r, char *buf, size_t n) {
  const char *name = NULL, *str = NULL;
  if (cu && cu->GetErrorName) cu->GetErrorName(r, &name);
  if (cu && cu->GetErrorString) cu->GetErrorString(r, &str);
  snprintf(buf, n, "%s (%s)", name ? name : "CUDA error", str ? str : "unknown");
  return buf;
}

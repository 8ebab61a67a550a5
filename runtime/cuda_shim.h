/* cuda_shim.h: the part of the CUDA driver API the CUDA runtime uses,
 * loaded at run time with dlopen("libcuda.so.1"), so a CUDA executable links
 * against nothing of CUDA and starts (and says so clearly) on machines
 * without a driver or a GPU. The types mirror cuda.h; the symbol names are
 * the versioned ones cuda.h maps its API names to (cuMemAlloc_v2, ...).
 *
 * MORRT_CUDA_DRIVER=path loads another library with the same symbols
 * instead (the tests use a CPU emulation of the driver). */
#ifndef MORRT_CUDA_SHIM_H
#define MORRT_CUDA_SHIM_H
#include <stddef.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;

#define MORRT_CU_SUCCESS 0
#define MORRT_CU_ERROR_INVALID_VALUE 1
#define MORRT_CU_ERROR_NO_DEVICE 100
#define MORRT_CU_ERROR_NOT_SUPPORTED 801
#define MORRT_CU_ATTR_SM_COUNT 16
#define MORRT_CU_ATTR_MEM_CLOCK_KHZ 36
#define MORRT_CU_ATTR_BUS_WIDTH 37
#define MORRT_CU_ATTR_CC_MAJOR 75
#define MORRT_CU_ATTR_CC_MINOR 76
#define MORRT_CU_STREAM_NON_BLOCKING 1
#define MORRT_CU_CAPTURE_MODE_THREAD_LOCAL 1

/* cuLaunchKernelEx's configuration (CUlaunchConfig, CUlaunchAttribute of cuda.h) */
#define MORRT_CU_LAUNCH_ATTR_PDL 6 /* CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION */
typedef struct morrt_cu_launch_attr {
  int id;
  char pad[4];
  union {
    char bytes[64];
    int value;
    void *align;
  } v;
} morrt_cu_launch_attr;
typedef struct morrt_cu_launch_config {
  unsigned gx, gy, gz, bx, by, bz, smem;
  CUstream stream;
  morrt_cu_launch_attr *attrs;
  unsigned n_attrs;
} morrt_cu_launch_config;

typedef struct morrt_cu {
  void *lib;
  CUresult (*Init)(unsigned flags);
  CUresult (*DriverGetVersion)(int *v);
  CUresult (*DeviceGetCount)(int *n);
  CUresult (*DeviceGet)(CUdevice *d, int ordinal);
  CUresult (*DeviceGetName)(char *name, int len, CUdevice d);
  CUresult (*DeviceGetAttribute)(int *v, int attr, CUdevice d);
  CUresult (*DeviceTotalMem)(size_t *bytes, CUdevice d);
  CUresult (*DevicePrimaryCtxRetain)(CUcontext *c, CUdevice d);
  CUresult (*DevicePrimaryCtxRelease)(CUdevice d);
  CUresult (*CtxSetCurrent)(CUcontext c);
  CUresult (*MemAlloc)(CUdeviceptr *p, size_t n);
  CUresult (*MemFree)(CUdeviceptr p);
  CUresult (*MemAllocHost)(void **p, size_t n); /* page-locked host memory */
  CUresult (*MemFreeHost)(void *p);
  CUresult (*MemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t n, CUstream s);
  CUresult (*MemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t n, CUstream s);
  CUresult (*MemcpyDtoDAsync)(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s);
  CUresult (*MemsetD8Async)(CUdeviceptr dst, unsigned char v, size_t n, CUstream s);
  CUresult (*ModuleLoadData)(CUmodule *m, const void *image);
  CUresult (*ModuleUnload)(CUmodule m);
  CUresult (*ModuleGetFunction)(CUfunction *f, CUmodule m, const char *name);
  CUresult (*LaunchKernel)(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                           unsigned bz, unsigned smem, CUstream s, void **params, void **extra);
  /* optional (NULL when the driver lacks it): launches with attributes */
  CUresult (*LaunchKernelEx)(const morrt_cu_launch_config *cfg, CUfunction f, void **params, void **extra);
  CUresult (*StreamCreate)(CUstream *s, unsigned flags);
  CUresult (*StreamDestroy)(CUstream s);
  CUresult (*StreamSynchronize)(CUstream s);
  CUresult (*StreamBeginCapture)(CUstream s, int mode);
  CUresult (*StreamEndCapture)(CUstream s, CUgraph *g);
  CUresult (*GraphInstantiate)(CUgraphExec *e, CUgraph g, unsigned long long flags);
  CUresult (*GraphLaunch)(CUgraphExec e, CUstream s);
  CUresult (*GraphExecDestroy)(CUgraphExec e);
  CUresult (*GraphDestroy)(CUgraph g);
  CUresult (*GetErrorString)(CUresult r, const char **s);
  CUresult (*GetErrorName)(CUresult r, const char **s);
} morrt_cu;

/* Load the driver library and resolve every entry point. NULL with a
 * message in err ("no CUDA driver or GPU found: ...") when it is missing. */
morrt_cu *morrt_cu_load(char *err, size_t errlen);
void morrt_cu_unload(morrt_cu *cu);
/* "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" for a result code */
const char *morrt_cu_errstr(const morrt_cu *cu, CUresult r, char *buf, size_t n);

#endif

/* emu_driver.c: a CPU stand-in for libcuda.so.1 with the entry points the
 * CUDA runtime resolves (runtime/cuda_shim.c), for tests on machines
 * without a GPU: MORRT_CUDA_DRIVER=libmorcuda_emu.so. Device memory is host
 * memory; "loading a module" dlopens $MORC_EMU_KERNELS (default: the
 * executable's path + ".so"), the generated .cu compiled for the host with
 * tests/cuda/emu.h, whatever image is passed
 * (the PTX and cubin cannot run here); a launch runs the kernel's
 * trampoline under the emulator; streams are synchronous; graph capture
 * records launches and a graph launch replays them.
 * MORC_EMU_LOG=1 prints every launch. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cuda_shim.h" /* CUresult, CUdeviceptr, the launch-config structs */

#define OK 0
#define ERR_INVALID_VALUE 1
#define ERR_OUT_OF_MEMORY 2
#define ERR_NOT_FOUND 500
#define ERR_INVALID_IMAGE 200
#define ERR_LAUNCH_FAILED 719
#define ERR_ILLEGAL_ADDRESS 700

/* MORC_EMU_FAULT=N: the N-th kernel run of the process (from 1) does not
 * run and poisons the context, as a kernel that faults on a GPU does: the
 * launch returns success, the next synchronization and every call after
 * it return CUDA_ERROR_ILLEGAL_ADDRESS. */
static long emu_runs;
static CUresult emu_sticky;

typedef void (*tramp_fn)(void **);
typedef int (*run_fn)(tramp_fn, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void **);

struct CUmod_st {
  void *so;
  run_fn run;
  struct CUfunc_st *funcs; /* handed out by cuModuleGetFunction, freed with the module */
};
struct CUfunc_st {
  struct CUmod_st *m;
  tramp_fn tramp;
  char name[128];
  struct CUfunc_st *next;
};
typedef struct launch_rec {
  struct CUfunc_st *f;
  unsigned g[3], b[3];
  int np;
  uint64_t vals[64];
} launch_rec;
struct CUgraph_st {
  int n, cap;
  launch_rec *l;
};
struct CUgraphExec_st {
  struct CUgraph_st g;
};
struct CUstream_st {
  int capturing;
  struct CUgraph_st *cap;
};

static int param_count(const char *name);

CUresult cuInit(unsigned flags) {
  (void)flags;
  return OK;
}
CUresult cuDriverGetVersion(int *v) {
  *v = 13000;
  return OK;
}
CUresult cuDeviceGetCount(int *n) {
  *n = 1;
  return OK;
}
CUresult cuDeviceGet(int *d, int i) {
  if (i != 0) return ERR_INVALID_VALUE;
  *d = 0;
  return OK;
}
CUresult cuDeviceGetName(char *name, int len, int d) {
  (void)d;
  snprintf(name, (size_t)len, "morc CPU emulation");
  return OK;
}
CUresult cuDeviceGetAttribute(int *v, int attr, int d) {
  (void)d;
  const char *cc = getenv("MORC_EMU_CC"); /* e.g. "90" */
  int ccv = cc ? atoi(cc) : 90;
  switch (attr) {
  case 75: *v = ccv / 10; break;
  case 76: *v = ccv % 10; break;
  case 16: *v = 1; break;
  case 36: *v = 1000; break;
  case 37: *v = 64; break;
  default: *v = 0; break;
  }
  return OK;
}
CUresult cuDeviceTotalMem_v2(size_t *b, int d) {
  (void)d;
  *b = (size_t)1 << 34;
  return OK;
}
CUresult cuDevicePrimaryCtxRetain(void **c, int d) {
  (void)d;
  static int ctx;
  *c = &ctx;
  return OK;
}
CUresult cuDevicePrimaryCtxRelease_v2(int d) {
  (void)d;
  return OK;
}
CUresult cuCtxSetCurrent(void *c) {
  (void)c;
  return OK;
}
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
  void *q = NULL;
  if (posix_memalign(&q, 256, n ? n : 1)) return ERR_OUT_OF_MEMORY;
  memset(q, 0xcd, n); /* device memory is not zeroed: make reads of unset memory visible */
  *p = (CUdeviceptr)(uintptr_t)q;
  return OK;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
  free((void *)(uintptr_t)p);
  return OK;
}
CUresult cuMemAllocHost_v2(void **p, size_t n) {
  *p = malloc(n ? n : 1);
  return *p ? OK : ERR_OUT_OF_MEMORY;
}
CUresult cuMemFreeHost(void *p) {
  free(p);
  return OK;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *s, size_t n, struct CUstream_st *st) {
  if (st && st->capturing) return ERR_INVALID_VALUE;
  memcpy((void *)(uintptr_t)d, s, n);
  return OK;
}
CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr s, size_t n, struct CUstream_st *st) {
  if (st && st->capturing) return ERR_INVALID_VALUE;
  memcpy(d, (const void *)(uintptr_t)s, n);
  return OK;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, struct CUstream_st *st) {
  if (st && st->capturing) return ERR_INVALID_VALUE;
  memmove((void *)(uintptr_t)d, (const void *)(uintptr_t)s, n);
  return OK;
}
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, struct CUstream_st *st) {
  if (st && st->capturing) return ERR_INVALID_VALUE;
  memset((void *)(uintptr_t)d, v, n);
  return OK;
}
CUresult cuModuleLoadData(struct CUmod_st **m, const void *image) {
  (void)image;
  const char *path = getenv("MORC_EMU_KERNELS");
  char self[4096];
  if (!path) { /* else the executable's own path + ".so" (tests/gpu/run.sh's bundles) */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 4);
    if (n > 0) {
      memcpy(self + n, ".so", 4);
      if (access(self, R_OK) == 0) path = self;
    }
  }
  if (!path) {
    fprintf(stderr, "CUDA emulation: set MORC_EMU_KERNELS to the generated kernels compiled with emu.h "
                    "(or put them beside the executable as EXE.so)\n");
    return ERR_INVALID_IMAGE;
  }
  void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    fprintf(stderr, "CUDA emulation: %s\n", dlerror());
    return ERR_INVALID_IMAGE;
  }
  struct CUmod_st *mod = calloc(1, sizeof *mod);
  mod->so = so;
  *(void **)&mod->run = dlsym(so, "mor_emu_run");
  if (!mod->run) return ERR_INVALID_IMAGE;
  *m = mod;
  return OK;
}
CUresult cuModuleUnload(struct CUmod_st *m) {
  for (struct CUfunc_st *f = m->funcs, *next; f; f = next) {
    next = f->next;
    free(f);
  }
  free(m);
  return OK;
}
CUresult cuModuleGetFunction(struct CUfunc_st **f, struct CUmod_st *m, const char *name) {
  char sym[160];
  snprintf(sym, sizeof sym, "mor_emu_%s", name);
  tramp_fn t;
  *(void **)&t = dlsym(m->so, sym);
  if (!t) return ERR_NOT_FOUND;
  struct CUfunc_st *fn = calloc(1, sizeof *fn);
  fn->m = m;
  fn->tramp = t;
  snprintf(fn->name, sizeof fn->name, "%s", name);
  fn->next = m->funcs;
  m->funcs = fn;
  *f = fn;
  return OK;
}

static CUresult run(const launch_rec *r) {
  if (emu_sticky) return emu_sticky;
  const char *fault = getenv("MORC_EMU_FAULT");
  if (fault && ++emu_runs == atol(fault)) {
    emu_sticky = ERR_ILLEGAL_ADDRESS;
    return OK;
  }
  void *args[64];
  uint64_t vals[64];
  memcpy(vals, r->vals, sizeof vals);
  for (int i = 0; i < 64; i++) args[i] = &vals[i];
  if (getenv("MORC_EMU_LOG"))
    fprintf(stderr, "emu: %s grid %u,%u,%u block %u\n", r->f->name, r->g[0], r->g[1], r->g[2], r->b[0]);
  if (r->f->m->run(r->f->tramp, r->g[0], r->g[1], r->g[2], r->b[0], r->b[1], r->b[2], args)) return ERR_LAUNCH_FAILED;
  return OK;
}

CUresult cuLaunchKernel(struct CUfunc_st *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz, unsigned smem, struct CUstream_st *st, void **params, void **extra) {
  (void)smem;
  (void)extra;
  if (!gx || !gy || !gz || bx * by * bz > 1024 || gy > 65535 || gz > 65535) return ERR_INVALID_VALUE;
  launch_rec r = {f, {gx, gy, gz}, {bx, by, bz}, 0, {0}};
  /* every parameter of morc's kernels is 8 bytes; the count is in the name's family */
  r.np = param_count(f->name);
  if (r.np < 0) return ERR_INVALID_VALUE;
  for (int i = 0; i < r.np; i++) memcpy(&r.vals[i], params[i], 8);
  if (st && st->capturing) {
    struct CUgraph_st *g = st->cap;
    if (g->n == g->cap) g->l = realloc(g->l, sizeof *g->l * (size_t)(g->cap = g->cap ? 2 * g->cap : 64));
    g->l[g->n++] = r;
    return OK;
  }
  return run(&r);
}
/* cuLaunchKernelEx, with runtime/cuda_shim.h's copies of cuda.h's
 * CUlaunchConfig and CUlaunchAttribute (tests/unit/cuda_layout.c checks
 * them against cuda.h). Programmatic dependent launch needs nothing here: launches
 * run one after another. MORC_EMU_NO_LAUNCH_EX=1 refuses it, as a driver
 * without the feature would (CUDA_ERROR_NOT_SUPPORTED). */
static long emu_pdl_launches;
CUresult cuLaunchKernelEx(const morrt_cu_launch_config *c, struct CUfunc_st *f, void **params, void **extra) {
  if (getenv("MORC_EMU_NO_LAUNCH_EX")) return 801;
  if (!c || (c->n_attrs && !c->attrs) || c->n_attrs > 8) return ERR_INVALID_VALUE;
  for (unsigned i = 0; i < c->n_attrs; i++) {
    if (c->attrs[i].id != 6 || (c->attrs[i].v.value != 0 && c->attrs[i].v.value != 1)) return ERR_INVALID_VALUE;
    emu_pdl_launches += c->attrs[i].v.value;
  }
  if (getenv("MORC_EMU_LOG")) fprintf(stderr, "emu: launch with attributes (%ld with PDL so far)\n", emu_pdl_launches);
  return cuLaunchKernel(f, c->gx, c->gy, c->gz, c->bx, c->by, c->bz, c->smem, c->stream, params, extra);
}

CUresult cuStreamCreate(struct CUstream_st **s, unsigned flags) {
  (void)flags;
  *s = calloc(1, sizeof **s);
  return OK;
}
CUresult cuStreamDestroy_v2(struct CUstream_st *s) {
  free(s);
  return OK;
}
CUresult cuStreamSynchronize(struct CUstream_st *s) {
  if (emu_sticky) return emu_sticky;
  return s && s->capturing ? ERR_INVALID_VALUE : OK;
}
CUresult cuStreamBeginCapture_v2(struct CUstream_st *s, int mode) {
  (void)mode;
  if (getenv("MORC_EMU_NO_GRAPHS")) return ERR_INVALID_VALUE;
  s->capturing = 1;
  s->cap = calloc(1, sizeof *s->cap);
  return OK;
}
CUresult cuStreamEndCapture(struct CUstream_st *s, struct CUgraph_st **g) {
  if (!s->capturing) return ERR_INVALID_VALUE;
  s->capturing = 0;
  *g = s->cap;
  s->cap = NULL;
  return OK;
}
CUresult cuGraphInstantiateWithFlags(struct CUgraphExec_st **e, struct CUgraph_st *g, unsigned long long flags) {
  (void)flags;
  struct CUgraphExec_st *x = calloc(1, sizeof *x);
  x->g.n = g->n;
  x->g.l = malloc(sizeof *g->l * (size_t)(g->n + 1));
  memcpy(x->g.l, g->l, sizeof *g->l * (size_t)g->n);
  *e = x;
  return OK;
}
CUresult cuGraphLaunch(struct CUgraphExec_st *e, struct CUstream_st *s) {
  (void)s;
  for (int i = 0; i < e->g.n; i++) {
    CUresult r = run(&e->g.l[i]);
    if (r) return r;
  }
  return OK;
}
CUresult cuGraphExecDestroy(struct CUgraphExec_st *e) {
  free(e->g.l);
  free(e);
  return OK;
}
CUresult cuGraphDestroy(struct CUgraph_st *g) {
  free(g->l);
  free(g);
  return OK;
}
CUresult cuGetErrorString(CUresult r, const char **s) {
  if (r == ERR_ILLEGAL_ADDRESS) {
    *s = "an illegal memory access was encountered";
    return OK;
  }
  *s = r == ERR_LAUNCH_FAILED ? "emulated launch failed" : r == ERR_INVALID_VALUE ? "invalid argument" : "emulated error";
  return OK;
}
CUresult cuGetErrorName(CUresult r, const char **s) {
  if (r == ERR_ILLEGAL_ADDRESS) {
    *s = "CUDA_ERROR_ILLEGAL_ADDRESS";
    return OK;
  }
  *s = r == ERR_LAUNCH_FAILED ? "CUDA_ERROR_LAUNCH_FAILED" : r == ERR_INVALID_VALUE ? "CUDA_ERROR_INVALID_VALUE"
                                                                                      : "CUDA_ERROR_UNKNOWN";
  return OK;
}

/* parameter counts of the kernel families (backend/cuda/plan.c) */
static int param_count(const char *name) {
  static const struct {
    const char *fam;
    int n;
  } t[] = {{"embed", 4},     {"rmsnorm", 5},   {"gemm_simt", 23}, {"gemm_mma", 23}, {"gemv", 23},
           {"rope", 5},      {"kv_append", 10}, {"attention", 10}, {"silu_mul", 5},
           {"add", 5},       {"gather", 5},    {"scatter", 5},    {"gate_add", 8},  {"count_add", 3},
           {"fill", 3},      {"tc_route", 5},  {"where", 5},      {"select", 9},    {"rowdot", 5},
           {"attention_mma", 10}, {"attention_dec", 10}};
  const char *u = strchr(name + 5, '_'); /* mor_k<i>_<family> */
  if (!u) return -1;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(u + 1, t[i].fam)) return t[i].n;
  return -1;
}

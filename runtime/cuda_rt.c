/* cuda_rt.c: run a CUDA launch plan (cuda_plan.h) through the driver API
 * (cuda_shim.h). Device memory: the weights (uploaded once), the io buffer
 * (T, token ids, positions), the control block (count slots, tickets), the
 * arena, and per sequence its KV stores and their entry counts. Kernel
 * arguments are resolved to device addresses once per sequence. */
#include "runtime/cuda_rt.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/cuda_shim.h"

struct morrt_cuda {
  morrt_cu *cu;
  const morcu_plan *plan;
  CUdevice dev;
  CUcontext ctx;
  CUmodule mod;
  CUstream stream;
  CUfunction *fn;            /* per kernel */
  CUdeviceptr weights, io, ctl, arena;
  int use_graphs, sync_steps;
  int pdl;                   /* launch with programmatic dependent launch (sm_90 kernels on an sm_90+ GPU) */
  FILE *dump;                /* morrt_cuda_set_dump */
  int64_t calls;             /* forward calls so far */
  int32_t *hio;              /* host staging of the io buffer (page-locked when possible) */
  float *hlast;              /* page-locked staging of the last row's logits and the depths */
  int pinned;
  morrt_cuda_dev info;
};

struct morrt_cuda_seq {
  morrt_cuda *c;
  int64_t len;
  CUdeviceptr *k, *v, *pos;  /* per KV store */
  CUdeviceptr kvn;           /* int32 per store */
  uint64_t *vals;            /* resolved kernel arguments */
  void **args;               /* &vals[i] */
  CUgraphExec graph;         /* the one-token call, captured */
  int graph_failed;
};

static int cfail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

#define CU_TRY(call, what)                                                                                    \
  do {                                                                                                        \
    CUresult r_ = (call);                                                                                     \
    if (r_ != MORRT_CU_SUCCESS) {                                                                             \
      char b_[160];                                                                                           \
      cfail(err, errlen, "CUDA: %s: %s", what, morrt_cu_errstr(c->cu, r_, b_, sizeof b_));                    \
      goto fail;                                                                                              \
    }                                                                                                         \
  } while (0)

static CUresult dalloc(morrt_cu *cu, CUdeviceptr *p, int64_t bytes) {
  return cu->MemAlloc(p, (size_t)(bytes < 256 ? 256 : bytes));
}

int morrt_cuda_open(const morcu_plan *plan, const void *weights, int device, int flags, morrt_cuda **out, char *err,
                    size_t errlen) {
  *out = NULL;
  morrt_cu *cu = morrt_cu_load(err, errlen);
  if (!cu) return MORRT_CUDA_NO_GPU;
  char b[160];
  CUresult r = cu->Init(0);
  if (r != MORRT_CU_SUCCESS) {
    snprintf(err, errlen, "no CUDA driver or GPU found: cuInit: %s", morrt_cu_errstr(cu, r, b, sizeof b));
    morrt_cu_unload(cu);
    return MORRT_CUDA_NO_GPU;
  }
  int ndev = 0;
  r = cu->DeviceGetCount(&ndev);
  if (r != MORRT_CU_SUCCESS || ndev < 1) {
    snprintf(err, errlen, "no CUDA driver or GPU found: the driver sees no GPU");
    morrt_cu_unload(cu);
    return MORRT_CUDA_NO_GPU;
  }
  if (device < 0 || device >= ndev) {
    snprintf(err, errlen, "--device %d: there are %d GPUs (0..%d)", device, ndev, ndev - 1);
    morrt_cu_unload(cu);
    return MORRT_CUDA_ERROR;
  }
  morrt_cuda *c = calloc(1, sizeof *c);
  if (!c) {
    morrt_cu_unload(cu);
    return cfail(err, errlen, "out of memory"), MORRT_CUDA_ERROR;
  }
  c->cu = cu;
  c->plan = plan;
  c->sync_steps = (flags & MORRT_CUDA_SYNC_STEPS) != 0;
  c->use_graphs = (flags & MORRT_CUDA_GRAPHS) && !c->sync_steps;
  CU_TRY(cu->DeviceGet(&c->dev, device), "cuDeviceGet");
  cu->DeviceGetName(c->info.name, sizeof c->info.name, c->dev);
  cu->DeviceGetAttribute(&c->info.cc_major, MORRT_CU_ATTR_CC_MAJOR, c->dev);
  cu->DeviceGetAttribute(&c->info.cc_minor, MORRT_CU_ATTR_CC_MINOR, c->dev);
  cu->DeviceGetAttribute(&c->info.sms, MORRT_CU_ATTR_SM_COUNT, c->dev);
  cu->DriverGetVersion(&c->info.driver_version);
  {
    int clk = 0, bus = 0;
    cu->DeviceGetAttribute(&clk, MORRT_CU_ATTR_MEM_CLOCK_KHZ, c->dev);
    cu->DeviceGetAttribute(&bus, MORRT_CU_ATTR_BUS_WIDTH, c->dev);
    c->info.mem_gbps = 2.0 * clk * 1e3 * (bus / 8.0) / 1e9;
  }
  int want = 0;
  int have = c->info.cc_major * 10 + c->info.cc_minor;
  if (have < 80) {
    cfail(err, errlen, "GPU %d (%s) is sm_%d%d; morc's CUDA kernels need sm_80 or newer (Ampere, BF16 tensor cores)",
          device, c->info.name, c->info.cc_major, c->info.cc_minor);
    goto fail;
  }
  if (sscanf(plan->arch, "sm_%d", &want) == 1 && have < want) {
    cfail(err, errlen, "this program was built for %s, but GPU %d (%s) is sm_%d%d; rebuild with --cuda-arch sm_%d%d",
          plan->arch, device, c->info.name, c->info.cc_major, c->info.cc_minor, c->info.cc_major, c->info.cc_minor);
    goto fail;
  }
  CU_TRY(cu->DevicePrimaryCtxRetain(&c->ctx, c->dev), "cuDevicePrimaryCtxRetain");
  CU_TRY(cu->CtxSetCurrent(c->ctx), "cuCtxSetCurrent");
  /* kernels: the cubin when it was built for this GPU, else the PTX */
  r = MORRT_CU_ERROR_NO_DEVICE;
  if (plan->cubin_size && c->info.cc_major * 10 + c->info.cc_minor == want) {
    r = cu->ModuleLoadData(&c->mod, plan->cubin);
    c->info.loaded_cubin = r == MORRT_CU_SUCCESS;
  }
  if (r != MORRT_CU_SUCCESS) {
    r = cu->ModuleLoadData(&c->mod, plan->ptx);
    if (r != MORRT_CU_SUCCESS) {
      cfail(err, errlen,
            "CUDA: cannot load the kernels (PTX for %s) with driver %d.%d: %s; a driver for CUDA 13 or newer is "
            "needed for this PTX",
            plan->arch, c->info.driver_version / 1000, c->info.driver_version % 1000 / 10,
            morrt_cu_errstr(cu, r, b, sizeof b));
      goto fail;
    }
  }
  c->fn = calloc((size_t)plan->n_kernels + 1, sizeof *c->fn);
  if (!c->fn) {
    cfail(err, errlen, "out of memory");
    goto fail;
  }
  for (int64_t i = 0; i < plan->n_kernels; i++) {
    r = cu->ModuleGetFunction(&c->fn[i], c->mod, plan->kernel_names[i]);
    if (r != MORRT_CU_SUCCESS) {
      cfail(err, errlen, "CUDA: kernel %s: %s", plan->kernel_names[i], morrt_cu_errstr(cu, r, b, sizeof b));
      goto fail;
    }
  }
  /* the kernels of an sm_90 build start with griddepcontrol (kernels.cuh, MOR_PDL) */
  c->pdl = (flags & MORRT_CUDA_PDL) && cu->LaunchKernelEx && want >= 90 && have >= 90;
  c->info.pdl = c->pdl;
  CU_TRY(cu->StreamCreate(&c->stream, MORRT_CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  /* memory */
  int64_t ctl_bytes = 4 * (plan->n_cnt + plan->n_tickets) + 64;
  CU_TRY(dalloc(cu, &c->weights, plan->weights_bytes), "allocating the weights");
  CU_TRY(dalloc(cu, &c->io, plan->io_bytes), "allocating the io buffer");
  CU_TRY(dalloc(cu, &c->ctl, ctl_bytes), "allocating the control block");
  CU_TRY(dalloc(cu, &c->arena, plan->arena_bytes), "allocating the arena");
  c->info.device_bytes = plan->weights_bytes + plan->io_bytes + ctl_bytes + plan->arena_bytes;
  if (plan->weights_bytes)
    CU_TRY(cu->MemcpyHtoDAsync(c->weights, weights, (size_t)plan->weights_bytes, c->stream), "uploading the weights");
  CU_TRY(cu->MemsetD8Async(c->ctl, 0, (size_t)ctl_bytes, c->stream), "clearing the control block");
  CU_TRY(cu->MemsetD8Async(c->arena, 0, (size_t)plan->arena_bytes, c->stream), "clearing the arena");
  for (int64_t i = 0; i < plan->n_cnt_init; i++) {
    int32_t v = (int32_t)plan->cnt_init[2 * i + 1];
    CU_TRY(cu->MemcpyHtoDAsync(c->ctl + 4 * (CUdeviceptr)plan->cnt_init[2 * i], &v, 4, c->stream), "count slots");
    CU_TRY(cu->StreamSynchronize(c->stream), "count slots");
  }
  {
    /* page-locked staging makes the per-call copies asynchronous and cheap */
    size_t nio = (size_t)plan->io_bytes + 64, nlast = sizeof(float) * (size_t)(plan->vocab + plan->max_tokens) + 64;
    void *a = NULL, *b = NULL;
    if (cu->MemAllocHost(&a, nio) == MORRT_CU_SUCCESS && cu->MemAllocHost(&b, nlast) == MORRT_CU_SUCCESS) {
      c->pinned = 1;
    } else {
      if (a) cu->MemFreeHost(a);
      a = malloc(nio);
      b = malloc(nlast);
    }
    c->hio = a;
    c->hlast = b;
    if (!c->hio || !c->hlast) {
      cfail(err, errlen, "out of memory");
      goto fail;
    }
    memset(c->hio, 0, nio);
  }
  CU_TRY(cu->StreamSynchronize(c->stream), "uploading the weights");
  *out = c;
  return MORRT_CUDA_OK;
fail:
  morrt_cuda_close(c);
  return MORRT_CUDA_ERROR;
}

void morrt_cuda_close(morrt_cuda *c) {
  if (!c) return;
  morrt_cu *cu = c->cu;
  if (c->stream) cu->StreamSynchronize(c->stream);
  if (c->weights) cu->MemFree(c->weights);
  if (c->io) cu->MemFree(c->io);
  if (c->ctl) cu->MemFree(c->ctl);
  if (c->arena) cu->MemFree(c->arena);
  if (c->stream) cu->StreamDestroy(c->stream);
  if (c->mod) cu->ModuleUnload(c->mod);
  if (c->ctx) cu->DevicePrimaryCtxRelease(c->dev);
  free(c->fn);
  if (c->pinned) {
    cu->MemFreeHost(c->hio);
    cu->MemFreeHost(c->hlast);
  } else {
    free(c->hio);
    free(c->hlast);
  }
  morrt_cu_unload(cu);
  free(c);
}

void morrt_cuda_device(const morrt_cuda *c, morrt_cuda_dev *d) { *d = c->info; }

static uint64_t resolve(const morrt_cuda *c, const morrt_cuda_seq *s, const morcu_param *q) {
  const morcu_plan *p = c->plan;
  switch (q->kind) {
  case MORCU_P_IO: return c->io + q->v;
  case MORCU_P_ARENA: return c->arena + q->v;
  case MORCU_P_WEIGHT: return c->weights + q->v;
  case MORCU_P_KVK: return s->k[q->v];
  case MORCU_P_KVV: return s->v[q->v];
  case MORCU_P_KVPOS: return s->pos[q->v];
  case MORCU_P_KVN: return s->kvn + 4 * q->v;
  case MORCU_P_CNT: return q->v == 0 ? c->io : c->ctl + 4 * q->v;
  case MORCU_P_TICKET: return c->ctl + 4 * ((uint64_t)p->n_cnt + q->v);
  case MORCU_P_I64:
  case MORCU_P_F64: return q->v;
  default: return 0;
  }
}

morrt_cuda_seq *morrt_cuda_seq_new(morrt_cuda *c, char *err, size_t errlen) {
  const morcu_plan *p = c->plan;
  morrt_cu *cu = c->cu;
  morrt_cuda_seq *s = calloc(1, sizeof *s);
  if (!s) return cfail(err, errlen, "out of memory"), NULL;
  s->c = c;
  s->k = calloc((size_t)p->n_kv + 1, sizeof *s->k);
  s->v = calloc((size_t)p->n_kv + 1, sizeof *s->v);
  s->pos = calloc((size_t)p->n_kv + 1, sizeof *s->pos);
  s->vals = calloc((size_t)p->n_params + 1, sizeof *s->vals);
  s->args = calloc((size_t)p->n_params + 1, sizeof *s->args);
  if (!s->k || !s->v || !s->pos || !s->vals || !s->args) {
    cfail(err, errlen, "out of memory");
    goto fail;
  }
  for (int64_t i = 0; i < p->n_kv; i++) {
    int64_t rows = p->kv[i].capacity * p->kv[i].width * 4;
    CU_TRY(dalloc(cu, &s->k[i], rows), "allocating a KV store");
    CU_TRY(dalloc(cu, &s->v[i], rows), "allocating a KV store");
    CU_TRY(dalloc(cu, &s->pos[i], 4 * p->kv[i].capacity), "allocating a KV store");
  }
  CU_TRY(dalloc(cu, &s->kvn, 4 * p->n_kv + 4), "allocating the KV counts");
  CU_TRY(cu->MemsetD8Async(s->kvn, 0, (size_t)(4 * p->n_kv + 4), c->stream), "clearing the KV counts");
  CU_TRY(cu->StreamSynchronize(c->stream), "clearing the KV counts");
  for (int64_t i = 0; i < p->n_params; i++) {
    s->vals[i] = resolve(c, s, &p->params[i]);
    s->args[i] = &s->vals[i];
  }
  return s;
fail:
  morrt_cuda_seq_free(s);
  return NULL;
}

void morrt_cuda_seq_free(morrt_cuda_seq *s) {
  if (!s) return;
  morrt_cuda *c = s->c;
  morrt_cu *cu = c->cu;
  cu->StreamSynchronize(c->stream);
  if (s->graph) cu->GraphExecDestroy(s->graph);
  for (int64_t i = 0; i < c->plan->n_kv; i++) {
    if (s->k && s->k[i]) cu->MemFree(s->k[i]);
    if (s->v && s->v[i]) cu->MemFree(s->v[i]);
    if (s->pos && s->pos[i]) cu->MemFree(s->pos[i]);
  }
  if (s->kvn) cu->MemFree(s->kvn);
  free(s->k);
  free(s->v);
  free(s->pos);
  free(s->vals);
  free(s->args);
  free(s);
}

int64_t morrt_cuda_seq_len(const morrt_cuda_seq *s) { return s->len; }

static unsigned gdim(int32_t c, int32_t d, int64_t T) { return (unsigned)(c + (d > 0 ? (T + d - 1) / d : 0)); }

void morrt_cuda_set_dump(morrt_cuda *c, FILE *f) {
  c->dump = f;
  if (f) c->sync_steps = 1, c->use_graphs = 0;
}

static int dump_i64(FILE *f, int64_t v) { return fwrite(&v, 8, 1, f) == 1 ? 0 : -1; }

/* one section: tag, bytes, the bytes copied back from the device */
static int dump_section(morrt_cuda *c, int64_t tag, CUdeviceptr p, int64_t bytes, char *err, size_t errlen) {
  char *h = malloc((size_t)(bytes > 0 ? bytes : 1));
  if (!h) return cfail(err, errlen, "out of memory for a step dump of %lld bytes", (long long)bytes);
  CUresult r = bytes > 0 ? c->cu->MemcpyDtoHAsync(h, p, (size_t)bytes, c->stream) : MORRT_CU_SUCCESS;
  if (r == MORRT_CU_SUCCESS) r = c->cu->StreamSynchronize(c->stream);
  if (r != MORRT_CU_SUCCESS) {
    char b[160];
    free(h);
    return cfail(err, errlen, "CUDA: reading the device for a step dump: %s", morrt_cu_errstr(c->cu, r, b, sizeof b));
  }
  int bad = dump_i64(c->dump, tag) || dump_i64(c->dump, bytes) || fwrite(h, 1, (size_t)bytes, c->dump) != (size_t)bytes;
  free(h);
  return bad ? cfail(err, errlen, "writing the step dump failed") : 0;
}

static int dump_step(morrt_cuda *c, morrt_cuda_seq *s, int64_t step, int64_t T, const char *label, const char *kernel,
                     char *err, size_t errlen) {
  const morcu_plan *p = c->plan;
  char name[160];
  memset(name, 0, sizeof name);
  snprintf(name, sizeof name, "%s | %s", label, kernel);
  FILE *f = c->dump;
  if (fwrite("MORSTEP1", 1, 8, f) != 8 || dump_i64(f, c->calls) || dump_i64(f, step) || dump_i64(f, T) ||
      fwrite(name, 1, sizeof name, f) != sizeof name || dump_i64(f, 3 + 3 * p->n_kv))
    return cfail(err, errlen, "writing the step dump failed");
  if (dump_section(c, 0, c->arena, p->arena_bytes, err, errlen) ||
      dump_section(c, 1, c->ctl, 4 * (p->n_cnt + p->n_tickets), err, errlen) ||
      dump_section(c, 2, s->kvn, 4 * p->n_kv, err, errlen))
    return -1;
  int64_t used = s->len + T; /* no store holds more entries than the positions so far */
  for (int64_t i = 0; i < p->n_kv; i++) {
    int64_t rows = used < p->kv[i].capacity ? used : p->kv[i].capacity;
    if (dump_section(c, 3 + 3 * i, s->k[i], rows * p->kv[i].width * 4, err, errlen) ||
        dump_section(c, 4 + 3 * i, s->v[i], rows * p->kv[i].width * 4, err, errlen) ||
        dump_section(c, 5 + 3 * i, s->pos[i], rows * 4, err, errlen))
      return -1;
  }
  return 0;
}

/* one kernel launch; with programmatic dependent launch where it is on.
 * A driver that refuses the attribute turns it off for good. */
static CUresult launch(morrt_cuda *c, CUfunction f, unsigned gx, unsigned gy, unsigned gz, const morcu_launch *l,
                       void **args) {
  morrt_cu *cu = c->cu;
  if (c->pdl) {
    morrt_cu_launch_attr a;
    memset(&a, 0, sizeof a);
    a.id = MORRT_CU_LAUNCH_ATTR_PDL;
    a.v.value = 1;
    morrt_cu_launch_config cfg = {gx, gy, gz, (unsigned)l->block[0], (unsigned)l->block[1], (unsigned)l->block[2],
                                  (unsigned)l->smem, c->stream, &a, 1};
    CUresult r = cu->LaunchKernelEx(&cfg, f, args, NULL);
    if (r != MORRT_CU_ERROR_INVALID_VALUE && r != MORRT_CU_ERROR_NOT_SUPPORTED) return r;
    c->pdl = c->info.pdl = 0;
  }
  return cu->LaunchKernel(f, gx, gy, gz, (unsigned)l->block[0], (unsigned)l->block[1], (unsigned)l->block[2],
                          (unsigned)l->smem, c->stream, args, NULL);
}

/* launch every step of the plan for T tokens */
static int launch_all(morrt_cuda *c, morrt_cuda_seq *s, int64_t T, char *err, size_t errlen) {
  const morcu_plan *p = c->plan;
  morrt_cu *cu = c->cu;
  for (int64_t i = 0; i < p->n_steps; i++) {
    const morcu_step *st = &p->steps[i];
    const morcu_launch *l = NULL;
    for (int v = 0; v < MORCU_VARIANTS && !l; v++)
      if (st->var[v].kernel >= 0 && T <= st->max_t[v]) l = &st->var[v];
    if (!l) return cfail(err, errlen, "step %lld has no kernel for %lld tokens", (long long)i, (long long)T);
    unsigned gx = gdim(l->grid_c[0], l->grid_d[0], T), gy = gdim(l->grid_c[1], l->grid_d[1], T),
             gz = gdim(l->grid_c[2], l->grid_d[2], T);
    if (!gx || !gy || !gz) continue;
    CUresult r = launch(c, c->fn[l->kernel], gx, gy, gz, l, s->args + st->first_param);
    int ran = 0;
    if (r == MORRT_CU_SUCCESS && c->sync_steps) {
      r = cu->StreamSynchronize(c->stream);
      ran = 1;
    }
    if (r != MORRT_CU_SUCCESS) {
      char b[160];
      /* without --sync-steps a kernel's fault surfaces at a later call: say so */
      return cfail(err, errlen, "CUDA: %s step %lld (%s, kernel %s, grid %ux%ux%u, block %d) for %lld tokens: %s%s",
                   ran ? "running" : "launching", (long long)i, p->labels[st->label], p->kernel_names[l->kernel], gx,
                   gy, gz, l->block[0], (long long)T, morrt_cu_errstr(cu, r, b, sizeof b),
                   c->sync_steps ? "" : " (an earlier kernel may have failed: --sync-steps names the one that did)");
    }
    if (c->dump && dump_step(c, s, i, T, p->labels[st->label], p->kernel_names[l->kernel], err, errlen)) return -1;
  }
  return 0;
}

/* capture the one-token call into a graph (once per sequence) */
static void capture(morrt_cuda *c, morrt_cuda_seq *s) {
  morrt_cu *cu = c->cu;
  CUgraph g = NULL;
  char e[256];
  if (cu->StreamBeginCapture(c->stream, MORRT_CU_CAPTURE_MODE_THREAD_LOCAL) != MORRT_CU_SUCCESS) {
    s->graph_failed = 1;
    return;
  }
  int lr = launch_all(c, s, 1, e, sizeof e);
  CUresult r = cu->StreamEndCapture(c->stream, &g);
  if (lr || r != MORRT_CU_SUCCESS || !g || cu->GraphInstantiate(&s->graph, g, 0) != MORRT_CU_SUCCESS) {
    s->graph = NULL;
    s->graph_failed = 1;
  }
  if (g) cu->GraphDestroy(g);
}

int morrt_cuda_forward(morrt_cuda *c, morrt_cuda_seq *s, const int32_t *tokens, int64_t T, float *logits,
                       int last_only, int32_t *depths, char *err, size_t errlen) {
  const morcu_plan *p = c->plan;
  morrt_cu *cu = c->cu;
  if (T < 1 || T > p->max_tokens)
    return cfail(err, errlen, "a forward call takes 1 to %lld tokens, not %lld", (long long)p->max_tokens, (long long)T),
           1;
  if (s->len + T > p->max_pos)
    return cfail(err, errlen, "positions %lld..%lld go past the context of %lld (max_position_embeddings)",
                 (long long)s->len, (long long)(s->len + T - 1), (long long)p->max_pos),
           1;
  if (p->whole_sequence && s->len > 0)
    return cfail(err, errlen,
                 "top_k routing scores whole sequences only, but the sequence already has cached positions (use "
                 "threshold routing to decode)"),
           1;
  for (int64_t i = 0; i < T; i++)
    if (tokens[i] < 0 || tokens[i] >= p->vocab)
      return cfail(err, errlen, "token %lld: id %d out of range [0, %lld)", (long long)i, tokens[i], (long long)p->vocab),
             1;
  c->hio[0] = (int32_t)T;
  memcpy(c->hio + p->io_tokens / 4, tokens, sizeof(int32_t) * (size_t)T);
  for (int64_t i = 0; i < T; i++) c->hio[p->io_pos / 4 + i] = (int32_t)(s->len + i);
  /* T and the ids, then the positions: only the bytes this call uses */
  CU_TRY(cu->MemcpyHtoDAsync(c->io, c->hio, (size_t)(p->io_tokens + 4 * T), c->stream), "uploading the tokens");
  CU_TRY(cu->MemcpyHtoDAsync(c->io + (CUdeviceptr)p->io_pos, (const char *)c->hio + p->io_pos, (size_t)(4 * T),
                             c->stream),
         "uploading the positions");
  if (T == 1 && c->use_graphs && !s->graph && !s->graph_failed) capture(c, s);
  if (T == 1 && s->graph) {
    CU_TRY(cu->GraphLaunch(s->graph, c->stream),
           "running the decode graph (a kernel failed: --sync-steps names the one that did)");
  } else if (launch_all(c, s, T, err, errlen)) {
    return 2;
  }
  size_t row = sizeof(float) * (size_t)p->vocab;
  float *hdep = c->hlast + p->vocab; /* staging: [V] last logits row, [T] depths */
  if (logits && last_only)
    CU_TRY(cu->MemcpyDtoHAsync(c->hlast, c->arena + (CUdeviceptr)p->logits_off + (CUdeviceptr)((T - 1) * row), row,
                               c->stream),
           "reading the logits");
  else if (logits)
    CU_TRY(cu->MemcpyDtoHAsync(logits, c->arena + (CUdeviceptr)p->logits_off, row * (size_t)T, c->stream),
           "reading the logits");
  if (depths)
    CU_TRY(cu->MemcpyDtoHAsync(hdep, c->arena + (CUdeviceptr)p->depths_off, sizeof(int32_t) * (size_t)T, c->stream),
           "reading the depths");
  CU_TRY(cu->StreamSynchronize(c->stream),
         c->sync_steps ? "running the forward call"
                       : "running the forward call (a kernel failed: --sync-steps names the one that did)");
  c->calls++;
  if (logits && last_only) memcpy(logits, c->hlast, row);
  if (depths) memcpy(depths, hdep, sizeof(int32_t) * (size_t)T);
  s->len += T;
  return 0;
fail:
  return 2;
}

int64_t morrt_cuda_seq_kv_len(morrt_cuda *c, morrt_cuda_seq *s, int64_t i) {
  if (i < 0 || i >= c->plan->n_kv) return -1;
  int32_t n = 0;
  if (c->cu->MemcpyDtoHAsync(&n, s->kvn + 4 * (CUdeviceptr)i, 4, c->stream) != MORRT_CU_SUCCESS ||
      c->cu->StreamSynchronize(c->stream) != MORRT_CU_SUCCESS)
    return -1;
  return n;
}

double morrt_cuda_copy_gbps(morrt_cuda *c, size_t bytes, int reps, char *err, size_t errlen) {
  CUdeviceptr a = 0, b = 0;
  double gbps = -1;
  struct timespec t0, t1;
  CU_TRY(c->cu->MemAlloc(&a, bytes), "allocating the bandwidth probe");
  CU_TRY(c->cu->MemAlloc(&b, bytes), "allocating the bandwidth probe");
  CU_TRY(c->cu->MemsetD8Async(a, 1, bytes, c->stream), "bandwidth probe");
  CU_TRY(c->cu->MemcpyDtoDAsync(b, a, bytes, c->stream), "bandwidth probe"); /* warm up */
  CU_TRY(c->cu->StreamSynchronize(c->stream), "bandwidth probe");
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < reps; i++) CU_TRY(c->cu->MemcpyDtoDAsync(i & 1 ? a : b, i & 1 ? b : a, bytes, c->stream), "bandwidth probe");
  CU_TRY(c->cu->StreamSynchronize(c->stream), "bandwidth probe");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  gbps = 2.0 * (double)bytes * reps / s / 1e9;
fail:
  if (a) c->cu->MemFree(a);
  if (b) c->cu->MemFree(b);
  return gbps;
}

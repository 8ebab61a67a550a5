/* cuda_impl.h: internals of the CUDA backend shared by plan.c (IR -> flat
 * launch plan), emit.c (CUDA C source), nvrtc.c (compilation) and write.c
 * (serialization). Not installed; nothing outside backend/cuda includes it. */
#ifndef MOR_CUDA_IMPL_H
#define MOR_CUDA_IMPL_H
#include "backend/cuda/cuda.h"
#include "runtime/cuda_plan.h"

/* A kernel family of kernels.cuh: its template and its parameter types. */
typedef struct cu_family {
  const char *name;        /* short name, part of kernel names */
  const char *tmpl;        /* the device function template */
  int n_params;
  const char *ptypes[24];
  const char *pre; /* or NULL: a device function of the same parameters that runs before the
                      PDL wait: it may read only what no earlier kernel writes (the weights) */
} cu_family;
extern const cu_family cu_families[];
enum {
  CU_F_EMBED, CU_F_RMSNORM, CU_F_GEMM_SIMT, CU_F_GEMM_MMA, CU_F_GEMV, CU_F_ROPE, CU_F_KV_APPEND,
  CU_F_ATTENTION, CU_F_SILU_MUL, CU_F_ADD, CU_F_GATHER, CU_F_SCATTER, CU_F_GATE_ADD, CU_F_COUNT_ADD, CU_F_FILL,
  CU_F_TC_ROUTE, CU_F_WHERE, CU_F_SELECT, CU_F_ROWDOT, CU_F_ATTENTION_MMA, CU_F_ATTENTION_DEC, CU_F_COUNT
};

/* A kernel instance: a family with template arguments and a block size. */
typedef struct cu_kernel {
  int family;
  char *targs;             /* "1,960,..." (generated digits and commas only) */
  int threads;
  char *name;              /* mor_k<i>_<family> */
  int line0, line1;        /* lines of its wrapper in the source (1-based) */
} cu_kernel;

/* A parameter before buffer offsets are known: kind MORCU_P_*, or CU_P_ST
 * (storage st + v bytes). */
#define CU_P_ST 100
typedef struct cu_param {
  int kind;
  int st;
  uint64_t v;
} cu_param;

typedef struct cu_step {
  morcu_launch var[MORCU_VARIANTS]; /* the first whose max_t >= T runs */
  int max_t[MORCU_VARIANTS];
  int first_param, n_params;
  int label;
} cu_step;

/* A buffer: arena (or io) bytes live over insts [first, last]. */
typedef struct cu_storage {
  int64_t bytes;
  int io;                  /* 1: in the io buffer at off (fixed) */
  int64_t off;
  int first, last;
} cu_storage;

typedef struct cu_weight {
  const mor_global *g;
  mor_dtype dev;           /* MOR_F32 or MOR_BF16 */
  uint64_t off, bytes;
} cu_weight;

typedef struct cu_store {
  const mor_global *g;     /* the cache global that owns the storage */
  int64_t capacity, width;
} cu_store;

struct mor_cuda_prog {
  const mor_module *m;
  mor_cuda_opts o;
  char arch[16];
  int sm;                  /* 80, 90, ... */
  /* weights and KV stores */
  int n_w;
  cu_weight *w;
  int *w_of_global;        /* by global index: weight index or -1 */
  int n_st_kv;
  cu_store *kv;
  int *kv_of_global;       /* by global index: store index or -1 (aliases resolved) */
  uint64_t weights_bytes;
  int mma_attention;       /* GEMMs run on tensor cores (bf16 weights, mma on): attention does too */
  /* kernels, steps, params */
  int n_k, cap_k;
  cu_kernel *k;
  int n_steps, cap_steps;
  cu_step *steps;
  int n_params, cap_params;
  cu_param *params;
  int n_labels, cap_labels;
  char **labels;
  /* memory */
  int n_sto, cap_sto;
  cu_storage *sto;
  int64_t arena_bytes, io_bytes, io_tokens, io_pos;
  int n_cnt;
  int n_tickets;           /* ticket 0: KV commits; 1..: decode attention (row, head) */
  int n_cnt_init;
  int64_t *cnt_init;
  int64_t max_tokens;
  int64_t logits_off, depths_off;
  int whole_sequence;
  int64_t vocab, hidden, max_pos, n_r, routing;
  /* code */
  mor_buf src;
  char *ptx;
  unsigned char *cubin;
  size_t cubin_size;
};

/* emit.c: fill p->src from p->k (and set the kernels' line ranges). */
void cu_emit_source(mor_cuda_prog *p);
extern const char mor_cuda_kernels_cuh[]; /* kernels.cuh, embedded at build time */

#endif

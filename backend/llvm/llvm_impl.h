/* llvm_impl.h: internals of the LLVM backend shared by its files:
 * memplan.c (arena offsets), codegen.c (IR -> LLVM IR), target.c (target
 * machine, kernel bitcode, optimization, emission), jit.c (LLJIT). */
#ifndef MOR_LLVM_IMPL_H
#define MOR_LLVM_IMPL_H
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include "backend/llvm/llvm.h"

/* ---- memory plan (memplan.c) --------------------------------------------- */

typedef struct mp_buf {
  int64_t size;        /* bytes, a multiple of 64 */
  int64_t start, end;  /* live over linear op indices [start, end] */
  int64_t off;         /* offset in the function's frame */
} mp_buf;

/* Per op (keyed by pointer): its linear index, the index after its region,
 * and its buffers (temps, or 2 per carried value for recur). */
typedef struct mp_op {
  const mor_op *op;
  int64_t idx, end;
  int first_buf, n_bufs;
} mp_op;

typedef struct mp_plan {
  int n_bufs, cap_bufs;
  mp_buf *bufs;
  int *val_buf;        /* by value id: buffer, or -1 (arguments, scalars, recur results) */
  int n_ops;
  mp_op *ops;          /* hash table, n_ops slots (power of two) */
  int64_t frame_bytes;
} mp_plan;

/* Bytes of one dimension bound, with symbols capped at max_tokens (> 0). */
int64_t mp_dim(const mor_module *m, mor_dim d, int64_t max_tokens);
int64_t mp_type_bytes(const mor_module *m, const mor_type *t, int64_t max_tokens);
/* Temp buffers an op needs besides its results (sizes in bytes); returns the count. */
int mp_op_temps(const mor_module *m, const mor_op *op, int64_t max_tokens, int64_t *sizes);
int mp_plan_func(mp_plan *p, const mor_module *m, const mor_func *f, int64_t max_tokens, mor_err *err);
const mp_op *mp_find(const mp_plan *p, const mor_op *op);
void mp_free(mp_plan *p);

/* ---- code generation (codegen.c) ------------------------------------------ */

typedef struct lg_val {
  LLVMValueRef ptr;    /* data (buffers), NULL for scalars */
  LLVMValueRef rows;   /* i64 rows (dim 0) at run time; the value itself for i64 scalars */
} lg_val;

typedef struct lg {
  LLVMContextRef cx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMTypeRef i8, i32, i64, f32, f64, ptr, vd, task_t, par_t;
  const mor_module *m;
  const mor_llvm_opts *o;
  mor_err *err;
  int failed;
  int64_t max_tokens;
  /* globals: weight slot or KV store by global index (-1: none) */
  int *wslot, *kvstore;
  int n_wslots, n_stores;
  int *wslot_global, *store_global; /* inverse maps */
  int *wfmt;                        /* by weight slot: MORRT_FMT_* it is stored in */
  /* functions */
  LLVMValueRef *fns;                /* by module function index */
  mp_plan *plans;                   /* by module function index */
  int64_t *frame_base;
  int64_t arena_bytes;
  /* the function being generated */
  const mor_func *cur;
  int cur_index;
  LLVMValueRef fn, ctx, weights, kv, frame, slots, rows_out;
  lg_val *v;                        /* by value id */
  int n_inst;                       /* instance functions made */
  void *keys;                       /* their reuse keys (codegen.c) */
  int n_keys, cap_keys;
  const mor_op *cur_op;
} lg;

/* Build the whole module (functions, instances, descriptor). */
int mor_llvm_codegen(lg *g);

/* ---- target, kernels, passes (target.c) ---------------------------------- */

struct mor_llvm_module {
  LLVMContextRef cx;
  LLVMModuleRef mod;
  LLVMTargetMachineRef tm;
  char *triple, *cpu, *features;
  int bf16_dot; /* keep the AVX512-BF16 GEMM tile (mor_llvm_opts.bf16_dot) */
  mor_llvm_info info;
  mor_buf diag;                     /* LLVM errors reported to the diagnostic handler */
  int diag_errors;
};

int mor_llvm_init_targets(mor_err *err);
/* Make the target machine for o (host defaults) into lm->tm, lm->triple, ... */
int mor_llvm_make_tm(mor_llvm_module *lm, const mor_llvm_opts *o, mor_err *err);
LLVMTargetMachineRef mor_llvm_clone_tm(const mor_llvm_module *lm, int jit, mor_err *err);
/* Parse the embedded kernel bitcode and link it into lm->mod. */
int mor_llvm_link_kernels(mor_llvm_module *lm, mor_err *err);
/* Internalize the kernels, set CPU attributes, verify, run default<On>. */
int mor_llvm_optimize(mor_llvm_module *lm, int opt_level, mor_err *err);
void mor_llvm_install_diag(mor_llvm_module *lm);
/* 1 (and err filled) when the diagnostic handler saw an error. */
int mor_llvm_diag_failed(mor_llvm_module *lm, const char *what, mor_err *err);
/* Everything but the JIT: codegen + kernels + optimize into a new module in cx. */
mor_llvm_module *mor_llvm_build(const mor_module *m, const mor_llvm_opts *o, LLVMContextRef cx, mor_err *err);

/* embedded kernel bitcode (generated at build time: mork_bc.c) */
extern const unsigned char mor_kernels_bc[];
extern const unsigned long mor_kernels_bc_size;

#endif

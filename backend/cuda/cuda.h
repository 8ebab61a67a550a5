/* cuda.h: the CUDA backend. It turns an IR module (of any stage: straight
 * from lowering, or after the passes) into
 *   - CUDA C source: one kernel instance per distinct (kernel family, shapes,
 *     modes), on top of a kernel library (kernels.cuh) embedded in morc;
 *   - a launch plan (runtime/cuda_plan.h): the flat list of launches of one
 *     forward call, recursions unrolled and calls inlined, with every buffer
 *     placed in one arena, the KV stores, and count slots for the row counts
 *     that routing decides on the device;
 *   - PTX and a cubin for --cuda-arch, compiled with NVRTC.
 *
 *   mor_cuda_opts o; mor_cuda_opts_default(&o);
 *   mor_cuda_prog *p = mor_cuda_plan(module, &o, &err);   // plan + source
 *   mor_cuda_nvrtc(p, &err);                              // PTX + cubin
 *   mor_cuda_write_plan(p, &buf);                         // serialized plan
 *   mor_cuda_prog_free(p);
 *
 * No text from the model (names of weights, caches, the module) reaches the
 * source: kernel names are generated, and the names shown in comments are
 * reduced to [A-Za-z0-9_.-] with everything else hex-escaped. */
#ifndef MOR_CUDA_H
#define MOR_CUDA_H
#include <stdint.h>
#include "ir/ir.h"

typedef struct mor_cuda_opts {
  const char *arch;         /* "sm_90" (default) or "sm_80", "sm_86", "sm_89", ... */
  int64_t max_tokens;       /* tokens per forward call (0: max_position_embeddings) */
  int mma;                  /* 1: BF16 tensor-core GEMMs for bf16 weights (default); 0: f32 SIMT only */
  int weights_dtype;        /* -1 as stored (f16 becomes f32), MOR_F32 or MOR_BF16: matmul weights on the device */
  int gemv_max_t;           /* calls of at most this many tokens use the GEMV/decode kernels (default 8) */
} mor_cuda_opts;

void mor_cuda_opts_default(mor_cuda_opts *o);

typedef struct mor_cuda_prog mor_cuda_prog;

/* Plan the module's `forward` and generate its CUDA source. */
mor_cuda_prog *mor_cuda_plan(const mor_module *m, const mor_cuda_opts *o, mor_err *err);
void mor_cuda_prog_free(mor_cuda_prog *p);

/* The generated CUDA C source (NUL-terminated, owned by p). */
const char *mor_cuda_source(const mor_cuda_prog *p);

/* Compile the source with NVRTC for opts.arch. Failures give the program
 * log and the kernel(s) it concerns. */
int mor_cuda_nvrtc(mor_cuda_prog *p, mor_err *err);
const char *mor_cuda_ptx(const mor_cuda_prog *p);           /* after mor_cuda_nvrtc */
const void *mor_cuda_cubin(const mor_cuda_prog *p, size_t *size);

/* The launch plan in readable form (one line per step). */
void mor_cuda_print_plan(const mor_cuda_prog *p, mor_buf *b);

/* The weights the plan binds, in plan order, with the device format each
 * is converted to (MOR_F32 or MOR_BF16) and its offset in the weight buffer. */
int64_t mor_cuda_n_weights(const mor_cuda_prog *p);
const char *mor_cuda_weight(const mor_cuda_prog *p, int64_t i, mor_dtype *dev_dtype, uint64_t *offset,
                            uint64_t *bytes);
uint64_t mor_cuda_weights_bytes(const mor_cuda_prog *p);

/* Serialize the plan (with the PTX and cubin) in the format of
 * runtime/cuda_plan.h. tokenizer: tokenizer.json bytes to embed, or NULL. */
void mor_cuda_write_plan(const mor_cuda_prog *p, const char *tokenizer, size_t tokenizer_len, mor_buf *out);

/* Facts for reports and tests. */
typedef struct mor_cuda_info {
  int64_t n_steps, n_kernels, arena_bytes, kv_bytes, n_kv, weights_bytes;
} mor_cuda_info;
void mor_cuda_get_info(const mor_cuda_prog *p, mor_cuda_info *info);

/* A name from a model file made safe for a C comment: [A-Za-z0-9_.-] kept,
 * every other byte written as \xHH. Returns buf (cut to n bytes). */
const char *mor_cuda_comment_name(const char *s, char *buf, size_t n);

#endif

/* llvm.h: the LLVM backend. It lowers a (planned or high-level) IR module to
 * LLVM IR through the LLVM 19 C API: one instance function per op taking a
 * work range [begin, end) that the runtime's thread pool splits, calling the
 * kernel library (backend/llvm/kernels, C compiled to bitcode at build time
 * and inlined with constant shapes), and one LLVM function per IR function
 * that sequences them (recur regions become loops over the depth). The
 * module also carries a morrt_desc (runtime/morrt_abi.h) that libmorrt uses
 * to bind weights, allocate KV caches and the arena, and call `forward`.
 *
 * Ahead of time:
 *   mor_llvm_module *lm = mor_llvm_compile(module, &opts, &err);
 *   mor_llvm_write(lm, MOR_EMIT_OBJ, "model.o", &err);
 *   mor_llvm_module_free(lm);
 *
 * In process (ORC LLJIT), with the same interface as backend/ref/ref.h:
 *   mor_llvm_jit *j = mor_llvm_jit_new(module, weights, &opts, &err);
 *   mor_llvm_seq *s = mor_llvm_seq_new(j);
 *   mor_llvm_forward(j, s, tokens, T, logits, depths, &err);
 *   mor_llvm_seq_free(s); mor_llvm_jit_free(j);
 *
 * Numerics: f32 everywhere; matmul and attention accumulate in f32 (8-wide
 * vectors), rmsnorm's mean of squares, rope's angles and the router in
 * double, as the reference interpreter does. Results match the reference
 * within f32 rounding (tests use 1e-4 * max(1, max|logit|)). */
#ifndef MOR_LLVM_H
#define MOR_LLVM_H
#include <stdint.h>
#include "frontend/model.h"
#include "ir/ir.h"

typedef struct mor_llvm_opts {
  const char *triple;         /* NULL: the host's */
  const char *cpu;            /* NULL: the host CPU (for the host triple) or "generic" */
  const char *features;       /* NULL: the host CPU's features (host triple) or "" */
  int opt_level;              /* 0..3; mor_llvm_opts_default gives 3 */
  const char *name;           /* C identifier prefix of exported symbols (NULL: "mor") */
  int main_alias;             /* also export the descriptor as morrt_main_model (executables) */
  int64_t max_tokens;         /* cap on tokens per forward call (0: the module's bound) */
  const char *weights_file;   /* basename recorded as the weights beside the output, or NULL */
  const char *embed_weights;  /* safetensors file whose bytes are embedded (.incbin), or NULL */
  const char *embed_tokenizer;/* tokenizer.json embedded, or NULL */
  int threads;                /* JIT: pool threads (0: number of cores) */
  int weights_format;         /* MORRT_FMT_* of matmul weights (0: f32); see mor_llvm_weights_format */
  int bf16_dot;               /* bf16 matmul weights: prefill GEMMs on AVX512-BF16, activations rounded to
                                 bf16; the target's features must include +avx512bf16 */
} mor_llvm_opts;

/* "f32", "bf16", "f16", "q8" -> MORRT_FMT_* (-1: unknown). */
int mor_llvm_weights_format(const char *name);

void mor_llvm_opts_default(mor_llvm_opts *o);
/* 1 when triple (normalized) is the host's */
int mor_llvm_is_host_triple(const char *triple);
/* 0 when LLVM knows the target, --cpu (a name, or "native" on the host
 * target) and --features of o, and --bf16-dot (bf16_dot) has bf16 weights
 * and a target with +avx512bf16; else -1 with err saying what is wrong. */
int mor_llvm_check_target(const mor_llvm_opts *o, mor_err *err);

typedef enum { MOR_EMIT_LLVM, MOR_EMIT_ASM, MOR_EMIT_OBJ } mor_emit_kind;

/* A compiled and optimized module with its target machine. */
typedef struct mor_llvm_module mor_llvm_module;

mor_llvm_module *mor_llvm_compile(const mor_module *m, const mor_llvm_opts *o, mor_err *err);
int mor_llvm_write(mor_llvm_module *lm, mor_emit_kind kind, const char *path, mor_err *err);
void mor_llvm_module_free(mor_llvm_module *lm);

/* Facts about the compiled model (for bundle headers and reports). */
typedef struct mor_llvm_info {
  const char *triple, *cpu;
  int64_t arena_bytes;        /* scratch of one forward call */
  int64_t kv_bytes;           /* KV storage of one sequence at full capacity */
  int64_t n_kv_stores;
  int64_t n_weights;
  int64_t max_tokens;
  int64_t n_instances;        /* kernel instance functions generated */
} mor_llvm_info;
void mor_llvm_get_info(const mor_llvm_module *lm, mor_llvm_info *info);

/* ---- JIT ------------------------------------------------------------------ */
typedef struct mor_llvm_jit mor_llvm_jit;
typedef struct mor_llvm_seq mor_llvm_seq;

/* Compile m for the host and bind it to w (tensors by name; dtypes and
 * shapes checked). w must outlive the jit. */
mor_llvm_jit *mor_llvm_jit_new(const mor_module *m, const mor_weights *w, const mor_llvm_opts *o, mor_err *err);
void mor_llvm_jit_free(mor_llvm_jit *j);
mor_llvm_seq *mor_llvm_seq_new(mor_llvm_jit *j);
void mor_llvm_seq_free(mor_llvm_seq *s);
int64_t mor_llvm_seq_len(const mor_llvm_seq *s);
/* One forward call of T tokens at positions seq_len .. seq_len+T-1; writes
 * logits [T*V] and depths [T] (either may be NULL). Errors as mor_ref_forward. */
int mor_llvm_forward(mor_llvm_jit *j, mor_llvm_seq *s, const int32_t *tokens, int64_t T, float *logits,
                     int32_t *depths, mor_err *err);

#endif

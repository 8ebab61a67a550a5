/* ref.h: the reference interpreter. It runs IR of any stage (straight from
 * lowering, or after any pass) with plain loops, and is the oracle every
 * pass and every other backend is checked against.
 *
 * Usage:
 *   mor_ref *r = mor_ref_new(module, weights, &err);   // bind + decode weights
 *   mor_ref_seq *s = mor_ref_seq_new(r);                // one sequence's KV caches
 *   mor_ref_forward(r, s, prompt, n, logits, depths, &err);      // prefill
 *   mor_ref_forward(r, s, &next, 1, logits, depths, &err);       // decode
 *   mor_ref_seq_free(s); mor_ref_free(r);
 *
 * Numerics (documented so other backends know what they are compared to):
 * weights are decoded to f32 once at bind time; every value is f32, i32 or
 * i64. Dot products (matmul, router, attention scores) accumulate in double
 * and round once to f32. rmsnorm takes the mean of squares in double and
 * applies w * (x * (float)rsqrt(mean + eps)) in f32. rope angles are
 * pos * theta^(-2i/head_dim) in double, cos/sin rounded to f32. attention's
 * softmax (max subtracted) and its weighted sum of V are in double. silu,
 * sigmoid, tanh and gelu(erf) are evaluated in double and rounded to f32.
 * alpha * s (top_k ranking, token-choice argmax, gate) is an f32 product.
 *
 * The module and the weights must outlive the mor_ref, and the module must
 * not change while it is bound (the per-block plans are made at bind time).
 * f32 tensors that are 4-byte aligned are used in place (no copy); others
 * are decoded into owned buffers. A mor_ref is read-only once made, so
 * calls on different sequences may run in different threads. A sequence
 * must only be used with the mor_ref that made it. */
#ifndef MOR_REF_H
#define MOR_REF_H
#include <stdint.h>
#include "ir/ir.h"
#include "frontend/model.h"

typedef struct mor_ref mor_ref;         /* a module bound to weights */
typedef struct mor_ref_seq mor_ref_seq; /* one sequence's KV caches */

/* Bind every MOR_GLOBAL_WEIGHT global to the tensor of the same name,
 * checking its dtype and shape equal the global's type (errors name the
 * tensor). The module is verified first. NULL + err on failure. */
mor_ref *mor_ref_new(const mor_module *m, const mor_weights *w, mor_err *err);
void mor_ref_free(mor_ref *r);

mor_ref_seq *mor_ref_seq_new(mor_ref *r);
void mor_ref_seq_free(mor_ref_seq *s);
int64_t mor_ref_seq_len(const mor_ref_seq *s); /* positions consumed so far */

/* One forward call of T tokens at positions pos0..pos0+T-1 (pos0 =
 * mor_ref_seq_len(s)). Runs function "forward" (args: tokens i32[T],
 * pos i32[T]; results: logits f32[T,V], depths i32[T]) and writes logits
 * [T*V] and depths [T] (either may be NULL). Returns 0, or -1 with err
 * filled: token id out of range, position >= max_position_embeddings, top_k
 * selection on a sequence that already has cached positions, KV cache
 * capacity exceeded, or a malformed module. On error the sequence is left
 * as it was before the call (cache entries written by it are dropped). */
int mor_ref_forward(mor_ref *r, mor_ref_seq *s, const int32_t *tokens, int64_t T, float *logits, int32_t *depths,
                    mor_err *err);

/* ---- generic entry (tests, pass-by-pass differential checks) ----------- */

/* A tensor passed to or returned from mor_ref_call. */
typedef struct mor_ref_tensor {
  mor_dtype dtype;               /* MOR_F32, MOR_I32 or MOR_I64 */
  int rank;
  int64_t shape[MOR_MAX_RANK];
  void *data;                    /* row-major; results: malloc'ed, owned by the caller */
} mor_ref_tensor;

/* Run function `func` with the given arguments (copied in; their dtype and
 * shape are checked against the function's argument types). `s` holds the
 * KV caches the function reads and writes; it may be NULL when the function
 * has no KV ops. Results are allocated; free them with
 * mor_ref_tensor_free. Unlike mor_ref_forward this does not advance
 * mor_ref_seq_len. On error no result is returned and the caches are
 * restored. */
int mor_ref_call(mor_ref *r, mor_ref_seq *s, const char *func, int n_args, const mor_ref_tensor *args, int n_results,
                 mor_ref_tensor *results, mor_err *err);
void mor_ref_tensor_free(mor_ref_tensor *t);

/* Number of entries in the KV cache global `name` of a sequence (an alias
 * reports its target's entries); -1 if there is no such KV global. */
int64_t mor_ref_seq_cache_len(const mor_ref_seq *s, const char *name);

#endif

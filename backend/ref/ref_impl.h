/* ref_impl.h: internals of the reference interpreter shared by ref.c (binding,
 * sequences, the block/recur interpreter) and ops.c (one function per op).
 * Not installed; nothing outside backend/ref includes it. */
#ifndef MOR_REF_IMPL_H
#define MOR_REF_IMPL_H
#include "backend/ref/ref.h"

/* A runtime tensor: concrete shape, data owned by the value table. */
typedef struct mor_rt {
  int defined;                   /* set once the value has been computed */
  mor_dtype dt;                  /* f32, i32 or i64 */
  int rank;
  int64_t shape[MOR_MAX_RANK];
  int64_t numel;
  void *data;
} mor_rt;

/* One KV cache's storage: a growable list of (position, K row, V row). */
typedef struct mor_kvstore {
  int64_t n, alloc;              /* entries, allocated entries */
  int64_t capacity;              /* the global's dim 0 (its bound when symbolic) */
  int64_t width;                 /* kv_heads * head_dim */
  int32_t *pos;
  float *k, *v;                  /* [alloc, width] each */
} mor_kvstore;

/* The interpretation plan of one block: its ops in order, and after each
 * op the values of this block whose last use it is (freed there). */
typedef struct mor_bplan {
  const mor_block *b;
  int n_ops;
  mor_op **ops;
  int *free_off;                 /* n_ops + 1 offsets into free_ids */
  int *free_ids;
} mor_bplan;

struct mor_ref {
  const mor_module *m;
  const mor_weights *w;
  const float **wdata;           /* per global: f32 weight data, NULL for KV globals */
  float **owned;                 /* per global: decoded buffer we free, or NULL */
  int *store_of;                 /* per global: KV store index (aliases resolved), -1 for weights */
  int n_stores;
  int64_t *store_cap, *store_width;
  int n_plans;
  mor_bplan *plans;
  int64_t max_pos, vocab;        /* module attrs, -1 if absent */
};

struct mor_ref_seq {
  mor_ref *r;
  int64_t len;
  int n_stores;
  mor_kvstore *stores;
};

/* State of one call. */
typedef struct mor_exec {
  mor_ref *r;
  mor_ref_seq *s;                /* may be NULL */
  mor_err *err;
  const mor_func *f;
  mor_rt *vals;                  /* indexed by mor_value.id */
  int had_cache;                 /* the sequence had cached positions when the call began */
} mor_exec;

/* ref.c */
int mor_ref_fail(mor_exec *ex, const mor_op *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Operand i, which must be computed, of dtype dt (any when dt < 0) and rank
 * `rank` (-1: any rank >= 1, -2: any rank); NULL after reporting an error. */
mor_rt *mor_ref_arg(mor_exec *ex, const mor_op *op, int i, int dt, int rank);
/* Allocate result i with the given dtype and shape (contents undefined). */
mor_rt *mor_ref_res(mor_exec *ex, const mor_op *op, int i, mor_dtype dt, int rank, const int64_t *shape);
/* The optional depth operand at index i (i64 scalar): its value, 0 when
 * the op has no operand i, -1 after reporting an error. */
int64_t mor_ref_depth(mor_exec *ex, const mor_op *op, int i);
/* The f32 data of the weight global named by symbol attribute `attr`
 * (for list attributes, entry `idx`); checks its rank and, where the
 * expected dim is >= 0, its dims. NULL after reporting an error. */
const float *mor_ref_weight(mor_exec *ex, const mor_op *op, const char *attr, int idx, int rank, const int64_t *dims,
                            const mor_global **gout);
/* The KV store named by entry idx of the symbol-list attribute `attr`.
 * *none is set when the entry is @none. NULL after an error or for none. */
mor_kvstore *mor_ref_cache(mor_exec *ex, const mor_op *op, const char *attr, int64_t idx, int *none,
                           const mor_global **gout);
/* Attribute readers that report a missing or mistyped attribute. */
int mor_ref_attr_int(mor_exec *ex, const mor_op *op, const char *name, int64_t *out);
int mor_ref_attr_float(mor_exec *ex, const mor_op *op, const char *name, double *out);
const char *mor_ref_attr_str(mor_exec *ex, const mor_op *op, const char *name);

/* ops.c: execute one non-control op. */
int mor_ref_exec_op(mor_exec *ex, const mor_op *op);

#endif

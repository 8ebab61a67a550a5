/* plan_memory.c: one arena per function for every tensor an op produces.
 * Sizes are at the upper bounds of the symbols; a value lives from the op
 * that defines it to its last use (a use inside a recur region keeps it
 * alive to the end of the recur). Offsets are chosen best-fit, in program
 * order, as in ggml-alloc: an op's results never overlap its operands.
 * Results: attribute `mem = [offset, ...]` on every op with results
 * (`region_mem` on recur for its region arguments) and module attributes
 * `arena_<func>` (peak bytes) and `arena_noreuse_<func>` (sum of sizes). */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

#define MEM_ALIGN 64

typedef struct interval {
  mor_value *v;
  int def, last;   /* positions */
  int64_t size, offset;
} interval;

typedef struct planner {
  interval *iv;
  int n, cap;
  int *by_id;      /* value id -> interval index, -1 */
  int pos;
} planner;

static int64_t value_bytes(const mor_value *v) {
  int64_t n = mor_type_max_numel(&v->type) * mor_dtype_size(v->type.dtype);
  if (n < 1) n = 1;
  return (n + MEM_ALIGN - 1) / MEM_ALIGN * MEM_ALIGN;
}

static void add_value(planner *P, mor_value *v, int def) {
  if (P->n == P->cap) {
    P->cap = P->cap ? P->cap * 2 : 64;
    P->iv = mor_xrealloc(P->iv, sizeof *P->iv * (size_t)P->cap);
  }
  interval *I = &P->iv[P->n];
  I->v = v;
  I->def = I->last = def;
  I->size = value_bytes(v);
  I->offset = -1;
  P->by_id[v->id] = P->n++;
}

static void use_value(planner *P, const mor_value *v, int at) {
  int k = P->by_id[v->id];
  if (k >= 0 && P->iv[k].last < at) P->iv[k].last = at;
}

/* Positions: ops in order; a recur takes a start and an end position around
 * its region, and values from outside it used inside live to its end. */
static void number(planner *P, mor_block *b) {
  for (mor_op *op = b->first; op; op = op->next) {
    int at = P->pos++;
    if (op->region) {
      for (int i = 0; i < op->region->n_args; i++) add_value(P, op->region->args[i], at);
      number(P, op->region);
      int end = P->pos++;
      /* carried arguments and values from outside live through the region */
      for (int i = 0; i < op->region->n_args; i++) use_value(P, op->region->args[i], end);
      for (int i = 0; i < op->n_operands; i++) use_value(P, op->operands[i], end);
      for (int i = 0; i < op->n_results; i++) add_value(P, op->results[i], end);
      /* values defined before the recur and used inside it */
      for (int k = 0; k < P->n; k++)
        if (P->iv[k].def < at && P->iv[k].last > at && P->iv[k].last < end) P->iv[k].last = end;
      continue;
    }
    for (int i = 0; i < op->n_operands; i++) use_value(P, op->operands[i], at);
    for (int i = 0; i < op->n_results; i++) add_value(P, op->results[i], at);
  }
}

typedef struct freeblk {
  int64_t off, size;
} freeblk;

typedef struct arena {
  freeblk *f;
  int n, cap;
  int64_t top, peak;
} arena;

static int64_t arena_alloc(arena *A, int64_t size) {
  int best = -1;
  for (int i = 0; i < A->n; i++)
    if (A->f[i].size >= size && (best < 0 || A->f[i].size < A->f[best].size)) best = i;
  if (best >= 0) {
    int64_t off = A->f[best].off;
    A->f[best].off += size;
    A->f[best].size -= size;
    if (A->f[best].size == 0) {
      memmove(&A->f[best], &A->f[best + 1], sizeof *A->f * (size_t)(A->n - best - 1));
      A->n--;
    }
    return off;
  }
  /* grow the top, reusing a free block that ends there */
  int64_t off = A->top;
  if (A->n && A->f[A->n - 1].off + A->f[A->n - 1].size == A->top) {
    off = A->f[A->n - 1].off;
    A->n--;
  }
  A->top = off + size;
  if (A->top > A->peak) A->peak = A->top;
  return off;
}

static void arena_free(arena *A, int64_t off, int64_t size) {
  int i = 0;
  while (i < A->n && A->f[i].off < off) i++;
  if (A->n == A->cap) {
    A->cap = A->cap ? A->cap * 2 : 32;
    A->f = mor_xrealloc(A->f, sizeof *A->f * (size_t)A->cap);
  }
  memmove(&A->f[i + 1], &A->f[i], sizeof *A->f * (size_t)(A->n - i));
  A->f[i].off = off;
  A->f[i].size = size;
  A->n++;
  /* merge with the neighbours */
  if (i + 1 < A->n && A->f[i].off + A->f[i].size == A->f[i + 1].off) {
    A->f[i].size += A->f[i + 1].size;
    memmove(&A->f[i + 1], &A->f[i + 2], sizeof *A->f * (size_t)(A->n - i - 2));
    A->n--;
  }
  if (i > 0 && A->f[i - 1].off + A->f[i - 1].size == A->f[i].off) {
    A->f[i - 1].size += A->f[i].size;
    memmove(&A->f[i], &A->f[i + 1], sizeof *A->f * (size_t)(A->n - i - 1));
    A->n--;
  }
  /* a free block at the top lowers the top */
  if (A->n && A->f[A->n - 1].off + A->f[A->n - 1].size == A->top) {
    A->top = A->f[A->n - 1].off;
    A->n--;
  }
}

static int by_def(const void *a, const void *b) {
  const interval *x = *(interval *const *)a, *y = *(interval *const *)b;
  if (x->def != y->def) return x->def < y->def ? -1 : 1;
  return x->v->id < y->v->id ? -1 : x->v->id > y->v->id;
}

static void annotate(mor_module *m, mor_block *b, planner *P) {
  for (mor_op *op = b->first; op; op = op->next) {
    if (op->n_results) {
      int64_t *offs = mor_xcalloc((size_t)op->n_results, sizeof *offs);
      for (int i = 0; i < op->n_results; i++) offs[i] = P->iv[P->by_id[op->results[i]->id]].offset;
      mor_op_set_ints(m, op, "mem", op->n_results, offs);
      free(offs);
    }
    if (op->region) {
      int n = op->region->n_args;
      int64_t *offs = mor_xcalloc((size_t)n + 1, sizeof *offs);
      for (int i = 0; i < n; i++) offs[i] = P->iv[P->by_id[op->region->args[i]->id]].offset;
      mor_op_set_ints(m, op, "region_mem", n, offs);
      free(offs);
      annotate(m, op->region, P);
    }
  }
}

/* Plan one function: offsets into `mem` attributes, peak and sum of sizes. */
static void plan_func(mor_module *m, mor_func *f, int64_t *peak, int64_t *noreuse) {
  planner P = {0};
  P.by_id = mor_xmalloc(sizeof(int) * (size_t)(m->next_value_id + 1));
  for (int i = 0; i <= m->next_value_id; i++) P.by_id[i] = -1;
  number(&P, f->body);
  interval **order = mor_xcalloc((size_t)P.n + 1, sizeof *order);
  for (int i = 0; i < P.n; i++) order[i] = &P.iv[i];
  qsort(order, (size_t)P.n, sizeof *order, by_def);
  interval **by_last = mor_xcalloc((size_t)P.n + 1, sizeof *by_last);
  arena A = {0};
  int64_t sum = 0;
  /* sweep positions: allocate what is defined at p, then free what dies at p */
  int k = 0, n_live = 0;
  for (int p = 0; p < P.pos; p++) {
    for (; k < P.n && order[k]->def == p; k++) {
      order[k]->offset = arena_alloc(&A, order[k]->size);
      sum += order[k]->size;
      by_last[n_live++] = order[k];
    }
    for (int i = 0; i < n_live;) {
      if (by_last[i]->last <= p) {
        arena_free(&A, by_last[i]->offset, by_last[i]->size);
        by_last[i] = by_last[--n_live];
      } else {
        i++;
      }
    }
  }
  annotate(m, f->body, &P);
  *peak = A.peak;
  *noreuse = sum;
  free(A.f);
  free(order);
  free(by_last);
  free(P.iv);
  free(P.by_id);
}

int mor_pass_plan_memory(mor_module *m, int *changed, mor_err *err) {
  (void)err;
  mor_buf before = {0}, after = {0};
  mor_print_module(&before, m);
  for (int f = 0; f < m->n_funcs; f++) {
    int64_t peak, noreuse;
    plan_func(m, m->funcs[f], &peak, &noreuse);
    char name[256];
    snprintf(name, sizeof name, "arena_%s", m->funcs[f]->name);
    for (char *c = name; *c; c++)
      if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) *c = '_';
    mor_set_mattr_int(m, name, peak);
    snprintf(name, sizeof name, "arena_noreuse_%s", m->funcs[f]->name);
    for (char *c = name; *c; c++)
      if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) *c = '_';
    mor_set_mattr_int(m, name, noreuse);
  }
  mor_print_module(&after, m);
  *changed = before.len != after.len || memcmp(before.data, after.data, before.len) != 0;
  mor_buf_free(&before);
  mor_buf_free(&after);
  return 0;
}

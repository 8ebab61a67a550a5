/* memplan.c: arena offsets for one function's tensors. Ops are numbered in
 * program order (a recur op gets an index before its region and one after
 * it); every buffer lives from its definition to its last use (a use inside
 * a region counts at the end of the region's op, since the region runs
 * several times), and buffers are placed first-fit, largest first, so that
 * buffers alive at the same time never overlap. Sizes are upper bounds of
 * the types (symbols capped at max_tokens). */
#include "backend/llvm/llvm_impl.h"
#include <stdlib.h>
#include <string.h>

int64_t mp_dim(const mor_module *m, mor_dim d, int64_t max_tokens) {
  if (d.sym < 0) return d.n;
  int64_t b = d.sym < m->n_syms ? m->syms[d.sym].bound : d.n;
  return max_tokens > 0 && b > max_tokens ? max_tokens : b;
}

static int64_t round64(int64_t n) { return (n + 63) / 64 * 64; }

int64_t mp_type_bytes(const mor_module *m, const mor_type *t, int64_t max_tokens) {
  int64_t n = mor_dtype_size(t->dtype);
  for (int i = 0; i < t->rank; i++) n *= mp_dim(m, t->dims[i], max_tokens);
  return round64(n);
}

static const mor_global *glob_attr(const mor_module *m, const mor_op *op, const char *name) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return NULL;
  if (a->kind == MOR_ATTR_SYM) return mor_find_global(m, a->s);
  if (a->kind == MOR_ATTR_SYMS)
    for (int i = 0; i < a->n; i++)
      if (strcmp(a->syms[i], "none") != 0) return mor_find_global(m, a->syms[i]);
  return NULL;
}

static int64_t gdim(const mor_global *g, int i) { return g && i < g->type.rank ? g->type.dims[i].n : 0; }

int mp_op_temps(const mor_module *m, const mor_op *op, int64_t mt, int64_t *sizes) {
  switch (op->code) {
  case MOR_OP_ROUTER: {
    const mor_type *x = &op->operands[0]->type;
    const mor_global *w1 = glob_attr(m, op, "weights"), *w2 = glob_attr(m, op, "weights2");
    const char *kind = mor_op_str(op, "kind");
    int mlp = kind && !strcmp(kind, "mlp");
    int64_t D = x->rank == 2 ? x->dims[1].n : 0, hid = mlp ? gdim(w1, 0) : 0, out = mlp ? gdim(w2, 0) : gdim(w1, 0);
    sizes[0] = round64(mp_dim(m, x->dims[0], mt) * (D + hid + out) * 4);
    return 1;
  }
  case MOR_OP_SELECT: {
    const char *mode = mor_op_str(op, "mode");
    if (!mode || strcmp(mode, "top_k") != 0) return 0;
    int64_t A = mp_dim(m, op->operands[1]->type.dims[0], mt), T = mp_dim(m, op->operands[0]->type.dims[0], mt);
    sizes[0] = round64(2 * A * 8 + T);
    return 1;
  }
  case MOR_OP_NORM_MATMUL: sizes[0] = mp_type_bytes(m, &op->operands[0]->type, mt); return 1;
  case MOR_OP_QKV: {
    const mor_type *x = &op->operands[0]->type;
    int64_t M = mp_dim(m, op->results[0]->type.dims[0], mt), D = x->dims[1].n;
    int64_t Q = op->results[0]->type.dims[1].n;
    const mor_global *wk = glob_attr(m, op, "wk");
    int64_t KW = gdim(wk, 0);
    sizes[0] = round64(M * D * 4);  /* gathered rows */
    sizes[1] = round64(M * 4);      /* their positions */
    sizes[2] = round64(M * D * 4);  /* normed */
    sizes[3] = round64(M * Q * 4);  /* q before rope */
    if (!wk) return 4;
    sizes[4] = round64(M * KW * 4); /* k before rope */
    sizes[5] = round64(M * KW * 4); /* k */
    sizes[6] = round64(M * KW * 4); /* v */
    return 7;
  }
  case MOR_OP_GATE_UP: {
    const mor_global *wg = glob_attr(m, op, "wg");
    int64_t M = mp_dim(m, op->operands[0]->type.dims[0], mt), F = gdim(wg, 0);
    sizes[0] = mp_type_bytes(m, &op->operands[0]->type, mt);
    sizes[1] = round64(M * F * 4);
    sizes[2] = round64(M * F * 4);
    return 3;
  }
  case MOR_OP_MATMUL_STORE: {
    const mor_global *w = glob_attr(m, op, "weight");
    sizes[0] = round64(mp_dim(m, op->operands[0]->type.dims[0], mt) * gdim(w, 0) * 4);
    return 1;
  }
  default: return 0;
  }
}

/* ---- op table -------------------------------------------------------------- */

static size_t hash_ptr(const void *p) {
  uintptr_t x = (uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x;
}

static mp_op *op_slot(mp_plan *p, const mor_op *op) {
  size_t mask = (size_t)p->n_ops - 1, i = hash_ptr(op) & mask;
  while (p->ops[i].op && p->ops[i].op != op) i = (i + 1) & mask;
  return &p->ops[i];
}

const mp_op *mp_find(const mp_plan *p, const mor_op *op) {
  if (!p->n_ops) return NULL;
  const mp_op *s = op_slot((mp_plan *)p, op);
  return s->op ? s : NULL;
}

static int count_ops(const mor_block *b) {
  int n = 0;
  for (const mor_op *o = b->first; o; o = o->next) n += 1 + (o->region ? count_ops(o->region) : 0);
  return n;
}

static int add_buf(mp_plan *p, int64_t size, int64_t start, int64_t end) {
  if (p->n_bufs == p->cap_bufs) {
    p->cap_bufs = p->cap_bufs ? 2 * p->cap_bufs : 64;
    p->bufs = mor_xrealloc(p->bufs, sizeof *p->bufs * (size_t)p->cap_bufs);
  }
  mp_buf *b = &p->bufs[p->n_bufs];
  b->size = size < 64 ? 64 : size;
  b->start = start;
  b->end = end;
  b->off = -1;
  return p->n_bufs++;
}

typedef struct walker {
  mp_plan *p;
  const mor_module *m;
  int64_t mt, next;
  int64_t *last;  /* by value id: last use */
  int64_t *defat; /* by value id: definition index */
} walker;

static void number(walker *w, const mor_block *b) {
  for (const mor_op *o = b->first; o; o = o->next) {
    mp_op *s = op_slot(w->p, o);
    s->op = o;
    s->idx = w->next++;
    for (int i = 0; i < o->n_results; i++) w->defat[o->results[i]->id] = w->last[o->results[i]->id] = s->idx;
    if (o->region) {
      for (int i = 0; i < o->region->n_args; i++)
        w->defat[o->region->args[i]->id] = w->last[o->region->args[i]->id] = s->idx;
      number(w, o->region);
    }
    s->end = o->region ? w->next++ : s->idx;
  }
}

/* The block a value is defined in. */
static const mor_block *def_block(const mor_value *v) { return v->def ? v->def->parent : v->block; }

static void uses(walker *w, const mor_block *b) {
  for (const mor_op *o = b->first; o; o = o->next) {
    for (int i = 0; i < o->n_operands; i++) {
      const mor_value *v = o->operands[i];
      const mor_block *db = def_block(v);
      const mor_op *u = o;
      int lifted = 0;
      while (u->parent != db && u->parent && u->parent->parent_op) {
        u = u->parent->parent_op;
        lifted = 1;
      }
      const mp_op *s = mp_find(w->p, u);
      int64_t at = lifted ? s->end : s->idx;
      if (at > w->last[v->id]) w->last[v->id] = at;
    }
    if (o->region) uses(w, o->region);
  }
}

static void buffers(walker *w, const mor_block *b) {
  mp_plan *p = w->p;
  const mor_module *m = w->m;
  for (const mor_op *o = b->first; o; o = o->next) {
    mp_op *s = op_slot(p, o);
    if (o->code == MOR_OP_RECUR) {
      s->first_buf = p->n_bufs;
      s->n_bufs = 2 * o->n_results;
      for (int i = 0; i < o->n_results; i++) {
        int64_t sz = mp_type_bytes(m, &o->results[i]->type, w->mt);
        const mor_type *ts[3] = {i < o->n_operands ? &o->operands[i]->type : NULL,
                                 i + 1 < o->region->n_args ? &o->region->args[i + 1]->type : NULL, NULL};
        const mor_op *y = o->region->last;
        if (y && y->code == MOR_OP_YIELD && i < y->n_operands) ts[2] = &y->operands[i]->type;
        for (int k = 0; k < 3; k++)
          if (ts[k] && mp_type_bytes(m, ts[k], w->mt) > sz) sz = mp_type_bytes(m, ts[k], w->mt);
        int64_t end = s->end > w->last[o->results[i]->id] ? s->end : w->last[o->results[i]->id];
        add_buf(p, sz, s->idx, end);
        add_buf(p, sz, s->idx, end);
      }
      buffers(w, o->region);
      continue;
    }
    for (int i = 0; i < o->n_results; i++) {
      const mor_value *v = o->results[i];
      if (v->type.rank == 0) continue;
      p->val_buf[v->id] = add_buf(p, mp_type_bytes(m, &v->type, w->mt), s->idx, w->last[v->id]);
    }
    int64_t sizes[16];
    int nt = mp_op_temps(m, o, w->mt, sizes);
    s->first_buf = p->n_bufs;
    s->n_bufs = nt;
    for (int k = 0; k < nt; k++) add_buf(p, sizes[k], s->idx, s->idx);
  }
}

static int by_size_desc(const void *a, const void *b) {
  const mp_buf *x = *(mp_buf *const *)a, *y = *(mp_buf *const *)b;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  return (x->start > y->start) - (x->start < y->start);
}

static int by_off(const void *a, const void *b) {
  const mp_buf *x = *(mp_buf *const *)a, *y = *(mp_buf *const *)b;
  return (x->off > y->off) - (x->off < y->off);
}

static void place(mp_plan *p) {
  int n = p->n_bufs;
  mp_buf **order = mor_xcalloc((size_t)n + 1, sizeof *order), **live = mor_xcalloc((size_t)n + 1, sizeof *live);
  for (int i = 0; i < n; i++) order[i] = &p->bufs[i];
  qsort(order, (size_t)n, sizeof *order, by_size_desc);
  p->frame_bytes = 0;
  for (int i = 0; i < n; i++) {
    mp_buf *b = order[i];
    int nl = 0;
    for (int j = 0; j < i; j++)
      if (order[j]->start <= b->end && b->start <= order[j]->end) live[nl++] = order[j];
    qsort(live, (size_t)nl, sizeof *live, by_off);
    int64_t off = 0;
    for (int j = 0; j < nl; j++) {
      if (live[j]->off >= off + b->size) break;
      if (live[j]->off + live[j]->size > off) off = live[j]->off + live[j]->size;
    }
    b->off = off;
    if (off + b->size > p->frame_bytes) p->frame_bytes = off + b->size;
  }
  free(order);
  free(live);
}

int mp_plan_func(mp_plan *p, const mor_module *m, const mor_func *f, int64_t max_tokens, mor_err *err) {
  (void)err;
  memset(p, 0, sizeof *p);
  int nops = count_ops(f->body), cap = 16;
  while (cap < 2 * nops) cap *= 2;
  p->n_ops = cap;
  p->ops = mor_xcalloc((size_t)cap, sizeof *p->ops);
  int nv = m->next_value_id + 1;
  p->val_buf = mor_xmalloc(sizeof(int) * (size_t)nv);
  for (int i = 0; i < nv; i++) p->val_buf[i] = -1;
  walker w = {.p = p, .m = m, .mt = max_tokens};
  w.last = mor_xcalloc((size_t)nv, sizeof *w.last);
  w.defat = mor_xcalloc((size_t)nv, sizeof *w.defat);
  number(&w, f->body);
  uses(&w, f->body);
  buffers(&w, f->body);
  place(p);
  free(w.last);
  free(w.defat);
  return 0;
}

void mp_free(mp_plan *p) {
  if (!p) return;
  free(p->bufs);
  free(p->val_buf);
  free(p->ops);
  memset(p, 0, sizeof *p);
}

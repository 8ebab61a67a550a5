/* fuse_shared_block.c: group the ops of every decoder layer into fused
 * kernels (norm prologues, RoPE + KV-write epilogue, gate/up with SiLU*mul,
 * residual and MoR-gate epilogues, gathers/scatters as indexed loads and
 * stores), then outline the shared block: the copies of it that
 * specialize-depths made become calls of one function. See docs/passes.md. */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

typedef struct fuser {
  mor_module *m;
  mor_block *root;
  mor_err *err;
  int changed;
} fuser;

static mor_op *def_of(const mor_value *v, mor_opcode code) {
  return v->def && v->def->code == code ? v->def : NULL;
}

static int uses(fuser *F, const mor_value *v) { return mor_count_uses(F->root, v); }

/* 1 when every use of v is at or after op `at` (same block) */
static int uses_after(const mor_block *b, const mor_value *v, const mor_op *at) {
  int seen = 0;
  for (const mor_op *o = b->first; o; o = o->next) {
    if (o == at) seen = 1;
    int used = 0;
    for (int i = 0; i < o->n_operands; i++) used |= o->operands[i] == v;
    if (o->region && mor_value_has_uses(o->region, v)) used = 1;
    if (used && !seen) return 0;
  }
  return 1;
}

static void copy_attr(fuser *F, mor_op *dst, const mor_op *src, const char *from, const char *to) {
  const mor_attr *a = mor_op_attr(src, from);
  if (!a) return;
  mor_attr c;
  mor_attr_copy(F->m, &c, a);
  switch (c.kind) {
  case MOR_ATTR_INT: mor_op_set_int(F->m, dst, to, c.i); break;
  case MOR_ATTR_FLOAT: mor_op_set_float(F->m, dst, to, c.f); break;
  case MOR_ATTR_STR: mor_op_set_str(F->m, dst, to, c.s); break;
  case MOR_ATTR_SYM: mor_op_set_sym(F->m, dst, to, c.s); break;
  case MOR_ATTR_INTS: mor_op_set_ints(F->m, dst, to, c.n, c.ints); break;
  case MOR_ATTR_FLOATS: mor_op_set_floats(F->m, dst, to, c.n, c.floats); break;
  case MOR_ATTR_SYMS: mor_op_set_syms(F->m, dst, to, c.n, c.syms); break;
  }
}

static mor_op *new_before(fuser *F, mor_op *at, mor_opcode code, int n, mor_value *const *ops, mor_type t) {
  mor_op *op = mor_op_new(F->m, code, n, ops, 1, &t);
  mor_insert_before(at, op);
  copy_attr(F, op, at, "depth", "depth");
  return op;
}

static void replace_op(fuser *F, mor_op *old, mor_op *with) {
  if (old->n_results) mor_replace_uses(F->root, old->results[0], with->results[0]);
  mor_op_remove(old);
  F->changed = 1;
}

/* ---- kernel patterns -------------------------------------------------------------- */

/* kv_write(rope(a Wk), a Wv, pos) and q = rope(a Wq, pos), a = rmsnorm(x) -> qkv */
static int fuse_qkv(fuser *F, mor_op *kw) {
  if (kw->code != MOR_OP_KV_WRITE) return 0;
  mor_value *pos = kw->operands[2];
  mor_op *kr = def_of(kw->operands[0], MOR_OP_ROPE), *vm = def_of(kw->operands[1], MOR_OP_MATMUL);
  if (!kr || !vm || kr->operands[1] != pos || uses(F, kr->results[0]) != 1 || uses(F, vm->results[0]) != 1) return 0;
  mor_op *km = def_of(kr->operands[0], MOR_OP_MATMUL);
  if (!km || uses(F, km->results[0]) != 1 || km->operands[0] != vm->operands[0]) return 0;
  mor_value *a = km->operands[0];
  mor_op *norm = def_of(a, MOR_OP_RMSNORM);
  if (!norm || uses(F, a) != 3) return 0;
  /* the third use of a: q = rope(a Wq, pos) */
  mor_op *qm = NULL, *qr = NULL;
  for (mor_op *o = kw->parent->first; o; o = o->next)
    if (o->code == MOR_OP_MATMUL && o != km && o != vm && o->operands[0] == a) qm = o;
  if (!qm || uses(F, qm->results[0]) != 1) return 0;
  for (mor_op *o = kw->parent->first; o; o = o->next)
    if (o->code == MOR_OP_ROPE && o->operands[0] == qm->results[0]) qr = o;
  if (!qr || qr->operands[1] != pos || !uses_after(kw->parent, qr->results[0], kw)) return 0;
  if (mor_op_int(qr, "head_dim", 0) != mor_op_int(kr, "head_dim", -1) ||
      mor_op_float(qr, "theta", 0) != mor_op_float(kr, "theta", -1))
    return 0;
  mor_value *ops[3] = {norm->operands[0], pos, kw->n_operands == 4 ? kw->operands[3] : NULL};
  mor_op *q = new_before(F, kw, MOR_OP_QKV, kw->n_operands == 4 ? 3 : 2, ops, qr->results[0]->type);
  copy_attr(F, q, norm, "weight", "norm");
  copy_attr(F, q, norm, "eps", "eps");
  copy_attr(F, q, qm, "weight", "wq");
  copy_attr(F, q, km, "weight", "wk");
  copy_attr(F, q, vm, "weight", "wv");
  copy_attr(F, q, qr, "heads", "heads");
  copy_attr(F, q, kr, "heads", "kv_heads");
  copy_attr(F, q, qr, "head_dim", "head_dim");
  copy_attr(F, q, qr, "theta", "theta");
  copy_attr(F, q, kw, "caches", "caches");
  mor_replace_uses(F->root, qr->results[0], q->results[0]);
  mor_op_remove(kw);
  F->changed = 1;
  return 1;
}

/* rope(rmsnorm(x) Wq, pos) without K/V (recursive sharing, depth >= 1) -> qkv */
static int fuse_q(fuser *F, mor_op *qr) {
  if (qr->code != MOR_OP_ROPE) return 0;
  mor_op *qm = def_of(qr->operands[0], MOR_OP_MATMUL);
  if (!qm || uses(F, qm->results[0]) != 1) return 0;
  mor_op *norm = def_of(qm->operands[0], MOR_OP_RMSNORM);
  if (!norm || uses(F, norm->results[0]) != 1) return 0;
  mor_value *ops[2] = {norm->operands[0], qr->operands[1]};
  mor_op *q = new_before(F, qr, MOR_OP_QKV, 2, ops, qr->results[0]->type);
  copy_attr(F, q, norm, "weight", "norm");
  copy_attr(F, q, norm, "eps", "eps");
  copy_attr(F, q, qm, "weight", "wq");
  copy_attr(F, q, qr, "heads", "heads");
  copy_attr(F, q, qr, "head_dim", "head_dim");
  copy_attr(F, q, qr, "theta", "theta");
  replace_op(F, qr, q);
  return 1;
}

/* silu_mul(m Wg, m Wu), m = rmsnorm(x) -> gate_up */
static int fuse_gate_up(fuser *F, mor_op *sm) {
  if (sm->code != MOR_OP_SILU_MUL) return 0;
  mor_op *g = def_of(sm->operands[0], MOR_OP_MATMUL), *u = def_of(sm->operands[1], MOR_OP_MATMUL);
  if (!g || !u || g == u || g->operands[0] != u->operands[0]) return 0;
  if (uses(F, g->results[0]) != 1 || uses(F, u->results[0]) != 1) return 0;
  mor_op *norm = def_of(g->operands[0], MOR_OP_RMSNORM);
  if (!norm || uses(F, norm->results[0]) != 2) return 0;
  mor_op *f = new_before(F, sm, MOR_OP_GATE_UP, 1, &norm->operands[0], sm->results[0]->type);
  copy_attr(F, f, norm, "weight", "norm");
  copy_attr(F, f, norm, "eps", "eps");
  copy_attr(F, f, g, "weight", "wg");
  copy_attr(F, f, u, "weight", "wu");
  replace_op(F, sm, f);
  return 1;
}

/* add(r, a W) or add(a W, r) -> matmul_add(a, r) */
static int fuse_matmul_add(fuser *F, mor_op *ad) {
  if (ad->code != MOR_OP_ADD || ad->results[0]->type.dtype != MOR_F32 || ad->results[0]->type.rank != 2) return 0;
  for (int side = 1; side >= 0; side--) {
    mor_op *mm = def_of(ad->operands[side], MOR_OP_MATMUL);
    if (!mm || uses(F, mm->results[0]) != 1) continue;
    mor_value *ops[2] = {mm->operands[0], ad->operands[1 - side]};
    mor_op *f = new_before(F, ad, MOR_OP_MATMUL_ADD, 2, ops, ad->results[0]->type);
    copy_attr(F, f, mm, "weight", "weight");
    replace_op(F, ad, f);
    return 1;
  }
  return 0;
}

/* gate_add(dst, base, matmul_add(a, r), s, idx) and scatter(dst, idx,
 * matmul_add(a, r)) -> matmul_store */
static int fuse_store(fuser *F, mor_op *op) {
  int gate = op->code == MOR_OP_GATE_ADD;
  if (!gate && (op->code != MOR_OP_SCATTER || op->results[0]->type.dtype != MOR_F32 ||
                op->results[0]->type.rank != 2))
    return 0;
  mor_op *ma = def_of(op->operands[2], MOR_OP_MATMUL_ADD);
  if (!ma || ma->n_operands != 2 || uses(F, ma->results[0]) != 1) return 0;
  mor_value *ops[6] = {ma->operands[0], ma->operands[1], op->operands[0], gate ? op->operands[4] : op->operands[1],
                       gate ? op->operands[1] : NULL, gate ? op->operands[3] : NULL};
  mor_op *f = new_before(F, op, MOR_OP_MATMUL_STORE, gate ? 6 : 4, ops, op->results[0]->type);
  copy_attr(F, f, ma, "weight", "weight");
  mor_op_set_str(F->m, f, "mode", gate ? "gate" : "set");
  if (gate) {
    copy_attr(F, f, op, "alpha", "alpha");
    copy_attr(F, f, op, "gating", "gating");
  }
  replace_op(F, op, f);
  return 1;
}

/* the rows of two values are the same (as the verifier decides it) */
static int rows_same(mor_dim a, mor_dim b) { return a.sym == b.sym && (a.sym >= 0 || a.n == b.n); }

/* qkv(gather(X, I), gather(P, I)) -> qkv(X, P, I) when X and P have the same
 * rows; matmul_add(a, gather(R, I)) -> matmul_add(a, R, I): gathers become
 * indexed loads. */
static int fold_gathers(fuser *F, mor_op *op) {
  if (op->code == MOR_OP_QKV) {
    int has_depth = op->operands[op->n_operands - 1]->type.dtype == MOR_I64;
    if (op->n_operands - has_depth != 2) return 0;
    mor_op *gx = def_of(op->operands[0], MOR_OP_GATHER), *gp = def_of(op->operands[1], MOR_OP_GATHER);
    if (!gx || !gp || gx->operands[1] != gp->operands[1]) return 0;
    /* the indexed qkv reads rows idx of x and of pos, so they must have the
     * same rows; gathers of one idx from tables of different rows stay */
    if (!rows_same(gx->operands[0]->type.dims[0], gp->operands[0]->type.dims[0])) return 0;
    mor_value **ops = mor_alloc(F->m, sizeof(mor_value *) * 4);
    ops[0] = gx->operands[0];
    ops[1] = gp->operands[0];
    ops[2] = gx->operands[1];
    if (has_depth) ops[3] = op->operands[2];
    op->operands = ops;
    op->n_operands = 3 + has_depth;
    F->changed = 1;
    return 1;
  }
  if (op->code == MOR_OP_MATMUL_ADD && op->n_operands == 2) {
    mor_op *gr = def_of(op->operands[1], MOR_OP_GATHER);
    if (!gr || gr->operands[0]->type.dtype != MOR_F32) return 0;
    mor_value **ops = mor_alloc(F->m, sizeof(mor_value *) * 3);
    ops[0] = op->operands[0];
    ops[1] = gr->operands[0];
    ops[2] = gr->operands[1];
    op->operands = ops;
    op->n_operands = 3;
    F->changed = 1;
    return 1;
  }
  return 0;
}

/* matmul(rmsnorm(x)) -> norm_matmul(x) */
static int fuse_norm_matmul(fuser *F, mor_op *mm) {
  if (mm->code != MOR_OP_MATMUL) return 0;
  mor_op *norm = def_of(mm->operands[0], MOR_OP_RMSNORM);
  if (!norm || uses(F, norm->results[0]) != 1) return 0;
  mor_op *f = new_before(F, mm, MOR_OP_NORM_MATMUL, 1, &norm->operands[0], mm->results[0]->type);
  copy_attr(F, f, norm, "weight", "norm");
  copy_attr(F, f, norm, "eps", "eps");
  copy_attr(F, f, mm, "weight", "weight");
  replace_op(F, mm, f);
  return 1;
}

typedef int (*pattern)(fuser *, mor_op *);

static void run_pattern(fuser *F, mor_block *b, pattern p) {
  for (mor_op *op = b->first, *nx; op; op = nx) {
    nx = op->next;
    if (op->region) run_pattern(F, op->region, p);
    if (p(F, op)) mor_dce_block(F->root);
  }
}

static void fuse_kernels(fuser *F) {
  static const pattern order[] = {fuse_qkv, fuse_q, fuse_gate_up, fuse_matmul_add, fuse_store, fold_gathers,
                                  fuse_norm_matmul};
  for (size_t i = 0; i < sizeof order / sizeof *order; i++) run_pattern(F, F->root, order[i]);
  mor_dce_block(F->root);
}

/* ---- outlining ---------------------------------------------------------------------------- */

typedef struct span {
  int first, last; /* ordinals in the block, inclusive */
  int depth;       /* the copy: the k-th occurrence */
  int cls;
} span;

typedef struct key {
  mor_opcode code;
  const char *w;
  int n;
  int *occ;
  int grouped;
} key;

typedef struct outliner {
  fuser *F;
  mor_op **ops; /* the block's ops in order (an op's index is its ordinal) */
  int n_ops;
} outliner;

static int op_index(outliner *O, const mor_op *op) {
  for (int i = 0; i < O->n_ops; i++)
    if (O->ops[i] == op) return i;
  return -1;
}

/* The value's place in the span: internal (op offset, result) or external. */
typedef struct vref {
  int internal;
  int a, b; /* internal: op offset, result index; external: param index */
} vref;

typedef struct sig {
  int n_params;
  mor_value **params;
  int n_esc;
  int *esc; /* (offset << 8 | result) of values used outside the span */
} sig;

static int param_index(sig *s, mor_value *v) {
  for (int i = 0; i < s->n_params; i++)
    if (s->params[i] == v) return i;
  s->params = mor_xrealloc(s->params, sizeof(mor_value *) * (size_t)(s->n_params + 1));
  s->params[s->n_params] = v;
  return s->n_params++;
}

static vref classify(outliner *O, const span *sp, sig *s, mor_value *v) {
  vref r = {0, 0, 0};
  if (v->def && v->def->parent == O->F->root) {
    int k = op_index(O, v->def);
    if (k >= sp->first && k <= sp->last) {
      r.internal = 1;
      r.a = k - sp->first;
      r.b = v->index;
      return r;
    }
  }
  r.a = param_index(s, v);
  return r;
}

static int used_outside(outliner *O, const span *sp, const mor_value *v) {
  for (int i = 0; i < O->n_ops; i++) {
    if (i >= sp->first && i <= sp->last) continue;
    const mor_op *o = O->ops[i];
    for (int j = 0; j < o->n_operands; j++)
      if (o->operands[j] == v) return 1;
    if (o->region && mor_value_has_uses(o->region, v)) return 1;
  }
  return 0;
}

static void build_sig(outliner *O, const span *sp, sig *s) {
  memset(s, 0, sizeof *s);
  for (int i = sp->first; i <= sp->last; i++) {
    mor_op *op = O->ops[i];
    for (int j = 0; j < op->n_operands; j++) classify(O, sp, s, op->operands[j]);
    for (int j = 0; j < op->n_results; j++)
      if (used_outside(O, sp, op->results[j])) {
        s->esc = mor_xrealloc(s->esc, sizeof(int) * (size_t)(s->n_esc + 1));
        s->esc[s->n_esc++] = ((i - sp->first) << 8) | j;
      }
  }
}

static void free_sig(sig *s) {
  free(s->params);
  free(s->esc);
}

/* Same computation up to the caches attributes? *kv_differs is set when
 * some caches attribute differs. */
static int same_shape(outliner *O, const span *a, const span *b, int *kv_differs) {
  if (a->last - a->first != b->last - b->first) return 0;
  sig sa, sb;
  memset(&sa, 0, sizeof sa);
  memset(&sb, 0, sizeof sb);
  int ok = 1;
  for (int i = 0; ok && i <= a->last - a->first; i++) {
    mor_op *x = O->ops[a->first + i], *y = O->ops[b->first + i];
    if (x->code != y->code || x->n_operands != y->n_operands || x->n_results != y->n_results || x->region ||
        y->region) {
      ok = 0;
      break;
    }
    for (int j = 0; ok && j < x->n_operands; j++) {
      vref rx = classify(O, a, &sa, x->operands[j]), ry = classify(O, b, &sb, y->operands[j]);
      if (rx.internal != ry.internal || rx.a != ry.a || rx.b != ry.b) ok = 0;
      else if (!rx.internal && (x->operands[j]->type.dtype != y->operands[j]->type.dtype ||
                                x->operands[j]->type.rank != y->operands[j]->type.rank))
        ok = 0;
    }
    for (int j = 0; ok && j < x->n_results; j++)
      if (x->results[j]->type.dtype != y->results[j]->type.dtype || x->results[j]->type.rank != y->results[j]->type.rank)
        ok = 0;
    int nx = 0, ny = 0;
    for (int j = 0; ok && j < x->n_attrs; j++) {
      const char *name = x->attrs[j].name;
      if (!strcmp(name, "depth")) continue;
      nx++;
      const mor_attr *o = mor_op_attr(y, name);
      if (!o) {
        ok = 0;
      } else if (!mor_attr_equal(&x->attrs[j], o)) {
        if (!strcmp(name, "caches") && o->kind == MOR_ATTR_SYMS && x->attrs[j].kind == MOR_ATTR_SYMS &&
            o->n == 1 && x->attrs[j].n == 1 && (x->n_operands == 0 || x->operands[x->n_operands - 1]->type.dtype != MOR_I64))
          *kv_differs = 1;
        else
          ok = 0;
      }
    }
    for (int j = 0; ok && j < y->n_attrs; j++) ny += strcmp(y->attrs[j].name, "depth") != 0;
    if (nx != ny) ok = 0;
  }
  free_sig(&sa);
  free_sig(&sb);
  return ok;
}

static int dims_equal(mor_dim a, mor_dim b) { return a.sym == b.sym && a.n == b.n; }

/* append a (depth) operand */
static void append_operand(fuser *F, mor_op *op, mor_value *v) {
  mor_value **ops = mor_alloc(F->m, sizeof(mor_value *) * (size_t)(op->n_operands + 1));
  for (int i = 0; i < op->n_operands; i++) ops[i] = op->operands[i];
  ops[op->n_operands++] = v;
  op->operands = ops;
}

static char *func_name(fuser *F, int group, int n_groups, int first_depth) {
  char name[64];
  int k = snprintf(name, sizeof name, "block");
  if (n_groups > 1) k += snprintf(name + k, sizeof name - (size_t)k, ".%d", group);
  if (first_depth > 0) k += snprintf(name + k, sizeof name - (size_t)k, ".d%d", first_depth);
  char uniq[80];
  snprintf(uniq, sizeof uniq, "%s", name);
  for (int i = 1; mor_find_func(F->m, uniq); i++) snprintf(uniq, sizeof uniq, "%s_%d", name, i);
  return mor_strdup(F->m, uniq);
}

/* Outline the spans of one class into a function and replace each by a call. */
static int outline_class(outliner *O, span *spans, int n_spans, int cls, int group, int n_groups) {
  fuser *F = O->F;
  mor_module *m = F->m;
  int rep = -1, kv = 0;
  for (int k = 0; k < n_spans; k++)
    if (spans[k].cls == cls) {
      if (rep < 0) rep = k;
      else same_shape(O, &spans[rep], &spans[k], &kv);
    }
  sig *sigs = mor_xcalloc((size_t)n_spans, sizeof *sigs);
  for (int k = 0; k < n_spans; k++)
    if (spans[k].cls == cls) build_sig(O, &spans[k], &sigs[k]);
  const span *R = &spans[rep];
  int np = sigs[rep].n_params;
  /* escaping values: union over the class */
  int n_esc = 0, *esc = NULL;
  for (int k = 0; k < n_spans; k++) {
    if (spans[k].cls != cls) continue;
    for (int e = 0; e < sigs[k].n_esc; e++) {
      int have = 0;
      for (int j = 0; j < n_esc; j++) have |= esc[j] == sigs[k].esc[e];
      if (have) continue;
      esc = mor_xrealloc(esc, sizeof(int) * (size_t)(n_esc + 1));
      int pos = n_esc++;
      while (pos > 0 && esc[pos - 1] > sigs[k].esc[e]) esc[pos] = esc[pos - 1], pos--;
      esc[pos] = sigs[k].esc[e];
    }
  }
  /* the function and its parameters */
  mor_func *fn = mor_add_func(m, func_name(F, group, n_groups, spans[rep].depth));
  int map_len = m->next_value_id;
  mor_value **map = mor_xcalloc((size_t)map_len + 1, sizeof *map);
  /* fresh symbols for dims that differ between copies, shared by equal tuples */
  int n_memo = 0;
  mor_dim *memo_key = NULL;
  int *memo_sym = NULL;
  for (int p = 0; p < np; p++) {
    mor_type t = sigs[rep].params[p]->type;
    for (int d = 0; d < t.rank; d++) {
      mor_dim *tuple = mor_xcalloc((size_t)n_spans, sizeof *tuple);
      int same = 1;
      int64_t bound = 0;
      for (int k = 0; k < n_spans; k++) {
        if (spans[k].cls != cls) continue;
        tuple[k] = sigs[k].params[p]->type.dims[d];
        if (!dims_equal(tuple[k], t.dims[d])) same = 0;
        int64_t b = tuple[k].sym >= 0 ? m->syms[tuple[k].sym].bound : tuple[k].n;
        if (b > bound) bound = b;
      }
      if (!same) {
        int sym = -1;
        for (int q = 0; q < n_memo && sym < 0; q++) {
          int eq = 1;
          for (int k = 0; k < n_spans; k++)
            if (spans[k].cls == cls && !dims_equal(memo_key[q * n_spans + k], tuple[k])) eq = 0;
          if (eq) sym = memo_sym[q];
        }
        if (sym < 0) {
          sym = mor_new_sym(m, "N", bound);
          memo_key = mor_xrealloc(memo_key, sizeof(mor_dim) * (size_t)((n_memo + 1) * n_spans));
          memo_sym = mor_xrealloc(memo_sym, sizeof(int) * (size_t)(n_memo + 1));
          memcpy(&memo_key[n_memo * n_spans], tuple, sizeof(mor_dim) * (size_t)n_spans);
          memo_sym[n_memo++] = sym;
        }
        t.dims[d] = mor_dsym(m, sym);
      }
      free(tuple);
    }
    mor_value *arg = mor_block_add_arg(m, fn->body, t);
    map[sigs[rep].params[p]->id] = arg;
  }
  free(memo_key);
  free(memo_sym);
  mor_value *depth_arg = kv ? mor_block_add_arg(m, fn->body, mor_type_make(MOR_I64, 0, NULL)) : NULL;
  /* the body: the representative's ops; caches become per-depth lists */
  int n_depths = n_spans;
  for (int i = R->first; i <= R->last; i++) {
    const mor_op *src = O->ops[i];
    mor_op *c = mor_clone_op(m, src, map, map_len);
    mor_op_del_attr(c, "depth");
    const mor_attr *ca = mor_op_attr(c, "caches");
    if (kv && ca) {
      int differs = 0;
      for (int k = 0; k < n_spans; k++) {
        if (spans[k].cls != cls) continue;
        const mor_attr *o = mor_op_attr(O->ops[spans[k].first + (i - R->first)], "caches");
        if (!o || !mor_attr_equal(o, ca)) differs = 1;
      }
      if (differs) {
        char **list = mor_xcalloc((size_t)n_depths, sizeof *list);
        for (int k = 0; k < n_depths; k++) {
          const mor_attr *o = spans[k].cls == cls ? mor_op_attr(O->ops[spans[k].first + (i - R->first)], "caches")
                                                  : NULL;
          list[spans[k].depth] = o ? o->syms[0] : "none";
        }
        mor_op_set_syms(m, c, "caches", n_depths, list);
        free(list);
        append_operand(F, c, depth_arg);
      }
    }
    mor_block_append(fn->body, c);
  }
  mor_value **rets = mor_xcalloc((size_t)n_esc + 1, sizeof *rets);
  for (int e = 0; e < n_esc; e++) rets[e] = map[O->ops[R->first + (esc[e] >> 8)]->results[esc[e] & 255]->id];
  mor_block_append(fn->body, mor_op_new(m, MOR_OP_RETURN, n_esc, rets, 0, NULL));
  mor_err e;
  mor_infer_types(m, fn->body, &e);
  fn->n_results = n_esc;
  fn->result_types = mor_alloc(m, sizeof(mor_type) * (size_t)(n_esc ? n_esc : 1));
  for (int i = 0; i < n_esc; i++) fn->result_types[i] = rets[i]->type;
  /* calls */
  int rc = 0;
  for (int k = 0; k < n_spans && !rc; k++) {
    if (spans[k].cls != cls) continue;
    mor_op *at = O->ops[spans[k].first];
    int na = np + (kv ? 1 : 0);
    mor_value **args = mor_xcalloc((size_t)na + 1, sizeof *args);
    for (int p = 0; p < np; p++) args[p] = sigs[k].params[p];
    if (kv) {
      mor_type i64 = mor_type_make(MOR_I64, 0, NULL);
      mor_op *cst = mor_op_new(m, MOR_OP_CONST, 0, NULL, 1, &i64);
      mor_op_set_int(m, cst, "value", spans[k].depth);
      mor_op_set_int(m, cst, "depth", spans[k].depth);
      mor_insert_before(at, cst);
      args[np] = cst->results[0];
    }
    mor_type *rt = mor_xcalloc((size_t)n_esc + 1, sizeof *rt);
    if (mor_call_result_types(m, fn, na, args, rt, F->err)) {
      mor_err_prefix(F->err, "outlining @%s", MOR_SYM(fn->name));
      rc = -1;
    } else {
      mor_op *call = mor_op_new(m, MOR_OP_CALL, na, args, n_esc, rt);
      mor_op_set_sym(m, call, "callee", fn->name);
      mor_op_set_int(m, call, "depth", spans[k].depth);
      mor_insert_before(at, call);
      for (int e = 0; e < n_esc; e++) {
        mor_value *old = O->ops[spans[k].first + (esc[e] >> 8)]->results[esc[e] & 255];
        mor_replace_uses(F->root, old, call->results[e]);
        /* later copies may take this value as an argument */
        for (int j = k + 1; j < n_spans; j++)
          for (int p = 0; p < sigs[j].n_params; p++)
            if (sigs[j].params[p] == old) sigs[j].params[p] = call->results[e];
      }
      for (int i = spans[k].first; i <= spans[k].last; i++) mor_op_remove(O->ops[i]);
    }
    free(rt);
    free(args);
  }
  free(rets);
  free(map);
  free(esc);
  for (int k = 0; k < n_spans; k++) free_sig(&sigs[k]);
  free(sigs);
  return rc;
}

/* A gather (an indexed load the span's kernels need) used by the span only. */
static int all_pure_inside(outliner *O, int i, int first, int last) {
  mor_op *op = O->ops[i];
  if (op->code != MOR_OP_GATHER) return 0;
  for (int r = 0; r < op->n_results; r++)
    for (int j = 0; j < O->n_ops; j++) {
      if (j >= first && j <= last) continue;
      const mor_op *o = O->ops[j];
      for (int q = 0; q < o->n_operands; q++)
        if (o->operands[q] == op->results[r]) return 0;
      if (o->region && mor_value_has_uses(o->region, op->results[r])) return 0;
    }
  return 1;
}

static int outline(fuser *F) {
  outliner O0 = {F, NULL, 0}, *O = &O0;
  for (mor_op *op = F->root->first; op; op = op->next) O->n_ops++;
  O->ops = mor_xcalloc((size_t)O->n_ops + 1, sizeof *O->ops);
  int i = 0;
  for (mor_op *op = F->root->first; op; op = op->next) O->ops[i++] = op;
  /* keys: (opcode, first weight) and their occurrences */
  int n_keys = 0;
  key *keys = NULL;
  for (i = 0; i < O->n_ops; i++) {
    const char *w = mor_op_weight(O->ops[i], 0);
    if (!w) continue;
    int k;
    for (k = 0; k < n_keys; k++)
      if (keys[k].code == O->ops[i]->code && !strcmp(keys[k].w, w)) break;
    if (k == n_keys) {
      keys = mor_xrealloc(keys, sizeof *keys * (size_t)(n_keys + 1));
      memset(&keys[k], 0, sizeof *keys);
      keys[k].code = O->ops[i]->code;
      keys[k].w = w;
      n_keys++;
    }
    keys[k].occ = mor_xrealloc(keys[k].occ, sizeof(int) * (size_t)(keys[k].n + 1));
    keys[k].occ[keys[k].n++] = i;
  }
  /* groups of keys that repeat together */
  int n_groups = 0, rc = 0;
  span **gspans = NULL;
  int *gn = NULL;
  for (int k = 0; k < n_keys; k++) {
    key *K = &keys[k];
    if (K->grouped || K->n < 2) continue;
    int n = K->n;
    span *sp = mor_xcalloc((size_t)n, sizeof *sp);
    for (int c = 0; c < n; c++) {
      sp[c].first = sp[c].last = K->occ[c];
      sp[c].depth = c;
    }
    K->grouped = 1;
    for (int j = 0; j < n_keys; j++) {
      key *J = &keys[j];
      if (J->grouped || J->n != n) continue;
      int fits = 1;
      for (int c = 0; c < n && fits; c++) {
        int hi = c + 1 < n ? K->occ[c + 1] : O->n_ops;
        if (J->occ[c] < K->occ[c] || J->occ[c] >= hi) fits = 0;
      }
      if (!fits) continue;
      J->grouped = 1;
      for (int c = 0; c < n; c++)
        if (J->occ[c] > sp[c].last) sp[c].last = J->occ[c];
    }
    /* take in the pure ops just before a span that only the span uses */
    for (int c = 0; c < n; c++) {
      int lo = c > 0 ? sp[c - 1].last + 1 : 0;
      while (sp[c].first - 1 >= lo && all_pure_inside(O, sp[c].first - 1, sp[c].first - 1, sp[c].last)) sp[c].first--;
    }
    gspans = mor_xrealloc(gspans, sizeof *gspans * (size_t)(n_groups + 1));
    gn = mor_xrealloc(gn, sizeof *gn * (size_t)(n_groups + 1));
    gspans[n_groups] = sp;
    gn[n_groups++] = n;
  }
  for (int g = 0; g < n_groups && !rc; g++) {
    span *sp = gspans[g];
    int n = gn[g], n_cls = 0;
    for (int c = 0; c < n; c++) {
      sp[c].cls = -1;
      for (int d = 0; d < c && sp[c].cls < 0; d++) {
        int kv = 0;
        if (same_shape(O, &sp[d], &sp[c], &kv)) sp[c].cls = sp[d].cls;
      }
      if (sp[c].cls < 0) sp[c].cls = n_cls++;
    }
    int ok = 1;
    for (int c = 0; c < n; c++)
      if (sp[c].last - sp[c].first < 1) ok = 0; /* a lone kernel is not a block */
    for (int c = 0; c < n; c++)
      for (int j = sp[c].first; j <= sp[c].last; j++)
        if (O->ops[j]->region || O->ops[j]->code == MOR_OP_RETURN) ok = 0;
    if (!ok) continue;
    for (int cls = 0; cls < n_cls && !rc; cls++) rc = outline_class(O, sp, n, cls, g, n_groups);
    F->changed = 1;
  }
  for (int g = 0; g < n_groups; g++) free(gspans[g]);
  free(gspans);
  free(gn);
  for (int k = 0; k < n_keys; k++) free(keys[k].occ);
  free(keys);
  free(O->ops);
  return rc;
}

int mor_pass_fuse_shared_block(mor_module *m, int *changed, mor_err *err) {
  fuser F0 = {m, NULL, err, 0}, *F = &F0;
  int n_funcs = m->n_funcs;
  for (int f = 0; f < n_funcs; f++) {
    F->root = m->funcs[f]->body;
    fuse_kernels(F);
  }
  for (int f = 0; f < n_funcs; f++) {
    F->root = m->funcs[f]->body;
    if (outline(F)) return -1;
    mor_cse_block(F->root);
    mor_infer_types(m, F->root, err);
    mor_dce_block(F->root);
  }
  mor_compact_syms(m);
  *changed = F->changed;
  return 0;
}

/* specialize_depths.c: unroll every `recur` into one copy of its region per
 * depth. The depth becomes a constant, per-depth list attributes (routers,
 * caches, capacities) collapse to the entry of that depth, selects that
 * cannot drop tokens disappear, recursive KV sharing loses its K/V work at
 * depth >= 1, and the row counts of each depth get their own symbols with
 * derived upper bounds (exact under top_k). See docs/passes.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

typedef struct spec {
  mor_module *m;
  mor_block *root;
  mor_err *err;
  int changed;
  int n_src;         /* the symbols that existed before unrolling */
  int *src;          /* per such symbol: the values of root whose type introduces it */
  const char *risky; /* a symbol check_carried found shared, or NULL */
} spec;

/* index of the optional depth operand of op, or -1 */
static int depth_index(const mor_op *op) {
  switch (op->code) {
  case MOR_OP_KV_WRITE: return 3;
  case MOR_OP_ATTENTION: return 2;
  case MOR_OP_ROUTER: return 1;
  case MOR_OP_SELECT: return 2;
  case MOR_OP_QKV: return op->n_operands - 1;
  default: return -1;
  }
}

/* Keep entry d of a per-depth list attribute (a one-entry list remains). */
static int pick(spec *S, mor_op *op, const char *name, int64_t d) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return 0;
  if (a->kind != MOR_ATTR_SYMS && a->kind != MOR_ATTR_FLOATS && a->kind != MOR_ATTR_INTS) return 0;
  if (d >= a->n) {
    mor_errf(S->err, "'%s' at depth %lld: attribute '%s' has only %d entries", mor_ops[op->code].name, (long long)d,
             name, a->n);
    return -1;
  }
  if (a->kind == MOR_ATTR_SYMS) {
    char *one = a->syms[d];
    mor_op_set_syms(S->m, op, name, 1, &one);
  } else if (a->kind == MOR_ATTR_FLOATS) {
    double one = a->floats[d];
    mor_op_set_floats(S->m, op, name, 1, &one);
  } else {
    double one = (double)a->ints[d];
    mor_op_set_floats(S->m, op, name, 1, &one);
  }
  return 0;
}

/* ---- which symbols unrolling may rename --------------------------------------- */

static int names_sym(const mor_type *t, int sym) {
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i].sym == sym) return 1;
  return 0;
}

static int first_of(const mor_type *t, int i) {
  for (int j = 0; j < i; j++)
    if (t->dims[j].sym == t->dims[i].sym) return 0;
  return 1;
}

static void count_type(const mor_type *t, int *src) {
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i].sym >= 0 && first_of(t, i)) src[t->dims[i].sym]++;
}

/* Per symbol, the values whose type introduces it rather than taking it from
 * an operand: block arguments, results of ops with declared types (select,
 * where, recur, call) and derived results that no operand gives the symbol.
 * Values with the same symbol must have the same rows, so unrolling may give
 * a value a new symbol (or another value's type) only when nothing else
 * introduces its symbol. */
static void count_sources(const mor_module *m, const mor_block *b, int *src) {
  mor_type rt[64];
  for (int i = 0; i < b->n_args; i++) count_type(&b->args[i]->type, src);
  for (const mor_op *op = b->first; op; op = op->next) {
    if (op->region) count_sources(m, op->region, src);
    int derived = op->code != MOR_OP_CALL && op->n_results <= 64 && mor_derive_types(m, op, rt);
    for (int r = 0; r < op->n_results; r++) {
      const mor_type *t = &op->results[r]->type;
      for (int i = 0; i < t->rank; i++) {
        int sym = t->dims[i].sym, given = 0;
        if (sym < 0 || !first_of(t, i)) continue;
        for (int j = 0; derived && j < op->n_operands && !given; j++) given = names_sym(&op->operands[j]->type, sym);
        if (!given) src[sym]++;
      }
    }
  }
}

/* 1 when the rows symbol of a select or where result may become one fresh
 * symbol per depth: no other value introduces it. */
static int may_freshen(const spec *S, int sym) { return sym >= S->n_src || S->src[sym] == 1; }

static int same_dims(const mor_type *a, const mor_type *b) {
  if (a->dtype != b->dtype || a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i].sym != b->dims[i].sym || (a->dims[i].sym < 0 && a->dims[i].n != b->dims[i].n)) return 0;
  return 1;
}

/* 1 when v's type names a symbol that unrolling R renames per depth */
static int names_renamed(const spec *S, const mor_block *R, const mor_value *v) {
  for (const mor_op *op = R->first; op; op = op->next)
    if ((op->code == MOR_OP_SELECT || op->code == MOR_OP_WHERE) && op->results[0]->type.rank >= 1) {
      int sym = op->results[0]->type.dims[0].sym;
      if (sym >= 0 && may_freshen(S, sym) && names_sym(&v->type, sym)) return 1;
    }
  return 0;
}

/* Unrolling replaces a carried argument by the init and the yielded values,
 * and the recur's results by the last yielded ones; where their types differ
 * (a carried active set of A rows that each depth narrows to C_d rows), a
 * symbol of the declared type stops meaning "these rows". That is sound when
 * no other value introduces the symbol (the region's code cannot have tied
 * those rows to anything else), and often otherwise too (a select reads the
 * carried rows without tying them to others). Note the first symbol at risk
 * in S->risky: if the unrolled module then does not verify, the pass refuses
 * it (mor_pass_specialize_depths). */
static void check_carried(spec *S, const mor_op *rec) {
  const mor_block *R = rec->region;
  const mor_op *y = R->last && R->last->code == MOR_OP_YIELD ? R->last : NULL;
  int nc = rec->n_operands;
  if (!y || y->n_operands != nc || R->n_args != nc + 1 || rec->n_results != nc) return; /* the verifier's business */
  int *moved = mor_xcalloc((size_t)S->n_src + 1, sizeof *moved);
  for (int i = 0; i < nc; i++) {
    const mor_value *arg = R->args[i + 1], *init = rec->operands[i], *next = y->operands[i], *res = rec->results[i];
    int renamed = names_renamed(S, R, next);
    if (!same_dims(&arg->type, &init->type) || !same_dims(&arg->type, &next->type) || renamed)
      for (int d = 0; d < arg->type.rank; d++) {
        int sym = arg->type.dims[d].sym;
        if (sym >= 0 && sym < S->n_src && first_of(&arg->type, d)) moved[sym]++;
      }
    if (!same_dims(&res->type, &next->type) || renamed)
      for (int d = 0; d < res->type.rank; d++) {
        int sym = res->type.dims[d].sym;
        if (sym >= 0 && sym < S->n_src && first_of(&res->type, d)) moved[sym]++;
      }
  }
  for (int sym = 0; sym < S->n_src && !S->risky; sym++)
    if (moved[sym] && S->src[sym] > moved[sym]) S->risky = S->m->syms[sym].name;
  free(moved);
}

/* A per-depth copy of a symbol-typed result: a fresh symbol "<name>_<d>",
 * unless other values have its symbol: then the copies keep it. */
static void fresh_row_sym(spec *S, mor_value *v, int64_t d) {
  if (v->type.rank < 1 || v->type.dims[0].sym < 0 || !may_freshen(S, v->type.dims[0].sym)) return;
  const mor_sym *old = &S->m->syms[v->type.dims[0].sym];
  char prefix[160];
  snprintf(prefix, sizeof prefix, "%s_%lld", old->name, (long long)d);
  int s = mor_find_sym(S->m, prefix) < 0 ? mor_add_sym(S->m, prefix, old->bound)
                                          : mor_new_sym(S->m, prefix, old->bound);
  v->type.dims[0] = mor_dsym(S->m, s);
}

/* Clone one op of the region for depth d. */
static int clone_for_depth(spec *S, mor_op *rec, const mor_op *op, mor_value **map, int map_len, mor_value *dval,
                           int64_t d) {
  mor_op *c = mor_clone_op(S->m, op, map, map_len);
  mor_insert_before(rec, c);
  mor_op_set_int(S->m, c, "depth", d);
  int di = depth_index(c);
  if (di >= 0 && di < c->n_operands && c->operands[di] == dval) {
    c->n_operands--;
    if (pick(S, c, "caches", d) || pick(S, c, "weights", d) || pick(S, c, "weights2", d) ||
        pick(S, c, "capacity", d))
      return -1;
  }
  if (c->code == MOR_OP_SELECT || c->code == MOR_OP_WHERE) fresh_row_sym(S, c->results[0], d);
  return 0;
}

static int unroll(spec *S, mor_op *rec) {
  mor_module *m = S->m;
  int64_t n = mor_op_int(rec, "n", 0);
  mor_block *R = rec->region;
  int nc = rec->n_operands;
  check_carried(S, rec);
  int map_len = m->next_value_id;
  mor_value **map = mor_xcalloc((size_t)map_len, sizeof *map);
  mor_value **cur = mor_xcalloc((size_t)nc + 1, sizeof *cur);
  for (int i = 0; i < nc; i++) cur[i] = rec->operands[i];
  int rc = 0;
  for (int64_t d = 0; d < n && !rc; d++) {
    mor_type i64 = mor_type_make(MOR_I64, 0, NULL);
    mor_op *k = mor_op_new(m, MOR_OP_CONST, 0, NULL, 1, &i64);
    mor_op_set_int(m, k, "value", d);
    mor_op_set_int(m, k, "depth", d);
    mor_insert_before(rec, k);
    map[R->args[0]->id] = k->results[0];
    for (int i = 0; i < nc; i++) map[R->args[i + 1]->id] = cur[i];
    for (const mor_op *op = R->first; op && !rc; op = op->next) {
      if (op->code == MOR_OP_YIELD) {
        for (int i = 0; i < nc; i++) {
          mor_value *y = op->operands[i];
          cur[i] = y->id < map_len && map[y->id] ? map[y->id] : y;
        }
        continue;
      }
      rc = clone_for_depth(S, rec, op, map, map_len, k->results[0], d);
    }
  }
  if (!rc) {
    for (int i = 0; i < nc; i++) mor_replace_uses(S->root, rec->results[i], cur[i]);
    mor_op_remove(rec);
  }
  free(map);
  free(cur);
  return rc;
}

/* ---- simplifications after unrolling --------------------------------------- */

static int is_none(const char *s) { return !strcmp(s, "none"); }

/* Recursive KV sharing: writes to @none go away, reads of an alias read its target. */
static int kv_sharing(spec *S, mor_block *b) {
  int n = 0;
  for (mor_op *op = b->first, *nx; op; op = nx) {
    nx = op->next;
    if (op->region) n += kv_sharing(S, op->region);
    const mor_attr *a = mor_op_attr(op, "caches");
    int has_depth = depth_index(op) >= 0 && depth_index(op) < op->n_operands &&
                    op->operands[depth_index(op)]->type.dtype == MOR_I64;
    if (!a || a->kind != MOR_ATTR_SYMS || a->n != 1 || has_depth) continue;
    if (op->code == MOR_OP_KV_WRITE && is_none(a->syms[0])) {
      mor_op_remove(op);
      n++;
      continue;
    }
    if (op->code == MOR_OP_ATTENTION && !is_none(a->syms[0])) {
      const mor_global *g = mor_find_global(S->m, a->syms[0]);
      if (g && g->alias) {
        char *t = g->alias;
        mor_op_set_syms(S->m, op, "caches", 1, &t);
        n++;
      }
    }
  }
  return n;
}

static int const_value(const mor_value *v, int64_t *out) {
  if (!v->def || v->def->code != MOR_OP_CONST) return 0;
  *out = mor_op_int(v->def, "value", 0);
  return 1;
}

static double capacity_of(const mor_op *op) {
  const mor_attr *cap = mor_op_attr(op, "capacity");
  return cap && cap->n == 1 ? (cap->kind == MOR_ATTR_FLOATS ? cap->floats[0] : (double)cap->ints[0]) : 0;
}

static int is_top_k(const mor_op *op) {
  const char *mode = op->code == MOR_OP_SELECT ? mor_op_str(op, "mode") : NULL;
  return mode && !strcmp(mode, "top_k");
}

static int count_top_k(const mor_block *b) {
  int n = 0;
  for (const mor_op *op = b->first; op; op = op->next) {
    if (op->region) n += count_top_k(op->region);
    n += is_top_k(op);
  }
  return n;
}

/* 1 when the uses of v may take a value of type t instead: the same rows, or
 * rows whose symbol no other value has (so nothing ties them to others). */
static int may_retype(const spec *S, const mor_value *v, const mor_type *t) {
  int sym = v->type.rank >= 1 ? v->type.dims[0].sym : -1;
  return same_dims(&v->type, t) || (sym >= 0 && may_freshen(S, sym));
}

/* Selects that cannot drop tokens, and where-ops decided by the depth. A
 * top_k select is kept when it would be the last one: top_k must still
 * refuse a sequence with cached positions (model-format.md section 4). */
static int drop_selects(spec *S, mor_block *b) {
  int n = 0;
  for (mor_op *op = b->first, *nx; op; op = nx) {
    nx = op->next;
    if (op->region) n += drop_selects(S, op->region);
    if (op->code == MOR_OP_SELECT && op->n_operands == 2) {
      if (capacity_of(op) >= 1.0 && (!is_top_k(op) || count_top_k(S->root) > 1) &&
          may_retype(S, op->results[0], &op->operands[1]->type)) {
        /* threshold: every active token; top_k: k = floor(T) >= active */
        mor_replace_uses(S->root, op->results[0], op->operands[1]);
        mor_op_remove(op);
        n++;
      }
      continue;
    }
    if (op->code != MOR_OP_WHERE) continue;
    int64_t d;
    if (!const_value(op->operands[1], &d)) continue;
    const char *cmp = mor_op_str(op, "cmp");
    mor_value *dv = op->operands[0];
    mor_type t = mor_type_make(MOR_I32, 1, dv->type.dims);
    if (cmp && !strcmp(cmp, "ge") && d <= 0 && may_retype(S, op->results[0], &t)) {
      /* every row has d >= 0 */
      mor_op *io = mor_op_new(S->m, MOR_OP_IOTA, 1, &dv, 1, &t);
      if (mor_op_attr(op, "depth")) mor_op_set_int(S->m, io, "depth", mor_op_int(op, "depth", 0));
      mor_insert_before(op, io);
      mor_replace_uses(S->root, op->results[0], io->results[0]);
      mor_op_remove(op);
      n++;
    } else if (cmp && !strcmp(cmp, "eq") && dv->def && dv->def->code == MOR_OP_TC_ROUTE && dv->index == 0 &&
               dv->def->operands[0]->type.rank == 2 && d == dv->def->operands[0]->type.dims[1].n - 1) {
      /* the last depth: no further depth, so every active row finishes here */
      mor_op_set_str(S->m, op, "cmp", "ge");
      n++;
    }
  }
  return n;
}

/* The row-wise ops a narrowing may re-run on fewer rows. */
static int rowwise(const mor_op *op) {
  switch (op->code) {
  case MOR_OP_RMSNORM:
  case MOR_OP_MATMUL:
  case MOR_OP_ROPE:
  case MOR_OP_ADD:
  case MOR_OP_SILU_MUL:
  case MOR_OP_ATTENTION:
  case MOR_OP_NORM_MATMUL:
  case MOR_OP_GATE_UP: return 1;
  case MOR_OP_QKV: return mor_op_attr(op, "caches") == NULL && op->n_operands == 2;
  case MOR_OP_MATMUL_ADD: return op->n_operands == 2;
  default: return 0;
  }
}

/* Collect the backward slice of v down to gathers by `act` (leaves). 0 when
 * it contains anything else. */
static int slice(mor_value *v, mor_value *act, mor_op **ops, int *n, int cap) {
  mor_op *d = v->def;
  if (!d) return 0;
  for (int i = 0; i < *n; i++)
    if (ops[i] == d) return 1;
  if (*n == cap) return 0;
  if (d->code == MOR_OP_GATHER && d->operands[1] == act) {
    ops[(*n)++] = d;
    return 1;
  }
  if (!rowwise(d)) return 0;
  for (int i = 0; i < d->n_operands; i++)
    if (!slice(d->operands[i], act, ops, n, cap)) return 0;
  ops[(*n)++] = d;
  return 1;
}

static int in_set(mor_op *const *ops, int n, const mor_op *op) {
  for (int i = 0; i < n; i++)
    if (ops[i] == op) return 1;
  return 0;
}

/* 1 when every use of the slice's results is inside the slice or is `sink`. */
static int slice_closed(const mor_block *b, mor_op *const *ops, int n, const mor_op *sink) {
  for (const mor_op *o = b->first; o; o = o->next) {
    if (o->region && !slice_closed(o->region, ops, n, sink)) return 0;
    if (o == sink || in_set(ops, n, o)) continue;
    for (int i = 0; i < o->n_operands; i++) {
      const mor_op *d = o->operands[i]->def;
      if (d && in_set(ops, n, d)) return 0;
    }
  }
  return 1;
}

/* gather(scatter(X, I, Y), I) -> Y; gather(scatter(X, A, Y), C) with
 * C = select(s, A) and Y computed row by row from rows A only: run that
 * computation on the rows C instead (recursive sharing at depth >= 1, where
 * the block has no K/V to fill for the tokens that stop). */
static int narrow(spec *S, mor_block *b) {
  int n = 0;
  for (mor_op *op = b->first, *nx; op; op = nx) {
    nx = op->next;
    if (op->code != MOR_OP_GATHER) continue;
    mor_value *sv = op->operands[0], *ch = op->operands[1];
    if (!sv->def || sv->def->code != MOR_OP_SCATTER) continue;
    mor_op *sc = sv->def;
    mor_value *act = sc->operands[1], *y = sc->operands[2];
    if (ch == act) {
      mor_replace_uses(S->root, op->results[0], y);
      mor_op_remove(op);
      n++;
      continue;
    }
    if (!ch->def || ch->def->code != MOR_OP_SELECT || ch->def->operands[1] != act) continue;
    mor_op *ops[512];
    int k = 0;
    if (!slice(y, act, ops, &k, 512) || !slice_closed(S->root, ops, k, sc)) continue;
    /* clone the slice in order (ops[] is in post order), gathers by ch */
    int map_len = S->m->next_value_id;
    mor_value **map = mor_xcalloc((size_t)map_len, sizeof *map);
    for (int i = 0; i < k; i++) {
      mor_op *c = mor_clone_op(S->m, ops[i], map, map_len);
      if (ops[i]->code == MOR_OP_GATHER) mor_op_set_operand(c, 1, ch);
      mor_insert_before(op, c);
    }
    mor_replace_uses(S->root, op->results[0], map[y->id]);
    free(map);
    mor_op_remove(op);
    n++;
  }
  return n;
}

/* ---- bounds -------------------------------------------------------------------- */

static int64_t sym_bound(const mor_module *m, mor_dim d) { return d.sym >= 0 ? m->syms[d.sym].bound : d.n; }

/* Upper bounds of the symbols of selected rows, in program order. */
static void derive_bounds(spec *S, mor_block *b) {
  mor_module *m = S->m;
  for (mor_op *op = b->first; op; op = op->next) {
    if (op->region) derive_bounds(S, op->region);
    if (op->code != MOR_OP_SELECT && op->code != MOR_OP_WHERE) continue;
    mor_dim out = op->results[0]->type.dims[0];
    if (out.sym < 0 || !may_freshen(S, out.sym)) continue; /* shared: the declared bound stays */
    int64_t bound;
    if (op->code == MOR_OP_WHERE) {
      bound = sym_bound(m, op->operands[0]->type.dims[0]);
    } else {
      bound = sym_bound(m, op->operands[1]->type.dims[0]);
      const char *mode = mor_op_str(op, "mode");
      const mor_attr *cap = mor_op_attr(op, "capacity");
      if (mode && !strcmp(mode, "top_k") && cap && cap->n == 1 && op->n_operands == 2) {
        double c = cap->kind == MOR_ATTR_FLOATS ? cap->floats[0] : (double)cap->ints[0];
        int64_t T = sym_bound(m, op->operands[0]->type.dims[0]);
        int64_t k = (int64_t)floor(c * (double)T);
        if (k < 1) k = 1;
        if (k < bound) bound = k;
      }
    }
    if (bound < 1) bound = 1;
    m->syms[out.sym].bound = bound;
  }
}

static void sync_type(const mor_module *m, mor_type *t) {
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i].sym >= 0) t->dims[i].n = m->syms[t->dims[i].sym].bound;
}

static void sync_block(const mor_module *m, mor_block *b) {
  for (int i = 0; i < b->n_args; i++) sync_type(m, &b->args[i]->type);
  for (mor_op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->n_results; i++) sync_type(m, &op->results[i]->type);
    if (op->region) sync_block(m, op->region);
  }
}

static void sync_dims(mor_module *m) {
  for (int f = 0; f < m->n_funcs; f++) {
    sync_block(m, m->funcs[f]->body);
    for (int r = 0; r < m->funcs[f]->n_results; r++) sync_type(m, &m->funcs[f]->result_types[r]);
  }
}

int mor_pass_specialize_depths(mor_module *m, int *changed, mor_err *err) {
  spec S0 = {m, NULL, err, 0, 0, NULL, NULL}, *S = &S0;
  for (int f = 0; f < m->n_funcs; f++) {
    S->root = m->funcs[f]->body;
    free(S->src);
    S->n_src = m->n_syms;
    S->src = mor_xcalloc((size_t)m->n_syms + 1, sizeof *S->src);
    count_sources(m, S->root, S->src);
    for (int r = 0; r < m->funcs[f]->n_results; r++) count_type(&m->funcs[f]->result_types[r], S->src);
    int found = 0;
    /* top-level recur ops; unrolled copies of nested ones are met later */
    for (mor_op *op = S->root->first, *nx; op; op = nx) {
      nx = op->next;
      if (op->code != MOR_OP_RECUR) continue;
      mor_op *before = op->prev;
      if (unroll(S, op)) {
        free(S->src);
        return -1;
      }
      found = 1;
      nx = before ? before->next : S->root->first;
    }
    if (!found) continue;
    S->changed = 1;
    kv_sharing(S, S->root);
    drop_selects(S, S->root);
    mor_cse_block(S->root);
    mor_infer_types(m, S->root, err);
    mor_dce_block(S->root);
    narrow(S, S->root);
    mor_dce_block(S->root);
    mor_cse_block(S->root);
    mor_infer_types(m, S->root, err);
    derive_bounds(S, S->root);
    sync_dims(m);
    mor_infer_types(m, S->root, err);
  }
  free(S->src);
  mor_err e;
  if (S->risky && mor_verify_module(m, &e)) {
    mor_errf(err,
             "'recur': symbol %s is the type of a carried value whose rows change from depth to depth, and other "
             "values have it too, so the unrolled module does not verify (%s); give the carried value a symbol of "
             "its own",
             MOR_SYM(S->risky), e.msg);
    return -1;
  }
  if (S->changed) mor_compact_syms(m);
  *changed = S->changed;
  return 0;
}

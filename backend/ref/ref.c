/* ref.c: the reference interpreter's frame: binding weights, per-sequence KV
 * stores, the value table, and running blocks op by op (recur runs its
 * region n times). The numeric ops themselves are in ops.c. */
#include "backend/ref/ref_impl.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- runtime tensors ------------------------------------------------------ */

static int64_t shape_numel(int rank, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= shape[i];
  return n;
}

static void rt_clear(mor_rt *t) {
  free(t->data);
  memset(t, 0, sizeof *t);
}

static void rt_alloc(mor_rt *t, mor_dtype dt, int rank, const int64_t *shape) {
  rt_clear(t);
  t->defined = 1;
  t->dt = dt;
  t->rank = rank;
  for (int i = 0; i < rank; i++) t->shape[i] = shape[i];
  t->numel = shape_numel(rank, shape);
  t->data = mor_xmalloc((size_t)t->numel * (size_t)mor_dtype_size(dt));
}

static void rt_clone(mor_rt *dst, const mor_rt *src) {
  rt_alloc(dst, src->dt, src->rank, src->shape);
  memcpy(dst->data, src->data, (size_t)src->numel * (size_t)mor_dtype_size(src->dt));
}

/* Move src into dst (dst's old data is freed, src is left empty). */
static void rt_move(mor_rt *dst, mor_rt *src) {
  rt_clear(dst);
  *dst = *src;
  memset(src, 0, sizeof *src);
}

static void shape_str(char *buf, size_t n, int rank, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

/* ---- errors ---------------------------------------------------------------- */

static int op_number(const mor_block *b, const mor_op *target, int *k) {
  for (const mor_op *o = b->first; o; o = o->next) {
    if (o == target) return 1;
    ++*k;
    if (o->region && op_number(o->region, target, k)) return 1;
  }
  return 0;
}

/* Where an op is: "file:line:col: 'name'" for parsed IR, else
 * "@func: op #k ('name')" numbered like the verifier (1-based, textual
 * order, regions included); "@func" without an op. */
static void op_where(const mor_exec *ex, const mor_op *op, char *buf, size_t n) {
  const mor_module *m = ex->r->m;
  if (!op) {
    snprintf(buf, n, "@%s", MOR_SYM(ex->f->name));
  } else if (op->line > 0) {
    snprintf(buf, n, "%s:%d:%d: '%s'", m->src_file ? m->src_file : "<input>", op->line, op->col,
             mor_ops[op->code].name);
  } else {
    int k = 1;
    op_number(ex->f->body, op, &k);
    snprintf(buf, n, "@%s: op #%d ('%s')", MOR_SYM(ex->f->name), k, mor_ops[op->code].name);
  }
}

int mor_ref_fail(mor_exec *ex, const mor_op *op, const char *fmt, ...) {
  char msg[1536], where[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  op_where(ex, op, where, sizeof where);
  mor_errf(ex->err, "%s: %s", where, msg);
  return -1;
}

/* Check a runtime tensor against its IR type: dtype and rank equal, constant
 * dims equal, symbolic dims within their bound. */
static int check_type(mor_exec *ex, const mor_op *op, const char *what, int idx, const mor_rt *t, const mor_type *ty) {
  const mor_module *m = ex->r->m;
  if (t->dt != ty->dtype || t->rank != ty->rank) {
    char s[128];
    shape_str(s, sizeof s, t->rank, t->shape);
    mor_buf b = {0};
    mor_print_type(&b, m, ty);
    mor_buf_putc(&b, 0);
    mor_ref_fail(ex, op, "%s %d is %s%s at run time, declared %s", what, idx, mor_dtype_name(t->dt), s, b.data);
    mor_buf_free(&b);
    return -1;
  }
  for (int i = 0; i < t->rank; i++) {
    const mor_dim *d = &ty->dims[i];
    if (d->sym >= 0) {
      int64_t bound = d->sym < m->n_syms ? m->syms[d->sym].bound : d->n;
      if (t->shape[i] > bound)
        return mor_ref_fail(ex, op, "%s %d: dim %d is %lld at run time, above the bound of %s (%lld)", what, idx, i,
                            (long long)t->shape[i], d->sym < m->n_syms ? m->syms[d->sym].name : "?", (long long)bound);
    } else if (t->shape[i] != d->n) {
      return mor_ref_fail(ex, op, "%s %d: dim %d is %lld at run time, declared %lld", what, idx, i,
                          (long long)t->shape[i], (long long)d->n);
    }
  }
  return 0;
}

/* ---- helpers for ops.c ---------------------------------------------------- */

mor_rt *mor_ref_arg(mor_exec *ex, const mor_op *op, int i, int dt, int rank) {
  if (i >= op->n_operands) {
    mor_ref_fail(ex, op, "missing operand %d", i);
    return NULL;
  }
  mor_rt *t = &ex->vals[op->operands[i]->id];
  if (!t->defined) {
    mor_ref_fail(ex, op, "operand %d is used before it is computed", i);
    return NULL;
  }
  if (dt >= 0 && t->dt != (mor_dtype)dt) {
    mor_ref_fail(ex, op, "operand %d is %s, expected %s", i, mor_dtype_name(t->dt), mor_dtype_name((mor_dtype)dt));
    return NULL;
  }
  if (rank >= 0 && t->rank != rank) {
    mor_ref_fail(ex, op, "operand %d has rank %d, expected %d", i, t->rank, rank);
    return NULL;
  }
  if (rank == -1 && t->rank < 1) {
    mor_ref_fail(ex, op, "operand %d is a scalar, expected rows", i);
    return NULL;
  }
  return t;
}

mor_rt *mor_ref_res(mor_exec *ex, const mor_op *op, int i, mor_dtype dt, int rank, const int64_t *shape) {
  if (i >= op->n_results) {
    mor_ref_fail(ex, op, "missing result %d", i);
    return NULL;
  }
  mor_rt *t = &ex->vals[op->results[i]->id];
  rt_alloc(t, dt, rank, shape);
  return t;
}

int64_t mor_ref_depth(mor_exec *ex, const mor_op *op, int i) {
  if (op->n_operands <= i) return 0;
  mor_rt *t = mor_ref_arg(ex, op, i, MOR_I64, 0);
  if (!t) return -1;
  int64_t d = *(const int64_t *)t->data;
  if (d < 0) return mor_ref_fail(ex, op, "depth %lld is negative", (long long)d);
  return d;
}

int mor_ref_attr_int(mor_exec *ex, const mor_op *op, const char *name, int64_t *out) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return mor_ref_fail(ex, op, "missing attribute '%s'", name);
  if (a->kind != MOR_ATTR_INT) return mor_ref_fail(ex, op, "attribute '%s' is not an integer", name);
  *out = a->i;
  return 0;
}

int mor_ref_attr_float(mor_exec *ex, const mor_op *op, const char *name, double *out) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return mor_ref_fail(ex, op, "missing attribute '%s'", name);
  if (a->kind == MOR_ATTR_FLOAT) *out = a->f;
  else if (a->kind == MOR_ATTR_INT) *out = (double)a->i;
  else return mor_ref_fail(ex, op, "attribute '%s' is not a number", name);
  return 0;
}

const char *mor_ref_attr_str(mor_exec *ex, const mor_op *op, const char *name) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a || (a->kind != MOR_ATTR_STR && a->kind != MOR_ATTR_SYM)) {
    mor_ref_fail(ex, op, "missing string attribute '%s'", name);
    return NULL;
  }
  return a->s;
}

/* The symbol named by entry idx of a SYM or SYMS attribute; NULL on error. */
static const char *sym_entry(mor_exec *ex, const mor_op *op, const char *attr, int64_t idx) {
  const mor_attr *a = mor_op_attr(op, attr);
  if (!a) {
    mor_ref_fail(ex, op, "missing attribute '%s'", attr);
    return NULL;
  }
  if (a->kind == MOR_ATTR_SYM) {
    if (idx != 0) {
      mor_ref_fail(ex, op, "attribute '%s' names one symbol, but depth is %lld", attr, (long long)idx);
      return NULL;
    }
    return a->s;
  }
  if (a->kind != MOR_ATTR_SYMS) {
    mor_ref_fail(ex, op, "attribute '%s' is not a symbol list", attr);
    return NULL;
  }
  if (idx >= a->n) {
    mor_ref_fail(ex, op, "attribute '%s' has %d entries, no entry for depth %lld", attr, a->n, (long long)idx);
    return NULL;
  }
  return a->syms[idx];
}

const float *mor_ref_weight(mor_exec *ex, const mor_op *op, const char *attr, int idx, int rank, const int64_t *dims,
                            const mor_global **gout) {
  const char *name = sym_entry(ex, op, attr, idx);
  if (!name) return NULL;
  if (!strcmp(name, "none")) {
    mor_ref_fail(ex, op, "attribute '%s' entry %d is @none, a weight is needed", attr, idx);
    return NULL;
  }
  const mor_global *g = mor_find_global(ex->r->m, name);
  if (!g || g->kind != MOR_GLOBAL_WEIGHT) {
    mor_ref_fail(ex, op, "@%s is not a weight global", MOR_SYM(name));
    return NULL;
  }
  int ok = g->type.rank == rank;
  for (int i = 0; ok && i < rank; i++)
    if (dims[i] >= 0 && g->type.dims[i].n != dims[i]) ok = 0;
  if (!ok) {
    char want[128], have[128];
    int64_t gd[MOR_MAX_RANK];
    for (int i = 0; i < g->type.rank; i++) gd[i] = g->type.dims[i].n;
    shape_str(have, sizeof have, g->type.rank, gd);
    shape_str(want, sizeof want, rank, dims);
    mor_ref_fail(ex, op, "weight @%s has shape %s, expected %s (-1: any)", MOR_SYM(name), have, want);
    return NULL;
  }
  if (gout) *gout = g;
  return ex->r->wdata[g - ex->r->m->globals];
}

mor_kvstore *mor_ref_cache(mor_exec *ex, const mor_op *op, const char *attr, int64_t idx, int *none,
                           const mor_global **gout) {
  *none = 0;
  const char *name = sym_entry(ex, op, attr, idx);
  if (!name) return NULL;
  if (!strcmp(name, "none")) {
    *none = 1;
    return NULL;
  }
  const mor_global *g = mor_find_global(ex->r->m, name);
  if (!g || g->kind != MOR_GLOBAL_KV) {
    mor_ref_fail(ex, op, "@%s is not a KV cache global", MOR_SYM(name));
    return NULL;
  }
  if (!ex->s) {
    mor_ref_fail(ex, op, "KV cache @%s used, but the call has no sequence", MOR_SYM(name));
    return NULL;
  }
  if (gout) *gout = g;
  return &ex->s->stores[ex->r->store_of[g - ex->r->m->globals]];
}

/* ---- binding ---------------------------------------------------------------- */

static int bind_weight(mor_ref *r, int gi, mor_err *err) {
  const mor_global *g = &r->m->globals[gi];
  const mor_tensor *t = r->w ? mor_weights_find(r->w, g->name) : NULL;
  if (!t) {
    mor_errf(err, "weight @%s: no tensor '%s' in the weight files", MOR_SYM(g->name), MOR_SYM(g->name));
    return -1;
  }
  if (t->dtype != g->type.dtype) {
    mor_errf(err, "%s: tensor '%s': dtype %s, but the module declares %s", t->file ? t->file : "weights", t->name,
             mor_dtype_name(t->dtype), mor_dtype_name(g->type.dtype));
    return -1;
  }
  int ok = t->rank == g->type.rank;
  for (int i = 0; ok && i < t->rank; i++)
    if (t->shape[i] != g->type.dims[i].n) ok = 0;
  if (!ok) {
    char have[128];
    shape_str(have, sizeof have, t->rank, t->shape);
    mor_buf b = {0};
    mor_print_type(&b, r->m, &g->type);
    mor_buf_putc(&b, 0);
    mor_errf(err, "%s: tensor '%s': shape %s, but the module declares %s", t->file ? t->file : "weights", t->name, have,
             b.data);
    mor_buf_free(&b);
    return -1;
  }
  if (t->dtype == MOR_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
    r->wdata[gi] = t->data;
  } else {
    float *d = mor_xmalloc((size_t)t->numel * sizeof(float));
    for (int64_t i = 0; i < t->numel; i++) d[i] = mor_tensor_get(t, i);
    r->owned[gi] = d;
    r->wdata[gi] = d;
  }
  return 0;
}

static int bind_kv(mor_ref *r, mor_err *err) {
  const mor_module *m = r->m;
  int n = m->n_globals;
  /* roots first: every KV global without an alias gets a store */
  for (int i = 0; i < n; i++) {
    const mor_global *g = &m->globals[i];
    if (g->kind != MOR_GLOBAL_KV || g->alias) continue;
    if (g->type.rank != 3 || g->type.dtype != MOR_F32) {
      mor_errf(err, "KV cache @%s: type must be f32[capacity, kv_heads, head_dim]", MOR_SYM(g->name));
      return -1;
    }
    const mor_dim *c = &g->type.dims[0];
    int k = r->n_stores++;
    r->store_of[i] = k;
    r->store_cap[k] = c->sym >= 0 && c->sym < m->n_syms ? m->syms[c->sym].bound : c->n;
    r->store_width[k] = g->type.dims[1].n * g->type.dims[2].n;
  }
  for (int i = 0; i < n; i++) {
    const mor_global *g = &m->globals[i];
    if (g->kind != MOR_GLOBAL_KV || !g->alias) continue;
    const mor_global *t = g;
    int steps = 0;
    while (t->alias) {
      const mor_global *next = mor_find_global(m, t->alias);
      if (!next || next->kind != MOR_GLOBAL_KV) {
        mor_errf(err, "KV cache @%s: alias @%s is not a KV cache global", MOR_SYM(t->name), MOR_SYM(t->alias));
        return -1;
      }
      if (++steps > n) {
        mor_errf(err, "KV cache @%s: aliases form a cycle", MOR_SYM(g->name));
        return -1;
      }
      t = next;
    }
    int k = r->store_of[t - m->globals];
    if (g->type.rank != 3 || g->type.dims[1].n * g->type.dims[2].n != r->store_width[k]) {
      mor_errf(err, "KV cache @%s: row width differs from that of its alias target @%s", MOR_SYM(g->name),
               MOR_SYM(t->name));
      return -1;
    }
    r->store_of[i] = k;
  }
  return 0;
}

/* A plan per block: which values die after which op. Values owned by a
 * block are its arguments and the results of its ops; a use inside a nested
 * region counts as a use at the op that owns the region. */
static void mark_uses(const mor_op *op, int j, int *last) {
  for (int i = 0; i < op->n_operands; i++) {
    int id = op->operands[i]->id;
    if (last[id] != -2 && last[id] < j) last[id] = j;
  }
  if (op->region)
    for (const mor_op *o = op->region->first; o; o = o->next) mark_uses(o, j, last);
}

static void build_plans(mor_ref *r, const mor_block *b) {
  int nv = r->m->next_value_id;
  r->plans = mor_xrealloc(r->plans, sizeof *r->plans * (size_t)(r->n_plans + 1));
  mor_bplan *p = &r->plans[r->n_plans++];
  memset(p, 0, sizeof *p);
  p->b = b;
  for (const mor_op *o = b->first; o; o = o->next) p->n_ops++;
  p->ops = mor_xcalloc((size_t)p->n_ops + 1, sizeof *p->ops);
  int *last = mor_xmalloc(sizeof(int) * (size_t)(nv ? nv : 1));
  for (int i = 0; i < nv; i++) last[i] = -2;
  for (int i = 0; i < b->n_args; i++) last[b->args[i]->id] = 0;
  int j = 0;
  for (mor_op *o = b->first; o; o = o->next, j++) {
    p->ops[j] = o;
    for (int i = 0; i < o->n_results; i++) last[o->results[i]->id] = j;
  }
  for (j = 0; j < p->n_ops; j++) mark_uses(p->ops[j], j, last);
  p->free_off = mor_xcalloc((size_t)p->n_ops + 2, sizeof(int));
  int total = 0;
  for (int i = 0; i < nv; i++)
    if (last[i] >= 0) p->free_off[last[i] + 1]++, total++;
  for (j = 0; j < p->n_ops; j++) p->free_off[j + 1] += p->free_off[j];
  p->free_ids = mor_xcalloc((size_t)total + 1, sizeof(int));
  int *fill = mor_xcalloc((size_t)p->n_ops + 1, sizeof(int));
  for (int i = 0; i < nv; i++)
    if (last[i] >= 0) p->free_ids[p->free_off[last[i]] + fill[last[i]]++] = i;
  free(fill);
  free(last);
  /* p may move when nested plans are added: use indices from here on */
  int n_ops = p->n_ops;
  mor_op **ops = p->ops;
  for (j = 0; j < n_ops; j++)
    if (ops[j]->region) build_plans(r, ops[j]->region);
}

static const mor_bplan *find_plan(const mor_ref *r, const mor_block *b) {
  for (int i = 0; i < r->n_plans; i++)
    if (r->plans[i].b == b) return &r->plans[i];
  return NULL;
}

mor_ref *mor_ref_new(const mor_module *m, const mor_weights *w, mor_err *err) {
  if (mor_verify_module(m, err)) return NULL;
  mor_ref *r = mor_xcalloc(1, sizeof *r);
  r->m = m;
  r->w = w;
  int n = m->n_globals;
  r->wdata = mor_xcalloc((size_t)n + 1, sizeof *r->wdata);
  r->owned = mor_xcalloc((size_t)n + 1, sizeof *r->owned);
  r->store_of = mor_xcalloc((size_t)n + 1, sizeof *r->store_of);
  r->store_cap = mor_xcalloc((size_t)n + 1, sizeof *r->store_cap);
  r->store_width = mor_xcalloc((size_t)n + 1, sizeof *r->store_width);
  for (int i = 0; i < n; i++) r->store_of[i] = -1;
  for (int i = 0; i < n; i++)
    if (m->globals[i].kind == MOR_GLOBAL_WEIGHT && bind_weight(r, i, err)) goto fail;
  if (bind_kv(r, err)) goto fail;
  for (int i = 0; i < m->n_funcs; i++) build_plans(r, m->funcs[i]->body);
  r->max_pos = mor_mattr_int(m, "max_position_embeddings", -1);
  r->vocab = mor_mattr_int(m, "vocab_size", -1);
  return r;
fail:
  mor_ref_free(r);
  return NULL;
}

void mor_ref_free(mor_ref *r) {
  if (!r) return;
  for (int i = 0; i < r->m->n_globals; i++) free(r->owned[i]);
  for (int i = 0; i < r->n_plans; i++) {
    free(r->plans[i].ops);
    free(r->plans[i].free_off);
    free(r->plans[i].free_ids);
  }
  free(r->plans);
  free(r->wdata);
  free(r->owned);
  free(r->store_of);
  free(r->store_cap);
  free(r->store_width);
  free(r);
}

/* ---- sequences ---------------------------------------------------------------- */

mor_ref_seq *mor_ref_seq_new(mor_ref *r) {
  mor_ref_seq *s = mor_xcalloc(1, sizeof *s);
  s->r = r;
  s->n_stores = r->n_stores;
  s->stores = mor_xcalloc((size_t)r->n_stores + 1, sizeof *s->stores);
  for (int i = 0; i < r->n_stores; i++) {
    s->stores[i].capacity = r->store_cap[i];
    s->stores[i].width = r->store_width[i];
  }
  return s;
}

void mor_ref_seq_free(mor_ref_seq *s) {
  if (!s) return;
  for (int i = 0; i < s->n_stores; i++) {
    free(s->stores[i].pos);
    free(s->stores[i].k);
    free(s->stores[i].v);
  }
  free(s->stores);
  free(s);
}

int64_t mor_ref_seq_len(const mor_ref_seq *s) { return s->len; }

int64_t mor_ref_seq_cache_len(const mor_ref_seq *s, const char *name) {
  const mor_global *g = mor_find_global(s->r->m, name);
  if (!g || g->kind != MOR_GLOBAL_KV) return -1;
  return s->stores[s->r->store_of[g - s->r->m->globals]].n;
}

static int64_t *snapshot(const mor_ref_seq *s) {
  if (!s) return NULL;
  int64_t *snap = mor_xcalloc((size_t)s->n_stores + 1, sizeof *snap);
  for (int i = 0; i < s->n_stores; i++) snap[i] = s->stores[i].n;
  return snap;
}

static void restore(mor_ref_seq *s, const int64_t *snap) {
  if (!s) return;
  for (int i = 0; i < s->n_stores; i++)
    if (s->stores[i].n > snap[i]) s->stores[i].n = snap[i];
}

/* ---- the interpreter ---------------------------------------------------------- */

static int exec_block(mor_exec *ex, const mor_block *b, mor_rt *out, int n_out);

static int exec_terminator(mor_exec *ex, const mor_op *op, mor_rt *out, int n_out) {
  if (op->next) return mor_ref_fail(ex, op, "terminator is not the last op of its block");
  if (op->n_operands != n_out)
    return mor_ref_fail(ex, op, "gives %d values, %d expected", op->n_operands, n_out);
  for (int i = 0; i < n_out; i++) {
    mor_rt *t = mor_ref_arg(ex, op, i, -1, -2 /* any rank */);
    if (!t) return -1;
    rt_clone(&out[i], t);
  }
  return 0;
}

static int exec_recur(mor_exec *ex, const mor_op *op) {
  int64_t n;
  if (mor_ref_attr_int(ex, op, "n", &n)) return -1;
  const mor_block *body = op->region;
  int nc = op->n_operands;
  if (!body) return mor_ref_fail(ex, op, "has no region");
  if (op->n_results != nc || body->n_args != nc + 1)
    return mor_ref_fail(ex, op, "%d carried values, %d results and %d region arguments do not match", nc, op->n_results,
                        body->n_args);
  if (n < 0) return mor_ref_fail(ex, op, "n = %lld is negative", (long long)n);
  mor_rt *carried = mor_xcalloc((size_t)nc + 1, sizeof *carried);
  int rc = 0;
  for (int i = 0; i < nc; i++) {
    mor_rt *t = mor_ref_arg(ex, op, i, -1, -2);
    if (!t) {
      rc = -1;
      goto done;
    }
    rt_clone(&carried[i], t);
  }
  for (int64_t d = 0; d < n; d++) {
    mor_rt *dv = &ex->vals[body->args[0]->id];
    rt_alloc(dv, MOR_I64, 0, NULL);
    *(int64_t *)dv->data = d;
    for (int i = 0; i < nc; i++) {
      if ((rc = check_type(ex, op, "carried value", i, &carried[i], &body->args[i + 1]->type))) goto done;
      rt_move(&ex->vals[body->args[i + 1]->id], &carried[i]);
    }
    if ((rc = exec_block(ex, body, carried, nc))) goto done;
  }
  for (int i = 0; i < nc; i++) rt_move(&ex->vals[op->results[i]->id], &carried[i]);
done:
  for (int i = 0; i < nc; i++) rt_clear(&carried[i]);
  free(carried);
  return rc;
}

/* call: run the callee's body on the arguments, with the caller's sequence
 * (KV caches); errors inside it are prefixed with the call's location. */
static int exec_call(mor_exec *ex, const mor_op *op) {
  const char *name = mor_ref_attr_str(ex, op, "callee");
  if (!name) return -1;
  const mor_func *f = mor_find_func(ex->r->m, name);
  if (!f) return mor_ref_fail(ex, op, "no function @%s in the module", MOR_SYM(name));
  if (op->n_operands != f->body->n_args || op->n_results != f->n_results)
    return mor_ref_fail(ex, op, "@%s takes %d arguments and gives %d results, the call has %d and %d", MOR_SYM(name),
                        f->body->n_args, f->n_results, op->n_operands, op->n_results);
  for (int i = 0; i < op->n_operands; i++) {
    mor_rt *t = mor_ref_arg(ex, op, i, -1, -2);
    if (!t || check_type(ex, op, "argument", i, t, &f->body->args[i]->type)) return -1;
    rt_clone(&ex->vals[f->body->args[i]->id], t);
  }
  char where[512];
  op_where(ex, op, where, sizeof where);
  mor_rt *out = mor_xcalloc((size_t)f->n_results + 1, sizeof *out);
  const mor_func *caller = ex->f;
  ex->f = f;
  int rc = exec_block(ex, f->body, out, f->n_results);
  for (int i = 0; i < f->n_results && !rc; i++) rc = check_type(ex, NULL, "result", i, &out[i], &f->result_types[i]);
  ex->f = caller;
  if (rc) mor_err_prefix(ex->err, "%s", where);
  for (int i = 0; i < f->n_results; i++) {
    if (!rc) rt_move(&ex->vals[op->results[i]->id], &out[i]);
    rt_clear(&out[i]);
  }
  free(out);
  return rc;
}

static int exec_block(mor_exec *ex, const mor_block *b, mor_rt *out, int n_out) {
  const mor_bplan *p = find_plan(ex->r, b);
  if (!p) return mor_ref_fail(ex, NULL, "internal error: block without a plan");
  int terminated = 0;
  for (int j = 0; j < p->n_ops; j++) {
    const mor_op *op = p->ops[j];
    int rc;
    switch (op->code) {
    case MOR_OP_RECUR: rc = exec_recur(ex, op); break;
    case MOR_OP_CALL: rc = exec_call(ex, op); break;
    case MOR_OP_YIELD:
      if (!b->parent_op) return mor_ref_fail(ex, op, "yield outside a region");
      rc = exec_terminator(ex, op, out, n_out);
      terminated = 1;
      break;
    case MOR_OP_RETURN:
      if (b->parent_op) return mor_ref_fail(ex, op, "return inside a region");
      rc = exec_terminator(ex, op, out, n_out);
      terminated = 1;
      break;
    default: rc = mor_ref_exec_op(ex, op); break;
    }
    if (rc) return -1;
    for (int i = 0; i < op->n_results; i++)
      if (check_type(ex, op, "result", i, &ex->vals[op->results[i]->id], &op->results[i]->type)) return -1;
    for (int k = p->free_off[j]; k < p->free_off[j + 1]; k++) rt_clear(&ex->vals[p->free_ids[k]]);
  }
  if (!terminated)
    return mor_ref_fail(ex, NULL, "a block ends without %s", b->parent_op ? "yield" : "return");
  return 0;
}

/* Run f; on success `out` (f->n_results entries) holds the results. */
static int run_func(mor_ref *r, mor_ref_seq *s, const mor_func *f, int n_args, const mor_rt *args, mor_rt *out,
                    mor_err *err) {
  mor_exec ex = {.r = r, .s = s, .err = err, .f = f};
  if (s && s->r != r) return mor_ref_fail(&ex, NULL, "the sequence belongs to another mor_ref");
  if (n_args != f->body->n_args)
    return mor_ref_fail(&ex, NULL, "called with %d arguments, the function takes %d", n_args, f->body->n_args);
  ex.had_cache = s && s->len > 0;
  for (int i = 0; s && i < s->n_stores; i++)
    if (s->stores[i].n > 0) ex.had_cache = 1;
  ex.vals = mor_xcalloc((size_t)r->m->next_value_id + 1, sizeof *ex.vals);
  int64_t *snap = snapshot(s);
  int rc = 0;
  for (int i = 0; i < n_args && !rc; i++) {
    rc = check_type(&ex, NULL, "argument", i, &args[i], &f->body->args[i]->type);
    if (!rc) rt_clone(&ex.vals[f->body->args[i]->id], &args[i]);
  }
  if (!rc) rc = exec_block(&ex, f->body, out, f->n_results);
  for (int i = 0; i < f->n_results && !rc; i++) rc = check_type(&ex, NULL, "function result", i, &out[i], &f->result_types[i]);
  for (int i = 0; i < r->m->next_value_id; i++) rt_clear(&ex.vals[i]);
  free(ex.vals);
  if (rc) {
    for (int i = 0; i < f->n_results; i++) rt_clear(&out[i]);
    restore(s, snap);
  }
  free(snap);
  return rc;
}

int mor_ref_call(mor_ref *r, mor_ref_seq *s, const char *func, int n_args, const mor_ref_tensor *args, int n_results,
                 mor_ref_tensor *results, mor_err *err) {
  const mor_func *f = mor_find_func(r->m, func);
  if (!f) {
    mor_errf(err, "no function @%s in the module", MOR_SYM(func));
    return -1;
  }
  if (n_results != f->n_results) {
    mor_errf(err, "@%s: %d results requested, the function has %d", MOR_SYM(func), n_results, f->n_results);
    return -1;
  }
  mor_rt *in = mor_xcalloc((size_t)n_args + 1, sizeof *in);
  for (int i = 0; i < n_args; i++) {
    in[i].defined = 1;
    in[i].dt = args[i].dtype;
    in[i].rank = args[i].rank;
    memcpy(in[i].shape, args[i].shape, sizeof in[i].shape);
    in[i].numel = shape_numel(args[i].rank, args[i].shape);
    in[i].data = args[i].data; /* borrowed: never freed here */
  }
  mor_rt *out = mor_xcalloc((size_t)n_results + 1, sizeof *out);
  int rc = run_func(r, s, f, n_args, in, out, err);
  for (int i = 0; i < n_results; i++) {
    memset(&results[i], 0, sizeof results[i]);
    if (rc) continue;
    results[i].dtype = out[i].dt;
    results[i].rank = out[i].rank;
    memcpy(results[i].shape, out[i].shape, sizeof results[i].shape);
    results[i].data = out[i].data;
  }
  free(out);
  free(in);
  return rc;
}

void mor_ref_tensor_free(mor_ref_tensor *t) {
  if (!t) return;
  free(t->data);
  t->data = NULL;
}

int mor_ref_forward(mor_ref *r, mor_ref_seq *s, const int32_t *tokens, int64_t T, float *logits, int32_t *depths,
                    mor_err *err) {
  const mor_func *f = mor_find_func(r->m, "forward");
  if (!f) {
    mor_errf(err, "no function @forward in the module");
    return -1;
  }
  if (s->r != r) {
    mor_errf(err, "@forward: the sequence belongs to another mor_ref");
    return -1;
  }
  if (T < 1) {
    mor_errf(err, "@forward: no tokens given");
    return -1;
  }
  if (f->body->n_args != 2 || f->n_results < 1 || (depths && f->n_results < 2)) {
    mor_errf(err, "@forward: expected (tokens, pos) -> (logits, depths), found %d arguments and %d results",
             f->body->n_args, f->n_results);
    return -1;
  }
  int64_t pos0 = s->len;
  for (int64_t i = 0; i < T; i++) {
    if (r->vocab >= 0 && (tokens[i] < 0 || tokens[i] >= r->vocab)) {
      mor_errf(err, "@forward: token %lld: id %d out of range [0, %lld)", (long long)i, tokens[i], (long long)r->vocab);
      return -1;
    }
  }
  if (r->max_pos >= 0 && pos0 + T > r->max_pos) {
    int64_t i = r->max_pos - pos0 < 0 ? 0 : r->max_pos - pos0;
    mor_errf(err, "@forward: token %lld: position %lld >= max_position_embeddings %lld", (long long)i,
             (long long)(pos0 + i), (long long)r->max_pos);
    return -1;
  }
  if (pos0 + T > INT32_MAX) {
    mor_errf(err, "@forward: position %lld does not fit in i32", (long long)(pos0 + T - 1));
    return -1;
  }
  int32_t *pos = mor_xmalloc(sizeof *pos * (size_t)T);
  for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)(pos0 + i);
  mor_rt args[2] = {{.defined = 1, .dt = MOR_I32, .rank = 1, .shape = {T}, .numel = T, .data = (void *)tokens},
                    {.defined = 1, .dt = MOR_I32, .rank = 1, .shape = {T}, .numel = T, .data = pos}};
  mor_rt *out = mor_xcalloc((size_t)f->n_results, sizeof *out);
  int64_t *snap = snapshot(s);
  int rc = run_func(r, s, f, 2, args, out, err);
  if (!rc) {
    const mor_rt *lg = &out[0];
    if (lg->dt != MOR_F32 || lg->rank != 2 || lg->shape[0] != T || (r->vocab >= 0 && lg->shape[1] != r->vocab)) {
      char sh[128];
      shape_str(sh, sizeof sh, lg->rank, lg->shape);
      mor_errf(err, "@forward: result 0 (logits) is %s%s, expected f32[%lld,V]", mor_dtype_name(lg->dt), sh,
               (long long)T);
      rc = -1;
    } else if (depths && (out[1].dt != MOR_I32 || out[1].rank != 1 || out[1].shape[0] != T)) {
      mor_errf(err, "@forward: result 1 (depths) is not i32[%lld]", (long long)T);
      rc = -1;
    }
  }
  if (!rc) {
    if (logits) memcpy(logits, out[0].data, sizeof(float) * (size_t)out[0].numel);
    if (depths) memcpy(depths, out[1].data, sizeof(int32_t) * (size_t)T);
    s->len += T;
  } else {
    restore(s, snap);
  }
  for (int i = 0; i < f->n_results; i++) rt_clear(&out[i]);
  free(out);
  free(snap);
  free(pos);
  return rc;
}

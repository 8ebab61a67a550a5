/* plan_kv.c: the KV cache layout. Every KV global is one cache per (layer,
 * depth) or an alias of a depth-0 cache (recursive sharing, no storage of
 * its own). Its capacity in tokens becomes the upper bound of what the
 * rules of model-format.md section 5 can store in it:
 *   - top_k routing scores one call per sequence, so a cache holds at most
 *     the rows its writers can write in that call (exact under top_k);
 *   - otherwise every position can reach it: max_position_embeddings
 *     tokens per writer (threshold routing is planned at the upper bound).
 * Growth policy: "reserve" when every token of a call writes the cache,
 * "grow" (allocate on demand up to the capacity) when routing may skip
 * tokens. Bytes = capacity * kv_heads * head_dim * 4 (f32) * 2 (K and V). */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

typedef struct kvscan {
  mor_module *m;
  int64_t *rows;   /* per global: rows written per call, upper bound */
  int *writers;    /* per global: writing ops (per call) */
  int *partial;    /* per global: some writer may skip tokens */
  int tsym;        /* the symbol of the tokens of @forward, or -1 */
  int64_t *depth;  /* per value id: a known depth value, or -1 */
  int n_ids;
  int fuel;
} kvscan;

/* Resolve a dim through the binding of the current call (callee symbols ->
 * caller dims). */
static mor_dim resolve(const mor_dim *bind, const char *bound, mor_dim d) {
  if (d.sym >= 0 && bind && bound[d.sym]) return bind[d.sym];
  return d;
}

static int64_t dim_bound(const mor_module *m, mor_dim d) { return d.sym >= 0 ? m->syms[d.sym].bound : d.n; }

static int64_t depth_of(kvscan *K, const mor_value *v) {
  if (v->def && v->def->code == MOR_OP_CONST) return mor_op_int(v->def, "value", -1);
  return v->id < K->n_ids ? K->depth[v->id] : -1;
}

static void record(kvscan *K, const char *name, mor_dim rows) {
  if (!strcmp(name, "none")) return;
  mor_global *g = mor_find_global(K->m, name);
  if (!g || g->kind != MOR_GLOBAL_KV) return;
  while (g->alias) {
    mor_global *t = mor_find_global(K->m, g->alias);
    if (!t || t == g) break;
    g = t;
  }
  int i = (int)(g - K->m->globals);
  K->rows[i] += dim_bound(K->m, rows);
  K->writers[i]++;
  if (rows.sym < 0 || rows.sym != K->tsym) K->partial[i] = 1;
}

/* A write to the caches attribute of op at depth operand dv (or none). */
static void write_at(kvscan *K, const mor_op *op, const mor_value *dv, mor_dim rows) {
  const mor_attr *a = mor_op_attr(op, "caches");
  if (!a || a->kind != MOR_ATTR_SYMS) return;
  int64_t d = dv ? depth_of(K, dv) : 0;
  if (d >= 0) {
    if (d < a->n) record(K, a->syms[d], rows);
    return;
  }
  for (int i = 0; i < a->n; i++) record(K, a->syms[i], rows); /* unknown depth: any entry */
}

static void scan(kvscan *K, const mor_block *b, const mor_dim *bind, const char *bound) {
  if (--K->fuel < 0) return;
  for (const mor_op *op = b->first; op; op = op->next) {
    if (op->code == MOR_OP_KV_WRITE) {
      write_at(K, op, op->n_operands == 4 ? op->operands[3] : NULL,
               resolve(bind, bound, op->operands[0]->type.dims[0]));
    } else if (op->code == MOR_OP_QKV && mor_op_attr(op, "caches")) {
      int has_depth = op->operands[op->n_operands - 1]->type.dtype == MOR_I64;
      int has_idx = op->n_operands - 2 - has_depth > 0;
      const mor_value *rows = has_idx ? op->operands[2] : op->operands[0];
      write_at(K, op, has_depth ? op->operands[op->n_operands - 1] : NULL,
               resolve(bind, bound, rows->type.dims[0]));
    } else if (op->code == MOR_OP_RECUR) {
      int64_t n = mor_op_int(op, "n", 0);
      for (int64_t d = 0; d < n; d++) {
        K->depth[op->region->args[0]->id] = d;
        scan(K, op->region, bind, bound);
      }
      K->depth[op->region->args[0]->id] = -1;
    } else if (op->code == MOR_OP_CALL) {
      const char *c = mor_op_str(op, "callee");
      const mor_func *f = c ? mor_find_func(K->m, c) : NULL;
      if (!f || f->body->n_args != op->n_operands) continue;
      int ns = K->m->n_syms;
      mor_dim *nb = mor_xcalloc((size_t)ns + 1, sizeof *nb);
      char *nbd = mor_xcalloc((size_t)ns + 1, 1);
      for (int i = 0; i < op->n_operands; i++) {
        const mor_type *p = &f->body->args[i]->type, *a = &op->operands[i]->type;
        for (int d = 0; d < p->rank && d < a->rank; d++)
          if (p->dims[d].sym >= 0 && !nbd[p->dims[d].sym]) {
            nbd[p->dims[d].sym] = 1;
            nb[p->dims[d].sym] = resolve(bind, bound, a->dims[d]);
          }
        if (a->dtype == MOR_I64 && a->rank == 0) K->depth[f->body->args[i]->id] = depth_of(K, op->operands[i]);
      }
      scan(K, f->body, nb, nbd);
      free(nb);
      free(nbd);
    }
  }
}

static int has_top_k(const mor_block *b) {
  for (const mor_op *op = b->first; op; op = op->next) {
    if (op->region && has_top_k(op->region)) return 1;
    const char *mode = op->code == MOR_OP_SELECT ? mor_op_str(op, "mode") : NULL;
    if (mode && !strcmp(mode, "top_k")) return 1;
  }
  return 0;
}

int mor_pass_plan_kv(mor_module *m, int *changed, mor_err *err) {
  (void)err;
  *changed = 0;
  mor_func *fwd = mor_find_func(m, "forward");
  if (!fwd) return 0;
  int n = m->n_globals;
  kvscan K = {m, mor_xcalloc((size_t)n + 1, sizeof(int64_t)), mor_xcalloc((size_t)n + 1, sizeof(int)),
              mor_xcalloc((size_t)n + 1, sizeof(int)), -1, NULL, m->next_value_id, 10000};
  K.depth = mor_xmalloc(sizeof(int64_t) * (size_t)(K.n_ids + 1));
  for (int i = 0; i <= K.n_ids; i++) K.depth[i] = -1;
  if (fwd->body->n_args >= 1 && fwd->body->args[0]->type.rank >= 1) K.tsym = fwd->body->args[0]->type.dims[0].sym;
  scan(&K, fwd->body, NULL, NULL);
  int single_call = 0;
  for (int f = 0; f < m->n_funcs; f++) single_call |= has_top_k(m->funcs[f]->body);
  int64_t max_pos = mor_mattr_int(m, "max_position_embeddings", -1);
  for (int i = 0; i < n; i++) {
    mor_global *g = &m->globals[i];
    if (g->kind != MOR_GLOBAL_KV || g->alias || g->type.rank != 3) continue;
    int64_t per_pos = max_pos > 0 ? max_pos : g->type.dims[0].n;
    int64_t cap = g->type.dims[0].n;
    const char *policy = "reserve";
    if (K.writers[i] > 0) {
      cap = per_pos * K.writers[i];
      if (single_call && K.rows[i] < cap) cap = K.rows[i];
      if (K.partial[i]) policy = "grow";
    }
    if (cap < 1) cap = 1;
    if (g->type.dims[0].sym >= 0 || g->type.dims[0].n != cap || !g->policy || strcmp(g->policy, policy)) {
      *changed = 1;
      g->type.dims[0] = mor_dconst(cap);
      g->policy = mor_strdup(m, policy);
    }
  }
  /* aliases share their target's storage and type */
  for (int i = 0; i < n; i++) {
    mor_global *g = &m->globals[i];
    if (g->kind != MOR_GLOBAL_KV || !g->alias) continue;
    const mor_global *t = mor_find_global(m, g->alias);
    if (t && !mor_type_equal(&t->type, &g->type)) {
      g->type = t->type;
      *changed = 1;
    }
  }
  free(K.rows);
  free(K.writers);
  free(K.partial);
  free(K.depth);
  return 0;
}

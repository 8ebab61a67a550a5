/* util.c: IR utilities shared by the passes: effects, dead-code and
 * common-subexpression elimination, result-type inference, cloning and
 * symbol clean-up. */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

int mor_op_has_effects(const mor_op *op) {
  switch (op->code) {
  case MOR_OP_KV_WRITE:
  case MOR_OP_CALL:
  case MOR_OP_YIELD:
  case MOR_OP_RETURN: return 1;
  case MOR_OP_QKV: return mor_op_attr(op, "caches") != NULL;
  case MOR_OP_RECUR:
    for (const mor_op *o = op->region->first; o; o = o->next)
      if (o->code != MOR_OP_YIELD && mor_op_has_effects(o)) return 1;
    return 0;
  default: return 0;
  }
}

static int count_uses_in(const mor_block *b, const mor_value *v) {
  int n = 0;
  for (const mor_op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->n_operands; i++) n += op->operands[i] == v;
    if (op->region) n += count_uses_in(op->region, v);
  }
  return n;
}

int mor_count_uses(const mor_block *root, const mor_value *v) { return count_uses_in(root, v); }

mor_block *mor_root_block(mor_op *op) {
  mor_block *b = op->parent;
  while (b && b->parent_op) b = b->parent_op->parent;
  return b;
}

/* uses[id] over the whole tree under root */
static void tally(const mor_block *b, int *uses) {
  for (const mor_op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->n_operands; i++) uses[op->operands[i]->id]++;
    if (op->region) tally(op->region, uses);
  }
}

static void untally(const mor_op *op, int *uses) {
  for (int i = 0; i < op->n_operands; i++) uses[op->operands[i]->id]--;
  if (op->region)
    for (const mor_op *o = op->region->first; o; o = o->next) untally(o, uses);
}

static int dce_walk(mor_block *b, int *uses) {
  int removed = 0;
  for (mor_op *op = b->last, *prev; op; op = prev) {
    prev = op->prev;
    if (op->region) removed += dce_walk(op->region, uses);
    if (mor_op_has_effects(op)) continue;
    int used = 0;
    for (int i = 0; i < op->n_results; i++) used |= uses[op->results[i]->id] > 0;
    if (used) continue;
    untally(op, uses);
    mor_op_remove(op);
    removed++;
  }
  return removed;
}

static int max_id(const mor_block *b) {
  int mx = 0;
  for (int i = 0; i < b->n_args; i++)
    if (b->args[i]->id > mx) mx = b->args[i]->id;
  for (const mor_op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->n_results; i++)
      if (op->results[i]->id > mx) mx = op->results[i]->id;
    for (int i = 0; i < op->n_operands; i++)
      if (op->operands[i]->id > mx) mx = op->operands[i]->id;
    if (op->region) {
      int r = max_id(op->region);
      if (r > mx) mx = r;
    }
  }
  return mx;
}

int mor_dce_block(mor_block *b) {
  int n = max_id(b) + 1;
  int *uses = mor_xcalloc((size_t)n, sizeof *uses);
  tally(b, uses);
  int total = 0, k;
  while ((k = dce_walk(b, uses)) > 0) total += k;
  free(uses);
  return total;
}

/* ---- attributes ----------------------------------------------------------- */

int mor_attr_equal(const mor_attr *a, const mor_attr *b) {
  if (a->kind != b->kind) return 0;
  switch (a->kind) {
  case MOR_ATTR_INT: return a->i == b->i;
  case MOR_ATTR_FLOAT: return a->f == b->f || (a->f != a->f && b->f != b->f);
  case MOR_ATTR_STR:
  case MOR_ATTR_SYM: return strcmp(a->s, b->s) == 0;
  case MOR_ATTR_INTS:
  case MOR_ATTR_FLOATS:
  case MOR_ATTR_SYMS:
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) {
      if (a->kind == MOR_ATTR_INTS && a->ints[i] != b->ints[i]) return 0;
      if (a->kind == MOR_ATTR_FLOATS && a->floats[i] != b->floats[i]) return 0;
      if (a->kind == MOR_ATTR_SYMS && strcmp(a->syms[i], b->syms[i])) return 0;
    }
    return 1;
  }
  return 0;
}

void mor_op_del_attr(mor_op *op, const char *name) {
  for (int i = 0; i < op->n_attrs; i++)
    if (!strcmp(op->attrs[i].name, name)) {
      for (int j = i + 1; j < op->n_attrs; j++) op->attrs[j - 1] = op->attrs[j];
      op->n_attrs--;
      return;
    }
}

/* attributes equal, ignoring the `depth` annotation */
static int attrs_equal(const mor_op *a, const mor_op *b) {
  int na = 0, nb = 0;
  for (int i = 0; i < a->n_attrs; i++) {
    if (!strcmp(a->attrs[i].name, "depth")) continue;
    na++;
    const mor_attr *o = mor_op_attr(b, a->attrs[i].name);
    if (!o || !mor_attr_equal(&a->attrs[i], o)) return 0;
  }
  for (int i = 0; i < b->n_attrs; i++) nb += strcmp(b->attrs[i].name, "depth") != 0;
  return na == nb;
}

const char *mor_op_weight(const mor_op *op, int k) {
  static const char *single[] = {"weight", "norm", "wq", "wk", "wv", "wg", "wu"};
  for (size_t i = 0; i < sizeof single / sizeof *single; i++) {
    const mor_attr *a = mor_op_attr(op, single[i]);
    if (a && a->kind == MOR_ATTR_SYM && k-- == 0) return a->s;
  }
  static const char *lists[] = {"weights", "weights2"};
  for (size_t i = 0; i < 2; i++) {
    const mor_attr *a = mor_op_attr(op, lists[i]);
    if (!a || a->kind != MOR_ATTR_SYMS) continue;
    if (k < a->n) return a->syms[k];
    k -= a->n;
  }
  return NULL;
}

/* ---- CSE --------------------------------------------------------------------- */

static int cse_candidate(const mor_op *op) {
  if (op->region || op->n_results == 0 || mor_op_has_effects(op)) return 0;
  /* attention reads KV state that later writes change */
  return op->code != MOR_OP_ATTENTION;
}

static int same_op(const mor_op *a, const mor_op *b) {
  if (a->code != b->code || a->n_operands != b->n_operands || a->n_results != b->n_results) return 0;
  for (int i = 0; i < a->n_operands; i++)
    if (a->operands[i] != b->operands[i]) return 0;
  /* select/where results have a symbol of their own per op: equal ops give
   * equal rows, so the symbols may differ (types are re-inferred after) */
  int own_sym = a->code == MOR_OP_SELECT || a->code == MOR_OP_WHERE;
  for (int i = 0; i < a->n_results && !own_sym; i++)
    if (!mor_type_equal(&a->results[i]->type, &b->results[i]->type)) return 0;
  return attrs_equal(a, b);
}

static int cse_walk(mor_block *b, mor_block *root) {
  int merged = 0;
  for (mor_op *op = b->first; op; op = op->next) {
    if (op->region) merged += cse_walk(op->region, root);
    if (!cse_candidate(op)) continue;
    for (mor_op *later = op->next, *nx; later; later = nx) {
      nx = later->next;
      if (!cse_candidate(later) || !same_op(op, later)) continue;
      for (int i = 0; i < op->n_results; i++) mor_replace_uses(root, later->results[i], op->results[i]);
      mor_op_remove(later);
      merged++;
    }
  }
  return merged;
}

int mor_cse_block(mor_block *b) { return cse_walk(b, b); }

/* ---- type inference ------------------------------------------------------------ */

static const mor_global *wglobal(const mor_module *m, const mor_op *op, const char *attr) {
  const mor_attr *a = mor_op_attr(op, attr);
  if (!a) return NULL;
  const char *name = a->kind == MOR_ATTR_SYM ? a->s : (a->kind == MOR_ATTR_SYMS && a->n ? a->syms[0] : NULL);
  return name ? mor_find_global(m, name) : NULL;
}

static mor_type t2(mor_dim rows, mor_dim cols) {
  mor_dim d[2] = {rows, cols};
  return mor_type_make(MOR_F32, 2, d);
}

int mor_derive_types(const mor_module *m, const mor_op *op, mor_type *out) {
  mor_value *const *o = op->operands;
  const mor_global *w;
  switch (op->code) {
  case MOR_OP_EMBED:
    if (!(w = wglobal(m, op, "weight")) || w->type.rank != 2 || o[0]->type.rank < 1) return 0;
    out[0] = t2(o[0]->type.dims[0], w->type.dims[1]);
    return 1;
  case MOR_OP_MATMUL:
  case MOR_OP_NORM_MATMUL:
  case MOR_OP_MATMUL_ADD:
    if (!(w = wglobal(m, op, "weight")) || w->type.rank != 2 || o[0]->type.rank != 2) return 0;
    out[0] = t2(o[0]->type.dims[0], w->type.dims[0]);
    return 1;
  case MOR_OP_GATE_UP:
    if (!(w = wglobal(m, op, "wg")) || w->type.rank != 2 || o[0]->type.rank != 2) return 0;
    out[0] = t2(o[0]->type.dims[0], w->type.dims[0]);
    return 1;
  case MOR_OP_QKV: {
    int has_depth = op->n_operands > 2 && o[op->n_operands - 1]->type.dtype == MOR_I64;
    int has_idx = op->n_operands - 2 - has_depth > 0;
    if (!(w = wglobal(m, op, "wq")) || w->type.rank != 2) return 0;
    mor_value *rows = has_idx ? o[2] : o[0];
    if (rows->type.rank < 1) return 0;
    out[0] = t2(rows->type.dims[0], w->type.dims[0]);
    return 1;
  }
  case MOR_OP_RMSNORM:
  case MOR_OP_ROPE:
  case MOR_OP_ATTENTION:
  case MOR_OP_SILU_MUL:
  case MOR_OP_ADD:
  case MOR_OP_SCATTER:
  case MOR_OP_GATE_ADD:
  case MOR_OP_COUNT_ADD: out[0] = o[0]->type; return 1;
  case MOR_OP_MATMUL_STORE: out[0] = o[2]->type; return 1;
  case MOR_OP_ROUTER: {
    if (o[0]->type.rank != 2) return 0;
    int64_t outs = mor_op_int(op, "outputs", 1);
    mor_dim d[2] = {o[0]->type.dims[0], mor_dconst(outs)};
    out[0] = mor_type_make(MOR_F32, outs == 1 ? 1 : 2, d);
    return 1;
  }
  case MOR_OP_TC_ROUTE:
    out[0] = mor_type_make(MOR_I32, 1, o[0]->type.dims);
    out[1] = mor_type_make(MOR_F32, 1, o[0]->type.dims);
    return 1;
  case MOR_OP_GATHER:
    out[0] = o[0]->type;
    out[0].dims[0] = o[1]->type.dims[0];
    return 1;
  case MOR_OP_IOTA: out[0] = mor_type_make(MOR_I32, 1, o[0]->type.dims); return 1;
  case MOR_OP_FILL: out[0] = mor_type_make(op->results[0]->type.dtype, 1, o[0]->type.dims); return 1;
  case MOR_OP_CONST: out[0] = mor_type_make(MOR_I64, 0, NULL); return 1;
  case MOR_OP_CALL: {
    const char *callee = mor_op_str(op, "callee");
    const mor_func *f = callee ? mor_find_func(m, callee) : NULL;
    mor_err e;
    if (!f || f->n_results != op->n_results) return 0;
    return mor_call_result_types(m, f, op->n_operands, op->operands, out, &e) == 0;
  }
  default: return 0;
  }
}

int mor_infer_types(mor_module *m, mor_block *b, mor_err *err) {
  (void)err;
  mor_type rt[64];
  for (mor_op *op = b->first; op; op = op->next) {
    if (op->region) mor_infer_types(m, op->region, err);
    if (op->n_results <= 64 && mor_derive_types(m, op, rt))
      for (int i = 0; i < op->n_results; i++) op->results[i]->type = rt[i];
  }
  return 0;
}

/* ---- cloning ----------------------------------------------------------------------- */

static mor_value *mapped(mor_value **map, int map_len, mor_value *v) {
  if (v->id < map_len && map[v->id]) return map[v->id];
  return v;
}

mor_op *mor_clone_op(mor_module *m, const mor_op *op, mor_value **map, int map_len) {
  mor_value *ops[256];
  mor_type rt[64];
  for (int i = 0; i < op->n_operands && i < 256; i++) ops[i] = mapped(map, map_len, op->operands[i]);
  for (int i = 0; i < op->n_results && i < 64; i++) rt[i] = op->results[i]->type;
  mor_op *c = mor_op_new(m, op->code, op->n_operands, ops, op->n_results, rt);
  c->n_attrs = op->n_attrs;
  c->attrs = mor_alloc(m, sizeof(mor_attr) * (size_t)(op->n_attrs ? op->n_attrs : 1));
  for (int i = 0; i < op->n_attrs; i++) mor_attr_copy(m, &c->attrs[i], &op->attrs[i]);
  for (int i = 0; i < op->n_results; i++)
    if (op->results[i]->id < map_len) map[op->results[i]->id] = c->results[i];
  if (op->region) {
    c->region = mor_block_new(m);
    c->region->parent_op = c;
    for (int i = 0; i < op->region->n_args; i++) {
      mor_value *a = mor_block_add_arg(m, c->region, op->region->args[i]->type);
      if (op->region->args[i]->id < map_len) map[op->region->args[i]->id] = a;
    }
    for (const mor_op *o = op->region->first; o; o = o->next)
      mor_block_append(c->region, mor_clone_op(m, o, map, map_len));
  }
  return c;
}

/* ---- symbols ----------------------------------------------------------------------------- */

static void mark_type(const mor_type *t, char *used) {
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i].sym >= 0) used[t->dims[i].sym] = 1;
}

static void remap_type(mor_type *t, const int *to) {
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i].sym >= 0) t->dims[i].sym = to[t->dims[i].sym];
}

static void walk_types(mor_block *b, char *used, const int *to) {
  for (int i = 0; i < b->n_args; i++) {
    if (used) mark_type(&b->args[i]->type, used);
    else remap_type(&b->args[i]->type, to);
  }
  for (mor_op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->n_results; i++) {
      if (used) mark_type(&op->results[i]->type, used);
      else remap_type(&op->results[i]->type, to);
    }
    if (op->region) walk_types(op->region, used, to);
  }
}

void mor_compact_syms(mor_module *m) {
  if (!m->n_syms) return;
  char *used = mor_xcalloc((size_t)m->n_syms, 1);
  for (int f = 0; f < m->n_funcs; f++) {
    walk_types(m->funcs[f]->body, used, NULL);
    for (int r = 0; r < m->funcs[f]->n_results; r++) mark_type(&m->funcs[f]->result_types[r], used);
  }
  for (int g = 0; g < m->n_globals; g++) mark_type(&m->globals[g].type, used);
  int *to = mor_xmalloc(sizeof(int) * (size_t)m->n_syms);
  int n = 0;
  for (int i = 0; i < m->n_syms; i++) {
    to[i] = used[i] ? n : -1;
    if (used[i]) m->syms[n++] = m->syms[i];
  }
  if (n != m->n_syms) {
    m->n_syms = n;
    for (int f = 0; f < m->n_funcs; f++) {
      walk_types(m->funcs[f]->body, NULL, to);
      for (int r = 0; r < m->funcs[f]->n_results; r++) remap_type(&m->funcs[f]->result_types[r], to);
    }
    for (int g = 0; g < m->n_globals; g++) remap_type(&m->globals[g].type, to);
  }
  free(to);
  free(used);
}

/* ---- the clean-up passes ------------------------------------------------------------------ */

int mor_pass_dce(mor_module *m, int *changed, mor_err *err) {
  (void)err;
  int n = 0;
  for (int f = 0; f < m->n_funcs; f++) n += mor_dce_block(m->funcs[f]->body);
  *changed = n > 0;
  return 0;
}

int mor_pass_cse(mor_module *m, int *changed, mor_err *err) {
  (void)err;
  int n = 0;
  for (int f = 0; f < m->n_funcs; f++) {
    n += mor_cse_block(m->funcs[f]->body);
    mor_dce_block(m->funcs[f]->body);
  }
  *changed = n > 0;
  return 0;
}

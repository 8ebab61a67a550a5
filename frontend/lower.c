/* lower.c: model description -> high-level IR. Prefix and suffix layers
 * are emitted inline; the shared block becomes the region of a `recur` op
 * whose depth argument selects the per-depth routers and KV caches. */
#include "frontend/lower.h"
#include <stdlib.h>
#include <string.h>

typedef struct lowerer {
  mor_module *m;
  const mor_config *c;
  const mor_resolved *r;
  mor_block *blk;  /* where ops are appended */
  int sym_T;
  mor_value *pos;  /* i32[T], positions of all tokens of the call */
} lowerer;

static const char *wname(lowerer *L, const mor_tensor *t) {
  if (!mor_find_global(L->m, t->name)) {
    mor_dim d[4];
    for (int i = 0; i < t->rank; i++) d[i] = mor_dconst(t->shape[i]);
    mor_add_global(L->m, MOR_GLOBAL_WEIGHT, t->name, mor_type_make(t->dtype, t->rank, d));
  }
  return t->name;
}

static mor_type f32_2(mor_dim rows, int64_t cols) {
  mor_dim d[2] = {rows, mor_dconst(cols)};
  return mor_type_make(MOR_F32, 2, d);
}
static mor_type vec(mor_dtype dt, mor_dim rows) { return mor_type_make(dt, 1, &rows); }

static mor_op *emit(lowerer *L, mor_opcode code, int nops, mor_value *const *ops, int nres, const mor_type *rt) {
  mor_op *op = mor_op_new(L->m, code, nops, ops, nres, rt);
  mor_block_append(L->blk, op);
  return op;
}
static mor_value *emit1(lowerer *L, mor_opcode code, int nops, mor_value *const *ops, mor_type rt) {
  return emit(L, code, nops, ops, 1, &rt)->results[0];
}

static mor_value *matmul(lowerer *L, mor_value *x, const mor_tensor *w) {
  mor_op *op = emit(L, MOR_OP_MATMUL, 1, &x, 1, (mor_type[]){f32_2(x->type.dims[0], w->shape[0])});
  mor_op_set_sym(L->m, op, "weight", wname(L, w));
  return op->results[0];
}
static mor_value *rmsnorm(lowerer *L, mor_value *x, const mor_tensor *w) {
  mor_op *op = emit(L, MOR_OP_RMSNORM, 1, &x, 1, &x->type);
  mor_op_set_sym(L->m, op, "weight", wname(L, w));
  mor_op_set_float(L->m, op, "eps", L->c->rms_norm_eps);
  return op->results[0];
}
static mor_value *rope(lowerer *L, mor_value *x, mor_value *pos, int64_t heads) {
  mor_op *op = emit(L, MOR_OP_ROPE, 2, (mor_value *[]){x, pos}, 1, &x->type);
  mor_op_set_int(L->m, op, "heads", heads);
  mor_op_set_int(L->m, op, "head_dim", L->c->head_dim);
  mor_op_set_float(L->m, op, "theta", L->c->rope_theta);
  return op->results[0];
}

/* KV cache global of unrolled layer l at recursion depth (alias: depth-0 cache name or NULL). */
static char *kv_global(lowerer *L, int64_t l, int64_t depth, const char *alias) {
  char name[64];
  snprintf(name, sizeof name, "kv.%lld", (long long)l);
  if (!mor_find_global(L->m, name)) {
    mor_dim d[3] = {mor_dconst(L->c->max_pos), mor_dconst(L->c->num_kv_heads), mor_dconst(L->c->head_dim)};
    mor_global *g = mor_add_global(L->m, MOR_GLOBAL_KV, name, mor_type_make(MOR_F32, 3, d));
    g->layer = l;
    g->depth = depth;
    if (alias) g->alias = mor_strdup(L->m, alias);
  }
  return mor_find_global(L->m, name)->name;
}

/* One decoder layer on rows x (positions pos). `depth` (i64[] or NULL)
 * selects write_caches[depth] / read_caches[depth]. */
static mor_value *layer(lowerer *L, mor_value *x, mor_value *pos, const mor_layer_weights *w, mor_value *depth,
                        int ncache, char **write_caches, char **read_caches) {
  const mor_config *c = L->c;
  mor_value *a = rmsnorm(L, x, w->input_norm);
  mor_value *q = rope(L, matmul(L, a, w->wq), pos, c->num_heads);
  mor_value *k = rope(L, matmul(L, a, w->wk), pos, c->num_kv_heads);
  mor_value *v = matmul(L, a, w->wv);
  mor_value *wops[4] = {k, v, pos, depth};
  mor_op *kw = emit(L, MOR_OP_KV_WRITE, depth ? 4 : 3, wops, 0, NULL);
  mor_op_set_syms(L->m, kw, "caches", ncache, write_caches);
  mor_value *aops[3] = {q, pos, depth};
  mor_op *at = emit(L, MOR_OP_ATTENTION, depth ? 3 : 2, aops, 1, &q->type);
  mor_op_set_syms(L->m, at, "caches", ncache, read_caches);
  mor_op_set_int(L->m, at, "heads", c->num_heads);
  mor_op_set_int(L->m, at, "kv_heads", c->num_kv_heads);
  mor_op_set_int(L->m, at, "head_dim", c->head_dim);
  mor_value *h = emit1(L, MOR_OP_ADD, 2, (mor_value *[]){x, matmul(L, at->results[0], w->wo)}, x->type);
  mor_value *mm = rmsnorm(L, h, w->post_norm);
  mor_value *g = matmul(L, mm, w->wg), *u = matmul(L, mm, w->wu);
  mor_value *s = emit1(L, MOR_OP_SILU_MUL, 2, (mor_value *[]){g, u}, g->type);
  return emit1(L, MOR_OP_ADD, 2, (mor_value *[]){h, matmul(L, s, w->wd)}, h->type);
}

/* A layer outside the recursion stack (prefix/suffix): its own cache. */
static mor_value *plain_layer(lowerer *L, mor_value *x, const mor_layer_weights *w, int64_t l) {
  char *cache = kv_global(L, l, 0, NULL);
  return layer(L, x, L->pos, w, NULL, 1, &cache, &cache);
}

/* Cache lists of block layer j (cycle sharing) over all depths. */
static void block_caches(lowerer *L, int j, char **wr, char **rd) {
  const mor_config *c = L->c;
  int share = c->kv_mode == MOR_KV_RECURSIVE_SHARING;
  char *d0 = NULL;
  for (int r = 0; r < c->n_r; r++) {
    int64_t l = c->n_prefix + (int64_t)r * c->n_block + j;
    char *name = kv_global(L, l, r, share && r > 0 ? d0 : NULL);
    if (r == 0) d0 = name;
    rd[r] = name;
    wr[r] = share && r > 0 ? "none" : name;
  }
}

/* The shared block (all block layers) on rows x at positions pos. */
static mor_value *block(lowerer *L, mor_value *x, mor_value *pos, mor_value *depth) {
  const mor_config *c = L->c;
  char **wr = mor_xcalloc((size_t)c->n_r, sizeof(char *)), **rd = mor_xcalloc((size_t)c->n_r, sizeof(char *));
  for (int j = 0; j < c->n_block; j++) {
    block_caches(L, j, wr, rd);
    x = layer(L, x, pos, &L->r->block[j], depth, c->n_r, wr, rd);
  }
  free(wr);
  free(rd);
  return x;
}

/* Start a recur op over `n` carried values; returns the region block and
 * fills args (depth first). The caller appends the region's ops then yields. */
static mor_op *begin_recur(lowerer *L, int n, mor_value **init, const mor_type *arg_types, mor_block **saved) {
  mor_op *op = emit(L, MOR_OP_RECUR, n, init, n, arg_types);
  mor_op_set_int(L->m, op, "n", L->c->n_r);
  op->region = mor_block_new(L->m);
  op->region->parent_op = op;
  mor_block_add_arg(L->m, op->region, mor_type_make(MOR_I64, 0, NULL));
  for (int i = 0; i < n; i++) mor_block_add_arg(L->m, op->region, arg_types[i]);
  *saved = L->blk;
  L->blk = op->region;
  return op;
}
static void end_recur(lowerer *L, mor_block *saved, int n, mor_value **vals) {
  emit(L, MOR_OP_YIELD, n, vals, 0, NULL);
  L->blk = saved;
}

static mor_op *router(lowerer *L, mor_value *x, mor_value *depth, int outputs) {
  const mor_config *c = L->c;
  const mor_resolved *r = L->r;
  mor_type rt = outputs == 1 ? vec(MOR_F32, x->type.dims[0]) : f32_2(x->type.dims[0], outputs);
  mor_value *ops[2] = {x, depth};
  mor_op *op = emit(L, MOR_OP_ROUTER, depth ? 2 : 1, ops, 1, &rt);
  char **w = mor_xcalloc((size_t)r->n_routers, sizeof(char *)), **w2 = mor_xcalloc((size_t)r->n_routers, sizeof(char *));
  for (int i = 0; i < r->n_routers; i++) {
    w[i] = (char *)wname(L, r->router[i]);
    if (c->router == MOR_ROUTER_MLP) w2[i] = (char *)wname(L, r->router2[i]);
  }
  mor_op_set_syms(L->m, op, "weights", r->n_routers, w);
  if (c->router == MOR_ROUTER_MLP) mor_op_set_syms(L->m, op, "weights2", r->n_routers, w2);
  free(w);
  free(w2);
  mor_op_set_str(L->m, op, "kind", c->router == MOR_ROUTER_MLP ? "mlp" : "linear");
  static const char *acts[] = {"sigmoid", "tanh", "softmax"};
  mor_op_set_str(L->m, op, "act", acts[c->router_act]);
  mor_op_set_float(L->m, op, "temperature", c->temperature);
  mor_op_set_int(L->m, op, "outputs", outputs);
  return op;
}

static mor_value *gate_add(lowerer *L, mor_value *dst, mor_value *base, mor_value *y, mor_value *s, mor_value *idx,
                           double alpha) {
  mor_op *op = emit(L, MOR_OP_GATE_ADD, 5, (mor_value *[]){dst, base, y, s, idx}, 1, &dst->type);
  mor_op_set_float(L->m, op, "alpha", alpha);
  mor_op_set_str(L->m, op, "gating", L->c->gating == MOR_GATE_NONE ? "none" : "weighted");
  return op->results[0];
}

static mor_value *fill(lowerer *L, mor_value *like, mor_dtype dt, double value) {
  mor_op *op = emit(L, MOR_OP_FILL, 1, &like, 1, (mor_type[]){vec(dt, like->type.dims[0])});
  mor_op_set_float(L->m, op, "value", value);
  return op->results[0];
}

/* expert_choice stack; returns x and sets *dep */
static mor_value *expert_stack(lowerer *L, mor_value *x, mor_value **dep) {
  const mor_config *c = L->c;
  mor_module *m = L->m;
  mor_dim T = x->type.dims[0];
  mor_value *act0 = emit1(L, MOR_OP_IOTA, 1, &x, vec(MOR_I32, T));
  mor_value *dep0 = fill(L, x, MOR_I32, 0);
  int symA = mor_add_sym(m, "A", m->syms[L->sym_T].bound), symC = mor_add_sym(m, "C", m->syms[L->sym_T].bound);
  mor_dim A = mor_dsym(m, symA), C = mor_dsym(m, symC);
  mor_type at[3] = {x->type, vec(MOR_I32, A), vec(MOR_I32, T)};
  mor_block *saved;
  mor_op *rec = begin_recur(L, 3, (mor_value *[]){x, act0, dep0}, at, &saved);
  mor_value *depth = rec->region->args[0], *h = rec->region->args[1], *act = rec->region->args[2],
            *dep_in = rec->region->args[3];
  mor_value *s = router(L, h, depth, 1)->results[0];
  mor_op *sel = emit(L, MOR_OP_SELECT, 3, (mor_value *[]){s, act, depth}, 1, (mor_type[]){vec(MOR_I32, C)});
  mor_op_set_str(m, sel, "mode", c->infer_routing == MOR_INFER_TOPK ? "top_k" : "threshold");
  mor_op_set_floats(m, sel, "capacity", c->n_r, c->capacity);
  mor_op_set_float(m, sel, "threshold", c->threshold);
  mor_op_set_float(m, sel, "alpha", c->alpha);
  mor_value *ch = sel->results[0], *h2;
  if (c->kv_mode == MOR_KV_RECURSIVE_SHARING) {
    /* run on every active row (fills the depth-0 caches), keep the chosen */
    mor_value *hs = emit1(L, MOR_OP_GATHER, 2, (mor_value *[]){h, act}, f32_2(A, c->hidden_size));
    mor_value *ps = emit1(L, MOR_OP_GATHER, 2, (mor_value *[]){L->pos, act}, vec(MOR_I32, A));
    mor_value *y = block(L, hs, ps, depth);
    mor_value *yf = emit1(L, MOR_OP_SCATTER, 3, (mor_value *[]){h, act, y}, h->type);
    mor_value *yc = emit1(L, MOR_OP_GATHER, 2, (mor_value *[]){yf, ch}, f32_2(C, c->hidden_size));
    h2 = gate_add(L, h, h, yc, s, ch, c->alpha);
  } else {
    mor_value *hs = emit1(L, MOR_OP_GATHER, 2, (mor_value *[]){h, ch}, f32_2(C, c->hidden_size));
    mor_value *ps = emit1(L, MOR_OP_GATHER, 2, (mor_value *[]){L->pos, ch}, vec(MOR_I32, C));
    mor_value *y = block(L, hs, ps, depth);
    h2 = gate_add(L, h, h, y, s, ch, c->alpha);
  }
  mor_value *dep2 = emit1(L, MOR_OP_COUNT_ADD, 2, (mor_value *[]){dep_in, ch}, dep_in->type);
  end_recur(L, saved, 3, (mor_value *[]){h2, ch, dep2});
  *dep = rec->results[2];
  return rec->results[0];
}

static mor_value *token_stack(lowerer *L, mor_value *x, mor_value **dep) {
  const mor_config *c = L->c;
  mor_module *m = L->m;
  mor_dim T = x->type.dims[0];
  mor_value *p = router(L, x, NULL, c->n_r)->results[0];
  mor_op *tc = emit(L, MOR_OP_TC_ROUTE, 1, &p, 2, (mor_type[]){vec(MOR_I32, T), vec(MOR_F32, T)});
  mor_op_set_float(m, tc, "alpha", c->alpha);
  mor_value *d = tc->results[0], *w = tc->results[1];
  mor_value *dep0 = fill(L, x, MOR_I32, 0);
  int symA = mor_add_sym(m, "A", m->syms[L->sym_T].bound), symF = mor_add_sym(m, "F", m->syms[L->sym_T].bound);
  mor_dim A = mor_dsym(m, symA), F = mor_dsym(m, symF);
  mor_type at[3] = {x->type, x->type, vec(MOR_I32, T)};
  mor_block *saved;
  mor_op *rec = begin_recur(L, 3, (mor_value *[]){x, x, dep0}, at, &saved);
  mor_value *depth = rec->region->args[0], *cur = rec->region->args[1], *out = rec->region->args[2],
            *dep_in = rec->region->args[3];
  mor_op *wa = emit(L, MOR_OP_WHERE, 2, (mor_value *[]){d, depth}, 1, (mor_type[]){vec(MOR_I32, A)});
  mor_op_set_str(m, wa, "cmp", "ge");
  mor_value *act = wa->results[0];
  mor_value *cs = emit1(L, MOR_OP_GATHER, 2, (mor_value *[]){cur, act}, f32_2(A, c->hidden_size));
  mor_value *ps = emit1(L, MOR_OP_GATHER, 2, (mor_value *[]){L->pos, act}, vec(MOR_I32, A));
  mor_value *y = block(L, cs, ps, depth);
  mor_value *cur2 = emit1(L, MOR_OP_SCATTER, 3, (mor_value *[]){cur, act, y}, cur->type);
  mor_op *wf = emit(L, MOR_OP_WHERE, 2, (mor_value *[]){d, depth}, 1, (mor_type[]){vec(MOR_I32, F)});
  mor_op_set_str(m, wf, "cmp", "eq");
  mor_value *fin = wf->results[0];
  mor_value *yf = emit1(L, MOR_OP_GATHER, 2, (mor_value *[]){cur2, fin}, f32_2(F, c->hidden_size));
  mor_value *out2 = gate_add(L, out, x, yf, w, fin, 1.0);
  mor_value *dep2 = emit1(L, MOR_OP_COUNT_ADD, 2, (mor_value *[]){dep_in, act}, dep_in->type);
  end_recur(L, saved, 3, (mor_value *[]){cur2, out2, dep2});
  *dep = rec->results[2];
  return rec->results[1];
}

/* routing none, cycle sharing: the block n_r times on every row */
static mor_value *plain_stack(lowerer *L, mor_value *x) {
  mor_block *saved;
  mor_op *rec = begin_recur(L, 1, &x, &x->type, &saved);
  mor_value *y = block(L, rec->region->args[1], L->pos, rec->region->args[0]);
  end_recur(L, saved, 1, &y);
  return rec->results[0];
}

/* routing none, sequence sharing: each unique layer n_r times in a row */
static mor_value *sequence_stack(lowerer *L, mor_value *x) {
  const mor_config *c = L->c;
  int share = c->kv_mode == MOR_KV_RECURSIVE_SHARING;
  char **wr = mor_xcalloc((size_t)c->n_r, sizeof(char *)), **rd = mor_xcalloc((size_t)c->n_r, sizeof(char *));
  for (int u = 0; u < c->n_block; u++) {
    char *d0 = NULL;
    for (int k = 0; k < c->n_r; k++) {
      int64_t l = c->n_prefix + (int64_t)u * c->n_r + k;
      char *name = kv_global(L, l, k, share && k > 0 ? d0 : NULL);
      if (k == 0) d0 = name;
      rd[k] = name;
      wr[k] = share && k > 0 ? "none" : name;
    }
    mor_block *saved;
    mor_op *rec = begin_recur(L, 1, &x, &x->type, &saved);
    mor_value *y = layer(L, rec->region->args[1], L->pos, &L->r->block[u], rec->region->args[0], c->n_r, wr, rd);
    end_recur(L, saved, 1, &y);
    x = rec->results[0];
  }
  free(wr);
  free(rd);
  return x;
}

mor_module *mor_lower(const mor_config *c, const mor_resolved *r, mor_err *err) {
  (void)err;
  const char *base = strrchr(c->json_path, '/');
  char *dir = mor_dirname(c->json_path);
  const char *mname = strrchr(dir, '/');
  mname = mname ? mname + 1 : dir;
  if (!strcmp(mname, ".") || !*mname) mname = base ? base + 1 : c->json_path;
  lowerer L0 = {0}, *L = &L0;
  L->m = mor_module_new(mname);
  free(dir);
  L->c = c;
  L->r = r;
  mor_module *m = L->m;
  static const char *sharing[] = {"cycle", "middle_cycle", "sequence", "middle_sequence"};
  static const char *routing[] = {"none", "expert_choice", "token_choice"};
  mor_set_mattr_int(m, "vocab_size", c->vocab_size);
  mor_set_mattr_int(m, "hidden_size", c->hidden_size);
  mor_set_mattr_int(m, "num_hidden_layers", c->num_layers);
  mor_set_mattr_int(m, "max_position_embeddings", c->max_pos);
  mor_set_mattr_int(m, "num_recursions", c->n_r);
  mor_set_mattr_str(m, "sharing", sharing[c->sharing]);
  mor_set_mattr_str(m, "routing", routing[c->routing]);
  mor_set_mattr_str(m, "kv_cache", c->kv_mode == MOR_KV_RECURSIVE_SHARING ? "recursive_sharing" : "recursion_wise");
  if (c->routing == MOR_ROUTE_EXPERT)
    mor_set_mattr_str(m, "inference_routing", c->infer_routing == MOR_INFER_TOPK ? "top_k" : "threshold");
  L->sym_T = mor_add_sym(m, "T", c->max_pos);
  mor_dim T = mor_dsym(m, L->sym_T);
  mor_func *f = mor_add_func(m, "forward");
  L->blk = f->body;
  mor_value *tokens = mor_block_add_arg(m, f->body, vec(MOR_I32, T));
  L->pos = mor_block_add_arg(m, f->body, vec(MOR_I32, T));
  f->n_results = 2;
  f->result_types = mor_alloc(m, 2 * sizeof(mor_type));
  f->result_types[0] = f32_2(T, c->vocab_size);
  f->result_types[1] = vec(MOR_I32, T);

  mor_op *e = emit(L, MOR_OP_EMBED, 1, &tokens, 1, (mor_type[]){f32_2(T, c->hidden_size)});
  mor_op_set_sym(m, e, "weight", wname(L, r->embed));
  mor_value *x = e->results[0], *dep = NULL;
  if (c->n_prefix) x = plain_layer(L, x, &r->prefix, 0);
  if (c->routing == MOR_ROUTE_EXPERT) x = expert_stack(L, x, &dep);
  else if (c->routing == MOR_ROUTE_TOKEN) x = token_stack(L, x, &dep);
  else if (c->sharing == MOR_SHARE_SEQUENCE || c->sharing == MOR_SHARE_MIDDLE_SEQUENCE) x = sequence_stack(L, x);
  else x = plain_stack(L, x);
  if (!dep) dep = fill(L, x, MOR_I32, c->n_r);
  if (c->n_suffix) x = plain_layer(L, x, &r->suffix, c->num_layers - 1);
  x = rmsnorm(L, x, r->final_norm);
  mor_value *logits = matmul(L, x, r->lm_head ? r->lm_head : r->embed);
  emit(L, MOR_OP_RETURN, 2, (mor_value *[]){logits, dep}, 0, NULL);
  return m;
}

mor_module *mor_load_model(const char *path, mor_config **cfg, mor_weights **wout, mor_err *err) {
  *cfg = NULL;
  *wout = NULL;
  mor_config *c = mor_config_load(path, err);
  if (!c) return NULL;
  mor_weights *w = mor_weights_open(c, err);
  if (!w) {
    mor_config_free(c);
    return NULL;
  }
  mor_resolved *r = mor_resolve(c, w, err);
  if (!r) {
    mor_weights_free(w);
    mor_config_free(c);
    return NULL;
  }
  mor_module *m = mor_lower(c, r, err);
  mor_resolved_free(r);
  if (!m) {
    mor_weights_free(w);
    mor_config_free(c);
    return NULL;
  }
  *cfg = c;
  *wout = w;
  return m;
}

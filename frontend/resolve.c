/* resolve.c: matches the tensors of the weight files to the model the
 * description defines (docs/model-format.md, weight names): every expected
 * tensor present and shaped right, copies of shared layers equal to the
 * first copy, nothing unexpected; NaN/Inf values get a warning. */
#include "frontend/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One tensor the description expects. */
typedef struct want {
  char *name;
  int rank;
  int64_t shape[2];
  const char *label;         /* the shape in the description's words */
  const mor_tensor **slot;   /* where a primary tensor goes; NULL for a copy */
  int primary;               /* for a copy: index of the want it must equal; else -1 */
  const mor_tensor *found;   /* the tensor in the files, or NULL */
} want;

typedef struct rctx {
  const mor_config *c;
  const mor_weights *w;
  mor_err *err;
  want *wants;
  int n, cap;
} rctx;

static int add_want(rctx *x, char *name, int rank, int64_t d0, int64_t d1, const char *label, const mor_tensor **slot,
                    int primary) {
  if (x->n == x->cap) {
    x->cap = x->cap ? 2 * x->cap : 64;
    x->wants = mor_xrealloc(x->wants, sizeof(want) * (size_t)x->cap);
  }
  x->wants[x->n] = (want){name, rank, {d0, d1}, label, slot, primary, NULL};
  return x->n++;
}

/* The nine tensors of a decoder layer under prefix P. With lw, they are the
 * primary copy; with copy_of >= 0 they must equal the wants from there on. */
static void add_layer(rctx *x, const char *P, mor_layer_weights *lw, int copy_of) {
  const mor_config *c = x->c;
  int64_t D = c->hidden_size, F = c->intermediate_size;
  int64_t qd = c->num_heads * c->head_dim, kvd = c->num_kv_heads * c->head_dim;
  struct {
    const char *suffix;
    int rank;
    int64_t d0, d1;
    const char *label;
    const mor_tensor **slot;
  } parts[] = {
      {"self_attn.q_proj.weight", 2, qd, D, "[num_attention_heads * head_dim, hidden_size]", lw ? &lw->wq : NULL},
      {"self_attn.k_proj.weight", 2, kvd, D, "[num_key_value_heads * head_dim, hidden_size]", lw ? &lw->wk : NULL},
      {"self_attn.v_proj.weight", 2, kvd, D, "[num_key_value_heads * head_dim, hidden_size]", lw ? &lw->wv : NULL},
      {"self_attn.o_proj.weight", 2, D, qd, "[hidden_size, num_attention_heads * head_dim]", lw ? &lw->wo : NULL},
      {"mlp.gate_proj.weight", 2, F, D, "[intermediate_size, hidden_size]", lw ? &lw->wg : NULL},
      {"mlp.up_proj.weight", 2, F, D, "[intermediate_size, hidden_size]", lw ? &lw->wu : NULL},
      {"mlp.down_proj.weight", 2, D, F, "[hidden_size, intermediate_size]", lw ? &lw->wd : NULL},
      {"input_layernorm.weight", 1, D, 0, "[hidden_size]", lw ? &lw->input_norm : NULL},
      {"post_attention_layernorm.weight", 1, D, 0, "[hidden_size]", lw ? &lw->post_norm : NULL},
  };
  for (int i = 0; i < 9; i++)
    add_want(x, mor_xasprintf("%s.%s", P, parts[i].suffix), parts[i].rank, parts[i].d0, parts[i].d1, parts[i].label,
             parts[i].slot, copy_of >= 0 ? copy_of + i : -1);
}

/* A layer given by printf-style prefix with one number. */
static void add_layer_n(rctx *x, const char *fmt, int64_t a, mor_layer_weights *lw, int copy_of) {
  char P[128];
  snprintf(P, sizeof P, fmt, (long long)a);
  add_layer(x, P, lw, copy_of);
}

/* The routers under model.layers.{l}: linear [out, D] or MLP [2D, D], [out, 2D]. */
static void add_router(rctx *x, int64_t l, int64_t out, mor_resolved *r, int i) {
  int64_t D = x->c->hidden_size;
  const char *lab = out == 1 ? "[1, hidden_size]" : "[num_recursions, hidden_size]";
  const char *lab2 = out == 1 ? "[1, 2 * hidden_size]" : "[num_recursions, 2 * hidden_size]";
  if (x->c->router == MOR_ROUTER_LINEAR) {
    add_want(x, mor_xasprintf("model.layers.%lld.mor_router.router.weight", (long long)l), 2, out, D, lab,
             &r->router[i], -1);
  } else {
    add_want(x, mor_xasprintf("model.layers.%lld.mor_router.router.0.weight", (long long)l), 2, 2 * D, D,
             "[2 * hidden_size, hidden_size]", &r->router[i], -1);
    add_want(x, mor_xasprintf("model.layers.%lld.mor_router.router.2.weight", (long long)l), 2, out, 2 * D, lab2,
             &r->router2[i], -1);
  }
}

/* The whole name table of section 3 of the format. */
static void build_table(rctx *x, mor_resolved *r) {
  const mor_config *c = x->c;
  int64_t V = c->vocab_size, D = c->hidden_size;
  int embed = add_want(x, mor_xstrdup("model.embed_tokens.weight"), 2, V, D, "[vocab_size, hidden_size]", &r->embed, -1);
  add_want(x, mor_xstrdup("model.norm.weight"), 1, D, 0, "[hidden_size]", &r->final_norm, -1);
  if (c->tie_word_embeddings)
    add_want(x, mor_xstrdup("lm_head.weight"), 2, V, D, "[vocab_size, hidden_size]", NULL, embed);
  else
    add_want(x, mor_xstrdup("lm_head.weight"), 2, V, D, "[vocab_size, hidden_size]", &r->lm_head, -1);

  if (c->routing == MOR_ROUTE_NONE) {
    /* model.layers.{l}; a shared layer's first use is the primary copy. */
    int *first = mor_xmalloc(sizeof(int) * (size_t)c->n_block);
    for (int j = 0; j < c->n_block; j++) first[j] = -1;
    for (int64_t l = 0; l < c->num_layers; l++) {
      mor_layer_use u = mor_config_layer(c, l);
      if (u.role == MOR_LAYER_PREFIX) {
        add_layer_n(x, "model.layers.%lld", l, &r->prefix, -1);
      } else if (u.role == MOR_LAYER_SUFFIX) {
        add_layer_n(x, "model.layers.%lld", l, &r->suffix, -1);
      } else if (first[u.index] < 0) {
        first[u.index] = x->n;
        add_layer_n(x, "model.layers.%lld", l, &r->block[u.index], -1);
      } else {
        add_layer_n(x, "model.layers.%lld", l, NULL, first[u.index]);
      }
    }
    free(first);
    return;
  }
  int middle = c->sharing == MOR_SHARE_MIDDLE_CYCLE;
  int64_t base = middle ? 1 : 0; /* the MoR wrapper sits at model.layers.{base} */
  int expert = c->routing == MOR_ROUTE_EXPERT;
  if (middle) {
    add_layer(x, "model.layers.0", &r->prefix, -1);
    add_layer_n(x, "model.layers.%lld", expert ? c->n_r + 1 : 2, &r->suffix, -1);
  }
  for (int j = 0; j < c->n_block; j++) {
    char P[160];
    int first = x->n;
    if (expert)
      snprintf(P, sizeof P, "model.layers.%lld.block.%d", (long long)base, j);
    else
      snprintf(P, sizeof P, "model.layers.%lld.block_list.0.%d", (long long)base, j);
    add_layer(x, P, &r->block[j], -1);
    for (int d = 1; d < c->n_r; d++) {
      if (expert)
        snprintf(P, sizeof P, "model.layers.%lld.block.%d", (long long)(base + d), j);
      else
        snprintf(P, sizeof P, "model.layers.%lld.block_list.%d.%d", (long long)base, d, j);
      add_layer(x, P, NULL, first);
    }
  }
  if (expert)
    for (int d = 0; d < c->n_r; d++) add_router(x, base + d, 1, r, d);
  else
    add_router(x, base, c->n_r, r, 0);
}

static const char *shape_str(int rank, const int64_t *shape, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

/* Element i of t as "[r, c]" for messages. */
static const char *index_str(const mor_tensor *t, int64_t i, char *buf, size_t n) {
  int64_t idx[4] = {0};
  for (int d = t->rank - 1; d >= 0; d--) {
    idx[d] = t->shape[d] ? i % t->shape[d] : 0;
    i = t->shape[d] ? i / t->shape[d] : 0;
  }
  return shape_str(t->rank, idx, buf, n);
}

/* Where to say a missing tensor was looked for. */
static const char *files_label(const rctx *x) {
  if (x->w->n_files == 1) return x->w->files[0];
  if (x->c->n_weight_files == 1) return x->c->weight_files[0];
  return "the weight files";
}

/* The unexpected tensor whose name looks most like name (longest common
 * prefix plus suffix), for the hint of a "missing tensor" message; or
 * w->n_tensors when every tensor was expected. */
static int closest_unused(const mor_weights *w, const char *used, const char *name) {
  int best = w->n_tensors;
  size_t best_score = 0, n = strlen(name);
  for (int k = 0; k < w->n_tensors; k++) {
    if (used[k]) continue;
    const char *t = w->tensors[k].name;
    size_t m = strlen(t), pre = 0, suf = 0;
    while (pre < n && pre < m && name[pre] == t[pre]) pre++;
    while (suf < n - pre && suf < m - pre && name[n - 1 - suf] == t[m - 1 - suf]) suf++;
    if (best == w->n_tensors || pre + suf > best_score) {
      best = k;
      best_score = pre + suf;
    }
  }
  return best;
}

static int check(rctx *x, mor_resolved *r) {
  const mor_weights *w = x->w;
  char *used = mor_xcalloc((size_t)(w->n_tensors ? w->n_tensors : 1), 1);
  char a[96], b[96];
  int rc = -1;
  for (int i = 0; i < x->n; i++) {
    want *q = &x->wants[i];
    q->found = mor_weights_find(w, q->name);
    if (q->found) used[q->found - w->tensors] = 1;
  }
  /* missing (with a hint at a name that was not expected) and misshapen */
  for (int i = 0; i < x->n; i++) {
    want *q = &x->wants[i];
    if (!q->found && q->primary < 0) {
      int k = closest_unused(w, used, q->name);
      char name[256];
      mor_errf(x->err, "%s: missing tensor '%s' (expected shape %s = %s)%s%s%s", files_label(x), q->name, q->label,
               shape_str(q->rank, q->shape, a, sizeof a), k < w->n_tensors ? "; the files hold unexpected tensor '" : "",
               k < w->n_tensors ? mor_esc(w->tensors[k].name, name, sizeof name) : "", k < w->n_tensors ? "'" : "");
      goto out;
    }
    const mor_tensor *t = q->found;
    if (t && (t->rank != q->rank || t->shape[0] != q->shape[0] || (q->rank == 2 && t->shape[1] != q->shape[1]))) {
      mor_errf(x->err, "%s: tensor '%s': shape %s does not match the description: expected %s = %s", t->file, t->name,
               shape_str(t->rank, t->shape, a, sizeof a), q->label, shape_str(q->rank, q->shape, b, sizeof b));
      goto out;
    }
  }
  for (int k = 0; k < w->n_tensors; k++)
    if (!used[k]) {
      static const char *const routing[] = {"none", "expert_choice", "token_choice"};
      static const char *const sharing[] = {"cycle", "middle_cycle", "sequence", "middle_sequence"};
      char name[256];
      mor_errf(x->err,
               "%s: unexpected tensor '%s': a model with routing \"%s\", sharing \"%s\", %d recursion%s and %lld "
               "layers has no weight of that name",
               w->tensors[k].file, mor_esc(w->tensors[k].name, name, sizeof name), routing[x->c->routing], sharing[x->c->sharing], x->c->n_r,
               x->c->n_r == 1 ? "" : "s", (long long)x->c->num_layers);
      goto out;
    }
  /* copies equal their primary by value */
  for (int i = 0; i < x->n; i++) {
    want *q = &x->wants[i];
    if (q->primary < 0 || !q->found) continue;
    const mor_tensor *t = q->found, *p = x->wants[q->primary].found;
    for (int64_t e = 0; e < t->numel; e++) {
      float u = mor_tensor_get(t, e), v = mor_tensor_get(p, e);
      if (u == v || (isnan(u) && isnan(v))) continue;
      if (x->c->tie_word_embeddings && !strcmp(t->name, "lm_head.weight"))
        mor_errf(x->err,
                 "%s: tensor 'lm_head.weight' differs from 'model.embed_tokens.weight' although tie_word_embeddings "
                 "is true: element %s is %.9g, not %.9g",
                 t->file, index_str(t, e, a, sizeof a), (double)u, (double)v);
      else
        mor_errf(x->err,
                 "%s: tensor '%s' is a copy of the shared weight '%s'%s%s%s but differs from it: element %s is %.9g, "
                 "not %.9g",
                 t->file, t->name, p->name, p->file != t->file ? " (in " : "", p->file != t->file ? p->file : "",
                 p->file != t->file ? ")" : "", index_str(t, e, a, sizeof a), (double)u, (double)v);
      goto out;
    }
  }
  /* fill the slots; warn once per used tensor about NaN/Inf */
  for (int i = 0; i < x->n; i++) {
    want *q = &x->wants[i];
    if (!q->slot) continue;
    *q->slot = q->found;
    int64_t bad = 0;
    for (int64_t e = 0; e < q->found->numel; e++) bad += !isfinite(mor_tensor_get(q->found, e));
    if (bad)
      mor_warnf("%s: tensor '%s': %lld of %lld values are NaN or infinite", q->found->file, q->found->name,
                (long long)bad, (long long)q->found->numel);
  }
  if (x->c->tie_word_embeddings) r->lm_head = r->embed;
  rc = 0;
out:
  free(used);
  return rc;
}

mor_resolved *mor_resolve(const mor_config *c, const mor_weights *w, mor_err *err) {
  mor_resolved *r = mor_xcalloc(1, sizeof *r);
  r->block = mor_xcalloc((size_t)c->n_block, sizeof(mor_layer_weights));
  r->n_routers = c->routing == MOR_ROUTE_EXPERT ? c->n_r : c->routing == MOR_ROUTE_TOKEN ? 1 : 0;
  if (r->n_routers) {
    r->router = mor_xcalloc((size_t)r->n_routers, sizeof(const mor_tensor *));
    r->router2 = mor_xcalloc((size_t)r->n_routers, sizeof(const mor_tensor *));
  }
  rctx x = {c, w, err, NULL, 0, 0};
  build_table(&x, r);
  int rc = check(&x, r);
  for (int i = 0; i < x.n; i++) free(x.wants[i].name);
  free(x.wants);
  if (rc) {
    mor_resolved_free(r);
    return NULL;
  }
  return r;
}

void mor_resolved_free(mor_resolved *r) {
  if (!r) return;
  free(r->block);
  free(r->router);
  free(r->router2);
  free(r);
}

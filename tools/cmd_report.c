/* cmd_report.c: `morc report MODEL`: what the compiler makes of a model:
 * unique vs unrolled parameters, FLOPs per token at each depth (from the
 * high-level IR), and after the pipeline (-O2 unless given) the KV cache
 * plan with its totals against a vanilla model (model-format.md section 5)
 * and the memory plan (arena peak vs no reuse). docs/passes.md says what
 * exactly is counted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/pm.h"
#include "tools/commands.h"

static const char *usage_report =
    "usage: morc report MODEL [--context N] [-passes=... | -O<n>] [inspection flags]\n"
    "\n"
    "Print, for MODEL (model.json / config.json, or a .mor file of the high-level IR):\n"
    "  parameters        unique (stored) and unrolled (each shared weight once per use)\n"
    "  FLOPs per token   at each depth: 2*K*N per matmul, routers, and attention at a context\n"
    "                    of N tokens (4*heads*head_dim*N); element-wise ops are not counted\n"
    "  KV cache plan     per cache: layer, depth, alias, capacity (tokens), bytes, growth policy;\n"
    "                    totals against a vanilla model (every layer, max_position_embeddings)\n"
    "  memory plan       arena peak per function against no reuse\n"
    "The plans come from the pipeline (default -O2).\n"
    "\n"
    "options:\n"
    "  --context N       context length for the attention FLOPs (default max_position_embeddings)\n"
    "  -h, --help        show this help\n"
    "\n";

/* ---- parameters ------------------------------------------------------------- */

static void count_refs(const mor_module *m, const mor_block *b, int64_t factor, int64_t *mult) {
  static const char *single[] = {"weight", "norm", "wq", "wk", "wv", "wg", "wu"};
  for (const mor_op *op = b->first; op; op = op->next) {
    for (size_t i = 0; i < sizeof single / sizeof *single; i++) {
      const mor_attr *a = mor_op_attr(op, single[i]);
      const mor_global *g = a && a->kind == MOR_ATTR_SYM ? mor_find_global(m, a->s) : NULL;
      if (g && mult[g - m->globals] < factor) mult[g - m->globals] = factor;
    }
    static const char *lists[] = {"weights", "weights2"};
    for (int i = 0; i < 2; i++) {
      const mor_attr *a = mor_op_attr(op, lists[i]);
      if (!a || a->kind != MOR_ATTR_SYMS) continue;
      /* per-depth lists: each entry once; one entry inside a recur: every depth */
      int64_t f = a->n == 1 ? factor : 1;
      for (int k = 0; k < a->n; k++) {
        const mor_global *g = mor_find_global(m, a->syms[k]);
        if (g && mult[g - m->globals] < f) mult[g - m->globals] = f;
      }
    }
    if (op->region) count_refs(m, op->region, factor * mor_op_int(op, "n", 1), mult);
    if (op->code == MOR_OP_CALL) {
      const char *c = mor_op_str(op, "callee");
      const mor_func *f = c ? mor_find_func(m, c) : NULL;
      if (f) count_refs(m, f->body, factor, mult);
    }
  }
}

/* ---- FLOPs -------------------------------------------------------------------- */

static int64_t wdim(const mor_module *m, const mor_op *op, const char *attr, int idx, int d) {
  const mor_attr *a = mor_op_attr(op, attr);
  const char *name = !a ? NULL : a->kind == MOR_ATTR_SYM ? a->s : a->kind == MOR_ATTR_SYMS && a->n > idx ? a->syms[idx] : NULL;
  const mor_global *g = name ? mor_find_global(m, name) : NULL;
  return g && g->type.rank > d ? g->type.dims[d].n : 0;
}

static int64_t mm_flops(const mor_module *m, const mor_op *op, const char *attr, int idx) {
  return 2 * wdim(m, op, attr, idx, 0) * wdim(m, op, attr, idx, 1);
}

/* 1 when v only feeds K/V writes (through rope): a K or V projection */
static int kv_only(const mor_block *b, const mor_value *v) {
  int n = 0;
  for (const mor_op *o = b->first; o; o = o->next)
    for (int i = 0; i < o->n_operands; i++) {
      if (o->operands[i] != v) continue;
      n++;
      if (o->code == MOR_OP_KV_WRITE) continue;
      if (o->code == MOR_OP_ROPE && i == 0 && kv_only(b, o->results[0])) continue;
      return 0;
    }
  return n > 0;
}

/* the kv_write a K/V projection feeds: its cache entry at depth d is @none? */
static int kv_skipped_at(const mor_block *b, const mor_value *v, int64_t d) {
  for (const mor_op *o = b->first; o; o = o->next)
    for (int i = 0; i < o->n_operands; i++) {
      if (o->operands[i] != v) continue;
      if (o->code == MOR_OP_ROPE) return kv_skipped_at(b, o->results[0], d);
      if (o->code == MOR_OP_KV_WRITE) {
        const mor_attr *c = mor_op_attr(o, "caches");
        int64_t k = o->n_operands == 4 ? d : 0;
        return c && c->kind == MOR_ATTR_SYMS && k < c->n && !strcmp(c->syms[k], "none");
      }
    }
  return 0;
}

/* FLOPs per row of one op at depth d (d < 0 outside the recursion) */
static int64_t op_flops(const mor_module *m, const mor_block *b, const mor_op *op, int64_t d, int64_t ctx) {
  int64_t idx = d < 0 ? 0 : d;
  switch (op->code) {
  case MOR_OP_MATMUL:
    if (d >= 0 && kv_only(b, op->results[0]) && kv_skipped_at(b, op->results[0], d)) return 0;
    return mm_flops(m, op, "weight", 0);
  case MOR_OP_NORM_MATMUL:
  case MOR_OP_MATMUL_ADD:
  case MOR_OP_MATMUL_STORE: return mm_flops(m, op, "weight", 0);
  case MOR_OP_GATE_UP: return mm_flops(m, op, "wg", 0) + mm_flops(m, op, "wu", 0);
  case MOR_OP_QKV: return mm_flops(m, op, "wq", 0) + (mor_op_attr(op, "caches") ? mm_flops(m, op, "wk", 0) + mm_flops(m, op, "wv", 0) : 0);
  case MOR_OP_ATTENTION: return 4 * mor_op_int(op, "heads", 0) * mor_op_int(op, "head_dim", 0) * ctx;
  case MOR_OP_ROUTER: {
    int listed = mor_op_attr(op, "weights") && mor_op_attr(op, "weights")->n > 1;
    int k = listed ? (int)idx : 0;
    return mm_flops(m, op, "weights", k) + (mor_op_attr(op, "weights2") ? mm_flops(m, op, "weights2", k) : 0);
  }
  default: return 0;
  }
}

static int64_t block_flops(const mor_module *m, const mor_block *b, int64_t d, int64_t ctx) {
  int64_t s = 0;
  for (const mor_op *op = b->first; op; op = op->next) s += op_flops(m, b, op, d, ctx);
  return s;
}

static void human(char *out, size_t n, double v, const char *unit) {
  const char *pre[] = {"", "K", "M", "G", "T"};
  int k = 0;
  while (v >= 1000 && k < 4) v /= 1000, k++;
  snprintf(out, n, k ? "%.2f %s%s" : "%.0f %s%s", v, pre[k], unit);
}

static void bytes_str(char *out, size_t n, int64_t v) {
  const char *pre[] = {"B", "KiB", "MiB", "GiB"};
  double x = (double)v;
  int k = 0;
  while (x >= 1024 && k < 3) x /= 1024, k++;
  snprintf(out, n, k ? "%.2f %s" : "%.0f %s", x, pre[k]);
}

static int is_block_layer(const mor_module *m, int64_t layer) {
  const mor_attr *sh = mor_get_mattr(m, "sharing");
  int64_t L = mor_mattr_int(m, "num_hidden_layers", -1);
  int middle = sh && sh->kind == MOR_ATTR_STR && !strncmp(sh->s, "middle", 6);
  return !(middle && (layer == 0 || layer == L - 1));
}

int morc_cmd_report(int argc, char **argv) {
  const char *model = NULL, *ctx_s = NULL;
  int64_t ctx = -1;
  mor_pm_opts *pm = mor_pm_opts_new();
  int rc, explicit_pipe = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_report, stdout);
      fputs(mor_pm_help(), stdout);
      mor_pm_opts_free(pm);
      return 0;
    } else if ((rc = morc_value_option("report", &(morc_vopt){"--context", &ctx_s}, 1, argc, argv, &i)) != 0) {
      char *end;
      if (rc < 0) return mor_pm_opts_free(pm), 2;
      if ((ctx = strtoll(ctx_s, &end, 10)) < 1 || *end)
        return mor_pm_opts_free(pm), morc_die_usage("report", "--context %s: expected a positive number of tokens", ctx_s);
    } else if ((rc = morc_pm_option("report", pm, argc, argv, &i)) != 0) {
      if (rc < 0) return mor_pm_opts_free(pm), 2;
      explicit_pipe |= !strncmp(a, "-O", 2) || strstr(a, "passes") != NULL;
    } else if (a[0] == '-' && a[1]) {
      return mor_pm_opts_free(pm), morc_die_usage("report", "unknown option '%s'", a);
    } else if (model) {
      return mor_pm_opts_free(pm), morc_die_usage("report", "unexpected argument '%s' (one MODEL only)", a);
    } else {
      model = a;
    }
  }
  if (!model) return mor_pm_opts_free(pm), morc_die_usage("report", "%s", "missing MODEL");
  if (!explicit_pipe) {
    char *o2[] = {"-O2"};
    int k = 0;
    mor_err e;
    mor_pm_parse_arg(pm, 1, o2, &k, &e);
  }
  mor_err e = {{0}};
  mor_config *cfg = NULL;
  mor_weights *w = NULL;
  mor_module *m = morc_load_any(model, &cfg, &w, &e);
  if (!m) return mor_pm_opts_free(pm), morc_fail(&e);
  int64_t max_pos = mor_mattr_int(m, "max_position_embeddings", 0);
  if (ctx < 0) ctx = max_pos > 0 ? max_pos : 1;
  int64_t n_r = mor_mattr_int(m, "num_recursions", 1), L = mor_mattr_int(m, "num_hidden_layers", 0);
  const mor_attr *kvm = mor_get_mattr(m, "kv_cache"), *rt = mor_get_mattr(m, "routing"),
                 *sh = mor_get_mattr(m, "sharing"), *ir = mor_get_mattr(m, "inference_routing");
  int sharing_kv = kvm && kvm->kind == MOR_ATTR_STR && !strcmp(kvm->s, "recursive_sharing");
  char nb[256], ab[256]; /* names as shown: from a model's folder or an IR file, so escaped */
  printf("model %s: %lld layers, N_r = %lld, sharing %s, routing %s%s%s, kv_cache %s\n", mor_esc(m->name, nb, sizeof nb), (long long)L,
         (long long)n_r, sh ? sh->s : "?", rt ? rt->s : "?", ir ? " / " : "", ir ? ir->s : "",
         kvm ? kvm->s : "?");

  /* parameters, from the high-level IR */
  int64_t *mult = mor_xcalloc((size_t)m->n_globals + 1, sizeof *mult);
  mor_func *fwd = mor_find_func(m, "forward");
  if (fwd) count_refs(m, fwd->body, 1, mult);
  int64_t uniq = 0, unrolled = 0;
  for (int i = 0; i < m->n_globals; i++) {
    if (m->globals[i].kind != MOR_GLOBAL_WEIGHT) continue;
    int64_t n = mor_type_max_numel(&m->globals[i].type);
    uniq += n;
    unrolled += n * (mult[i] ? mult[i] : 1);
  }
  free(mult);
  printf("\nparameters\n  unique (stored)      %14lld\n  unrolled             %14lld   (%.2fx: each shared weight once per use)\n",
         (long long)uniq, (long long)unrolled, uniq ? (double)unrolled / (double)uniq : 0.0);

  /* FLOPs per token by depth, from the high-level IR */
  if (fwd) {
    int64_t pre = 0, post = 0, *dep = mor_xcalloc((size_t)n_r + 1, sizeof *dep);
    int seen_recur = 0;
    for (const mor_op *op = fwd->body->first; op; op = op->next) {
      if (op->code == MOR_OP_RECUR) {
        seen_recur = 1;
        int64_t n = mor_op_int(op, "n", 1);
        for (int64_t d = 0; d < n && d < n_r; d++) dep[d] += block_flops(m, op->region, d, ctx);
      } else if (mor_op_attr(op, "depth") && mor_op_int(op, "depth", -1) >= 0 && mor_op_int(op, "depth", -1) < n_r) {
        dep[mor_op_int(op, "depth", 0)] += op_flops(m, fwd->body, op, mor_op_int(op, "depth", 0), ctx);
      } else {
        int64_t f = op_flops(m, fwd->body, op, -1, ctx);
        if (seen_recur) post += f;
        else pre += f;
      }
    }
    char s[64];
    printf("\nFLOPs per token (attention at a context of %lld tokens)\n", (long long)ctx);
    human(s, sizeof s, (double)pre, "FLOP");
    printf("  %-24s %16s\n", "before the recursions", s);
    int64_t all = pre + post;
    for (int64_t d = 0; d < n_r; d++) {
      human(s, sizeof s, (double)dep[d], "FLOP");
      char lab[32];
      snprintf(lab, sizeof lab, "depth %lld", (long long)d);
      printf("  %-24s %16s\n", lab, s);
      all += dep[d];
    }
    human(s, sizeof s, (double)post, "FLOP");
    printf("  %-24s %16s\n", "after (suffix, head)", s);
    human(s, sizeof s, (double)all, "FLOP");
    printf("  %-24s %16s\n", "a token at every depth", s);
    free(dep);
  }

  /* the pipeline: KV and memory plans */
  if (mor_pm_run(m, pm, stderr, &e) != 0) {
    rc = morc_fail(&e);
    goto done;
  }
  printf("\nKV cache plan (K and V, f32; alias = shares the storage of a depth-0 cache)\n");
  printf("  %-12s %5s %5s %-12s %9s %12s  %s\n", "cache", "layer", "depth", "alias", "tokens", "bytes", "policy");
  int64_t total = 0, rec_plan = 0, rec_layers = 0, width = 0;
  double rec_expected = 0;
  for (int i = 0; i < m->n_globals; i++) {
    const mor_global *g = &m->globals[i];
    if (g->kind != MOR_GLOBAL_KV || g->type.rank != 3) continue;
    width = g->type.dims[1].n * g->type.dims[2].n;
    int64_t cap = g->type.dims[0].n, bytes = g->alias ? 0 : cap * width * 4 * 2;
    char bs[32];
    bytes_str(bs, sizeof bs, bytes);
    char alias[64];
    snprintf(alias, sizeof alias, "%s%s", g->alias ? "@" : "-", g->alias ? mor_esc(g->alias, ab, sizeof ab) : "");
    printf("  @%-11s %5lld %5lld %-12s %9lld %12s  %s\n", mor_esc(g->name, nb, sizeof nb), (long long)g->layer, (long long)g->depth, alias,
           (long long)cap, bs, g->alias ? "(alias)" : g->policy ? g->policy : "-");
    total += bytes;
    if (is_block_layer(m, g->layer)) {
      rec_layers++;
      rec_plan += bytes;
      if (!g->alias) {
        double c = 1.0;
        /* recursion-wise: a depth-r cache holds the tokens routed to depth r; under
         * recursive sharing the depth-0 cache holds every token */
        if (cfg && !sharing_kv && g->depth >= 0 && g->depth < cfg->n_r && cfg->routing == MOR_ROUTE_EXPERT)
          c = cfg->capacity[g->depth];
        rec_expected += c * (double)(max_pos > 0 ? max_pos : cap) * (double)width * 8.0;
      }
    }
  }
  int64_t vanilla = L * (max_pos > 0 ? max_pos : 0) * width * 8, vanilla_rec = rec_layers * max_pos * width * 8;
  char a1[32], a2[32];
  bytes_str(a1, sizeof a1, total);
  bytes_str(a2, sizeof a2, vanilla);
  printf("  total: %s planned, vanilla model of %lld layers x %lld tokens: %s (%.4f)\n", a1, (long long)L,
         (long long)max_pos, a2, vanilla ? (double)total / (double)vanilla : 0.0);
  if (vanilla_rec) {
    bytes_str(a1, sizeof a1, rec_plan);
    bytes_str(a2, sizeof a2, vanilla_rec);
    printf("  recursion layers (%lld caches): planned %s of vanilla %s = %.4f (upper bound)\n",
           (long long)rec_layers, a1, a2, (double)rec_plan / (double)vanilla_rec);
    printf("  recursion layers at the configured capacities: %.4f of vanilla\n", rec_expected / (double)vanilla_rec);
    if (n_r > 1)
      printf("  model-format.md section 5, default capacities: recursion-wise (N_r+1)/(2 N_r) = %.4f, "
             "recursive sharing 1/N_r = %.4f\n",
             (double)(n_r + 1) / (double)(2 * n_r), 1.0 / (double)n_r);
  }
  (void)sharing_kv;

  printf("\nmemory plan (intermediate tensors at their upper bounds, best fit in one arena per function)\n");
  int64_t peak_fwd = 0, peak_callee = 0, any = 0;
  for (int f = 0; f < m->n_funcs; f++) {
    char k1[300], k2[300];
    snprintf(k1, sizeof k1, "arena_%s", m->funcs[f]->name);
    snprintf(k2, sizeof k2, "arena_noreuse_%s", m->funcs[f]->name);
    for (char *c = k1; *c; c++)
      if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) *c = '_';
    for (char *c = k2; *c; c++)
      if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) *c = '_';
    int64_t peak = mor_mattr_int(m, k1, -1), nore = mor_mattr_int(m, k2, -1);
    if (peak < 0) continue;
    any = 1;
    bytes_str(a1, sizeof a1, peak);
    bytes_str(a2, sizeof a2, nore);
    printf("  @%-16s peak %12s   no reuse %12s   (%.1f%%)\n", mor_esc(m->funcs[f]->name, nb, sizeof nb), a1, a2,
           nore > 0 ? 100.0 * (double)peak / (double)nore : 0.0);
    if (!strcmp(m->funcs[f]->name, "forward")) peak_fwd = peak;
    else if (peak > peak_callee) peak_callee = peak;
  }
  if (any) {
    bytes_str(a1, sizeof a1, peak_fwd + peak_callee);
    printf("  total peak (forward + the largest callee): %s\n", a1);
  } else {
    printf("  (no plan: the pipeline has no plan-memory)\n");
  }
  rc = 0;
done:
  mor_pm_opts_free(pm);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(cfg);
  return rc;
}

/* verify.c: checks a module: operand and result types and shapes for every
 * op, symbol references, SSA dominance (a value is used only after its
 * definition, in its block or a nested region) and region rules. */
#include "ir/ir.h"
#include <stdlib.h>
#include <string.h>

typedef struct verifier {
  const mor_module *m;
  const mor_func *f;
  mor_err *err;
  char *defined; /* by value id */
  int op_index;
  int failed;
} verifier;

static int vfail(verifier *v, const mor_op *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int vfail(verifier *v, const mor_op *op, const char *fmt, ...) {
  if (v->failed) return 0;
  v->failed = 1;
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (op && op->line)
    mor_errf(v->err, "%s:%d:%d: error: '%s': %s", v->m->src_file ? v->m->src_file : "<input>", op->line, op->col,
             mor_ops[op->code].name, msg);
  else if (op)
    mor_errf(v->err, "@%s: op #%d ('%s'): error: %s", v->f ? MOR_SYM(v->f->name) : "?", v->op_index, mor_ops[op->code].name,
             msg);
  else
    mor_errf(v->err, "%s: error: %s", v->m->src_file ? v->m->src_file : (v->f ? v->f->name : "module"), msg);
  return 0;
}

static void type_str(const mor_module *m, const mor_type *t, char *out, size_t n) {
  mor_buf b = {0};
  mor_print_type(&b, m, t);
  snprintf(out, n, "%s", b.data);
  mor_buf_free(&b);
}

static int dim_same(mor_dim a, mor_dim b) { return a.sym == b.sym && (a.sym >= 0 || a.n == b.n); }
/* a value of dim a may flow into a slot of dim b */
static int dim_fits(mor_dim a, mor_dim b) {
  if (b.sym < 0) return a.sym < 0 && a.n == b.n;
  return a.n <= b.n;
}
static int type_fits(const mor_type *a, const mor_type *b) {
  if (a->dtype != b->dtype || a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank; i++)
    if (!dim_fits(a->dims[i], b->dims[i])) return 0;
  return 1;
}
static int type_same(const mor_type *a, const mor_type *b) {
  if (a->dtype != b->dtype || a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank; i++)
    if (!dim_same(a->dims[i], b->dims[i])) return 0;
  return 1;
}

#define CHECK(cond, ...)                                                                                             \
  do {                                                                                                               \
    if (!(cond)) return vfail(v, op, __VA_ARGS__);                                                                   \
  } while (0)

static int want(verifier *v, const mor_op *op, const mor_value *x, const char *what, mor_dtype dt, int rank) {
  char ts[128];
  if (x->type.dtype != dt || (rank >= 0 && x->type.rank != rank)) {
    type_str(v->m, &x->type, ts, sizeof ts);
    return vfail(v, op, "%s must be %s of rank %d, found %s", what, mor_dtype_name(dt), rank, ts);
  }
  return 1;
}

static int result_is(verifier *v, const mor_op *op, int i, const mor_type *expect) {
  char a[128], b[128];
  if (!type_same(&op->results[i]->type, expect)) {
    type_str(v->m, &op->results[i]->type, a, sizeof a);
    type_str(v->m, expect, b, sizeof b);
    return vfail(v, op, "result %d has type %s, expected %s", i, a, b);
  }
  return 1;
}

static const mor_global *weight_attr(verifier *v, const mor_op *op, const char *attr, int rank) {
  const mor_attr *a = mor_op_attr(op, attr);
  if (!a || a->kind != MOR_ATTR_SYM) {
    vfail(v, op, "needs attribute '%s = @weight'", attr);
    return NULL;
  }
  const mor_global *g = mor_find_global(v->m, a->s);
  if (!g || g->kind != MOR_GLOBAL_WEIGHT) {
    vfail(v, op, "'%s' refers to @%s, which is not a weight", attr, MOR_SYM(a->s));
    return NULL;
  }
  if (g->type.rank != rank) {
    vfail(v, op, "weight @%s must have rank %d", MOR_SYM(a->s), rank);
    return NULL;
  }
  return g;
}

static int need_attr(verifier *v, const mor_op *op, const char *name, mor_attr_kind kind) {
  static const char *kinds[] = {"an integer", "a number", "a string", "a symbol", "a list of integers",
                                "a list of numbers", "a list of symbols"};
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return vfail(v, op, "needs attribute '%s' (%s)", name, kinds[kind]);
  if (a->kind == kind) return 1;
  if (kind == MOR_ATTR_FLOAT && a->kind == MOR_ATTR_INT) return 1;
  if (kind == MOR_ATTR_FLOATS && a->kind == MOR_ATTR_INTS) return 1;
  if (a->n == 0 && (a->kind == MOR_ATTR_INTS) && (kind == MOR_ATTR_FLOATS || kind == MOR_ATTR_SYMS)) return 1;
  return vfail(v, op, "attribute '%s' must be %s", name, kinds[kind]);
}

static int depth_operand(verifier *v, const mor_op *op, int idx) {
  if (op->n_operands > idx) {
    const mor_value *d = op->operands[idx];
    if (d->type.dtype != MOR_I64 || d->type.rank != 0) return vfail(v, op, "the depth operand must be i64[]");
  }
  return 1;
}

/* caches=[@kv...]: kv globals (or @none) whose [cap, kvh, hd] matches width */
static int check_caches(verifier *v, const mor_op *op, int64_t width, int has_depth) {
  if (!need_attr(v, op, "caches", MOR_ATTR_SYMS)) return 0;
  const mor_attr *a = mor_op_attr(op, "caches");
  CHECK(a->n >= 1, "'caches' must list at least one cache");
  (void)has_depth;
  for (int i = 0; i < a->n; i++) {
    if (strcmp(a->syms[i], "none") == 0) continue;
    const mor_global *g = mor_find_global(v->m, a->syms[i]);
    CHECK(g && g->kind == MOR_GLOBAL_KV, "caches[%d] refers to @%s, which is not a kv cache", i, MOR_SYM(a->syms[i]));
    CHECK(g->type.rank == 3 && g->type.dims[1].n * g->type.dims[2].n == width,
          "cache @%s holds rows of %lld values, the op has %lld", MOR_SYM(a->syms[i]),
          (long long)(g->type.rank == 3 ? g->type.dims[1].n * g->type.dims[2].n : -1), (long long)width);
  }
  return 1;
}

/* ---- ops added by the passes (ops.def, second table) ------------------------ */

/* weight attribute `attr` of rank 2 whose dims equal (n, k); -1 = any */
static const mor_global *weight2(verifier *v, const mor_op *op, const char *attr, int64_t n, int64_t k) {
  const mor_global *g = weight_attr(v, op, attr, 2);
  if (!g) return NULL;
  if ((n >= 0 && g->type.dims[0].n != n) || (k >= 0 && g->type.dims[1].n != k)) {
    vfail(v, op, "weight %s = @%s is [%lld, %lld], expected [%lld, %lld] (-1: any)", attr, MOR_SYM(g->name),
          (long long)g->type.dims[0].n, (long long)g->type.dims[1].n, (long long)n, (long long)k);
    return NULL;
  }
  return g;
}

/* norm = @w [D] and eps */
static int norm_attrs(verifier *v, const mor_op *op, int64_t D) {
  const mor_global *w = weight_attr(v, op, "norm", 1);
  if (!w || !need_attr(v, op, "eps", MOR_ATTR_FLOAT)) return 0;
  CHECK(w->type.dims[0].n == D, "norm weight @%s has %lld elements, rows have %lld", MOR_SYM(w->name),
        (long long)w->type.dims[0].n, (long long)D);
  return 1;
}

int mor_call_result_types(const mor_module *m, const mor_func *callee, int n_args, mor_value *const *args,
                          mor_type *out, mor_err *err) {
  int n = m->n_syms;
  mor_dim *bind = mor_xcalloc((size_t)n + 1, sizeof *bind);
  char *bound = mor_xcalloc((size_t)n + 1, 1);
  int rc = -1;
  if (n_args != callee->body->n_args) {
    mor_errf(err, "@%s takes %d arguments, found %d", MOR_SYM(callee->name), callee->body->n_args, n_args);
    goto done;
  }
  for (int i = 0; i < n_args; i++) {
    const mor_type *p = &callee->body->args[i]->type, *a = &args[i]->type;
    if (p->dtype != a->dtype || p->rank != a->rank || !type_fits(a, p)) {
      char ps[128], as[128];
      type_str(m, p, ps, sizeof ps);
      type_str(m, a, as, sizeof as);
      mor_errf(err, "argument %d is %s, which does not fit @%s's parameter type %s", i, as, MOR_SYM(callee->name), ps);
      goto done;
    }
    for (int d = 0; d < p->rank; d++) {
      int s = p->dims[d].sym;
      if (s < 0) continue;
      if (!bound[s]) {
        bound[s] = 1;
        bind[s] = a->dims[d];
      } else if (!dim_same(bind[s], a->dims[d])) {
        mor_errf(err, "argument %d: dim %d must be the same as the other arguments' dims of symbol %s", i, d,
                 m->syms[s].name);
        goto done;
      }
    }
  }
  for (int r = 0; r < callee->n_results; r++) {
    out[r] = callee->result_types[r];
    for (int d = 0; d < out[r].rank; d++) {
      int s = out[r].dims[d].sym;
      if (s >= 0 && bound[s]) out[r].dims[d] = bind[s];
    }
  }
  rc = 0;
done:
  free(bind);
  free(bound);
  return rc;
}

/* 1 when function `from` can reach function `to` through calls */
static int calls_reach(const mor_module *m, const mor_block *b, const char *to, int fuel) {
  if (fuel <= 0) return 1;
  for (const mor_op *o = b->first; o; o = o->next) {
    if (o->region && calls_reach(m, o->region, to, fuel - 1)) return 1;
    if (o->code != MOR_OP_CALL) continue;
    const char *c = mor_op_str(o, "callee");
    if (!c) continue;
    if (!strcmp(c, to)) return 1;
    const mor_func *f = mor_find_func(m, c);
    if (f && calls_reach(m, f->body, to, fuel - 1)) return 1;
  }
  return 0;
}

static int verify_pass_op(verifier *v, const mor_op *op) {
  mor_value *const *o = op->operands;
  mor_type t;
  switch (op->code) {
  case MOR_OP_CONST:
    if (!need_attr(v, op, "value", MOR_ATTR_INT)) return 0;
    t = mor_type_make(MOR_I64, 0, NULL);
    return result_is(v, op, 0, &t);
  case MOR_OP_CALL: {
    if (!need_attr(v, op, "callee", MOR_ATTR_SYM)) return 0;
    const char *name = mor_op_str(op, "callee");
    const mor_func *f = mor_find_func(v->m, name);
    CHECK(f, "callee @%s is not a function of the module", MOR_SYM(name));
    CHECK(strcmp(f->name, "forward") != 0, "@forward is the entry point and cannot be called");
    CHECK(!calls_reach(v->m, f->body, v->f->name, 64), "calling @%s would recurse into @%s", MOR_SYM(name), MOR_SYM(v->f->name));
    CHECK(op->n_results == f->n_results, "@%s has %d results, the call has %d", MOR_SYM(name), f->n_results, op->n_results);
    mor_type rt[64];
    CHECK(f->n_results <= 64, "too many results");
    mor_err e;
    if (mor_call_result_types(v->m, f, op->n_operands, op->operands, rt, &e)) return vfail(v, op, "%s", e.msg);
    for (int i = 0; i < f->n_results; i++)
      if (!result_is(v, op, i, &rt[i])) return 0;
    return 1;
  }
  case MOR_OP_NORM_MATMUL: {
    if (!want(v, op, o[0], "x", MOR_F32, 2) || !norm_attrs(v, op, o[0]->type.dims[1].n)) return 0;
    const mor_global *w = weight2(v, op, "weight", -1, o[0]->type.dims[1].n);
    if (!w) return 0;
    mor_dim d[2] = {o[0]->type.dims[0], w->type.dims[0]};
    t = mor_type_make(MOR_F32, 2, d);
    return result_is(v, op, 0, &t);
  }
  case MOR_OP_QKV: {
    CHECK(op->n_operands >= 2 && op->n_operands <= 4, "takes x, pos, an optional idx and an optional depth");
    if (!want(v, op, o[0], "x", MOR_F32, 2) || !want(v, op, o[1], "pos", MOR_I32, 1)) return 0;
    CHECK(dim_same(o[0]->type.dims[0], o[1]->type.dims[0]), "x and pos must have the same rows");
    int has_depth = o[op->n_operands - 1]->type.dtype == MOR_I64;
    int has_idx = op->n_operands - 2 - has_depth;
    CHECK(has_idx == 0 || has_idx == 1, "takes at most one idx and one depth (the depth comes last)");
    if (has_idx && !want(v, op, o[2], "idx", MOR_I32, 1)) return 0;
    if (has_depth && !depth_operand(v, op, op->n_operands - 1)) return 0;
    int64_t D = o[0]->type.dims[1].n;
    if (!norm_attrs(v, op, D) || !need_attr(v, op, "heads", MOR_ATTR_INT) ||
        !need_attr(v, op, "head_dim", MOR_ATTR_INT) || !need_attr(v, op, "theta", MOR_ATTR_FLOAT))
      return 0;
    int64_t H = mor_op_int(op, "heads", 0), hd = mor_op_int(op, "head_dim", 0);
    CHECK(H > 0 && hd > 0 && hd % 2 == 0, "heads must be positive and head_dim positive and even");
    if (!weight2(v, op, "wq", H * hd, D)) return 0;
    int kv = mor_op_attr(op, "caches") != NULL;
    CHECK(kv == (mor_op_attr(op, "wk") != NULL) && kv == (mor_op_attr(op, "wv") != NULL) &&
              kv == (mor_op_attr(op, "kv_heads") != NULL),
          "wk, wv, kv_heads and caches come together (all or none)");
    CHECK(kv || !has_depth, "a depth operand needs caches");
    if (kv) {
      if (!need_attr(v, op, "kv_heads", MOR_ATTR_INT)) return 0;
      int64_t KVH = mor_op_int(op, "kv_heads", 0);
      CHECK(KVH > 0 && H % KVH == 0, "heads must be a positive multiple of kv_heads");
      if (!weight2(v, op, "wk", KVH * hd, D) || !weight2(v, op, "wv", KVH * hd, D)) return 0;
      if (!check_caches(v, op, KVH * hd, has_depth)) return 0;
    }
    mor_dim d[2] = {has_idx ? o[2]->type.dims[0] : o[0]->type.dims[0], mor_dconst(H * hd)};
    t = mor_type_make(MOR_F32, 2, d);
    return result_is(v, op, 0, &t);
  }
  case MOR_OP_GATE_UP: {
    if (!want(v, op, o[0], "x", MOR_F32, 2) || !norm_attrs(v, op, o[0]->type.dims[1].n)) return 0;
    const mor_global *g = weight2(v, op, "wg", -1, o[0]->type.dims[1].n);
    if (!g || !weight2(v, op, "wu", g->type.dims[0].n, o[0]->type.dims[1].n)) return 0;
    mor_dim d[2] = {o[0]->type.dims[0], g->type.dims[0]};
    t = mor_type_make(MOR_F32, 2, d);
    return result_is(v, op, 0, &t);
  }
  case MOR_OP_MATMUL_ADD: {
    CHECK(op->n_operands == 2 || op->n_operands == 3, "takes a, r and an optional idx");
    if (!want(v, op, o[0], "a", MOR_F32, 2) || !want(v, op, o[1], "r", MOR_F32, 2)) return 0;
    const mor_global *w = weight2(v, op, "weight", -1, o[0]->type.dims[1].n);
    if (!w) return 0;
    CHECK(o[1]->type.dims[1].n == w->type.dims[0].n, "r has %lld columns, the weight gives %lld",
          (long long)o[1]->type.dims[1].n, (long long)w->type.dims[0].n);
    if (op->n_operands == 3) {
      if (!want(v, op, o[2], "idx", MOR_I32, 1)) return 0;
      CHECK(dim_same(o[2]->type.dims[0], o[0]->type.dims[0]), "idx and a must have the same rows");
    } else {
      CHECK(dim_same(o[1]->type.dims[0], o[0]->type.dims[0]), "a and r must have the same rows");
    }
    mor_dim d[2] = {o[0]->type.dims[0], w->type.dims[0]};
    t = mor_type_make(MOR_F32, 2, d);
    return result_is(v, op, 0, &t);
  }
  case MOR_OP_MATMUL_STORE: {
    CHECK(op->n_operands == 4 || op->n_operands == 6, "takes a, r, dst, idx and (mode gate) base and s");
    if (!want(v, op, o[0], "a", MOR_F32, 2) || !want(v, op, o[1], "r", MOR_F32, 2) ||
        !want(v, op, o[2], "dst", MOR_F32, 2) || !want(v, op, o[3], "idx", MOR_I32, 1) ||
        !need_attr(v, op, "mode", MOR_ATTR_STR))
      return 0;
    const mor_global *w = weight2(v, op, "weight", o[2]->type.dims[1].n, o[0]->type.dims[1].n);
    if (!w) return 0;
    CHECK(dim_same(o[0]->type.dims[0], o[1]->type.dims[0]) && dim_same(o[0]->type.dims[0], o[3]->type.dims[0]),
          "a, r and idx must have the same rows");
    CHECK(o[1]->type.dims[1].n == o[2]->type.dims[1].n, "r and dst must have the same columns");
    const char *mode = mor_op_str(op, "mode");
    if (!strcmp(mode, "set")) {
      CHECK(op->n_operands == 4, "mode \"set\" takes a, r, dst and idx");
    } else if (!strcmp(mode, "gate")) {
      CHECK(op->n_operands == 6, "mode \"gate\" takes a, r, dst, idx, base and s");
      if (!want(v, op, o[4], "base", MOR_F32, 2) || !want(v, op, o[5], "s", MOR_F32, 1) ||
          !need_attr(v, op, "alpha", MOR_ATTR_FLOAT) || !need_attr(v, op, "gating", MOR_ATTR_STR))
        return 0;
      const char *g = mor_op_str(op, "gating");
      CHECK(!strcmp(g, "weighted") || !strcmp(g, "none"), "gating must be \"weighted\" or \"none\"");
      CHECK(type_same(&o[2]->type, &o[4]->type), "dst and base must have the same type");
      CHECK(dim_same(o[5]->type.dims[0], o[2]->type.dims[0]), "s must have the rows of dst");
    } else {
      return vfail(v, op, "mode must be \"set\" or \"gate\"");
    }
    return result_is(v, op, 0, &o[2]->type);
  }
  default: break;
  }
  return vfail(v, op, "unknown operation");
}

static int verify_op(verifier *v, const mor_op *op) {
  const mor_opinfo *info = &mor_ops[op->code];
  mor_value *const *o = op->operands;
  CHECK(info->n_operands < 0 || op->n_operands == info->n_operands, "takes %d operands, found %d", info->n_operands,
        op->n_operands);
  CHECK(info->n_results < 0 || op->n_results == info->n_results, "has %d results, found %d", info->n_results,
        op->n_results);
  CHECK((op->region != NULL) == (info->n_regions > 0), info->n_regions ? "needs a region" : "must not have a region");
  mor_type t;
  switch (op->code) {
  case MOR_OP_EMBED: {
    if (!want(v, op, o[0], "tokens", MOR_I32, 1)) return 0;
    const mor_global *w = weight_attr(v, op, "weight", 2);
    if (!w) return 0;
    mor_dim d[2] = {o[0]->type.dims[0], w->type.dims[1]};
    t = mor_type_make(MOR_F32, 2, d);
    return result_is(v, op, 0, &t);
  }
  case MOR_OP_RMSNORM: {
    if (!want(v, op, o[0], "x", MOR_F32, 2) || !need_attr(v, op, "eps", MOR_ATTR_FLOAT)) return 0;
    const mor_global *w = weight_attr(v, op, "weight", 1);
    if (!w) return 0;
    CHECK(w->type.dims[0].n == o[0]->type.dims[1].n, "weight has %lld elements, rows have %lld",
          (long long)w->type.dims[0].n, (long long)o[0]->type.dims[1].n);
    return result_is(v, op, 0, &o[0]->type);
  }
  case MOR_OP_MATMUL: {
    if (!want(v, op, o[0], "x", MOR_F32, 2)) return 0;
    const mor_global *w = weight_attr(v, op, "weight", 2);
    if (!w) return 0;
    CHECK(w->type.dims[1].n == o[0]->type.dims[1].n, "x has %lld columns but the weight [N, K] has K = %lld",
          (long long)o[0]->type.dims[1].n, (long long)w->type.dims[1].n);
    mor_dim d[2] = {o[0]->type.dims[0], w->type.dims[0]};
    t = mor_type_make(MOR_F32, 2, d);
    return result_is(v, op, 0, &t);
  }
  case MOR_OP_ROPE: {
    if (!want(v, op, o[0], "x", MOR_F32, 2) || !want(v, op, o[1], "pos", MOR_I32, 1)) return 0;
    if (!need_attr(v, op, "heads", MOR_ATTR_INT) || !need_attr(v, op, "head_dim", MOR_ATTR_INT) ||
        !need_attr(v, op, "theta", MOR_ATTR_FLOAT))
      return 0;
    CHECK(dim_same(o[0]->type.dims[0], o[1]->type.dims[0]), "x and pos must have the same rows");
    int64_t hd = mor_op_int(op, "head_dim", 0);
    CHECK(hd > 0 && hd % 2 == 0, "head_dim must be positive and even");
    CHECK(mor_op_int(op, "heads", 0) * hd == o[0]->type.dims[1].n, "heads * head_dim must equal the row width %lld",
          (long long)o[0]->type.dims[1].n);
    return result_is(v, op, 0, &o[0]->type);
  }
  case MOR_OP_KV_WRITE: {
    CHECK(op->n_operands == 3 || op->n_operands == 4, "takes k, v, pos and an optional depth");
    if (!want(v, op, o[0], "k", MOR_F32, 2) || !want(v, op, o[1], "v", MOR_F32, 2) ||
        !want(v, op, o[2], "pos", MOR_I32, 1) || !depth_operand(v, op, 3))
      return 0;
    CHECK(type_same(&o[0]->type, &o[1]->type), "k and v must have the same type");
    CHECK(dim_same(o[0]->type.dims[0], o[2]->type.dims[0]), "k and pos must have the same rows");
    return check_caches(v, op, o[0]->type.dims[1].n, op->n_operands == 4);
  }
  case MOR_OP_ATTENTION: {
    CHECK(op->n_operands == 2 || op->n_operands == 3, "takes q, pos and an optional depth");
    if (!want(v, op, o[0], "q", MOR_F32, 2) || !want(v, op, o[1], "pos", MOR_I32, 1) || !depth_operand(v, op, 2))
      return 0;
    if (!need_attr(v, op, "heads", MOR_ATTR_INT) || !need_attr(v, op, "kv_heads", MOR_ATTR_INT) ||
        !need_attr(v, op, "head_dim", MOR_ATTR_INT))
      return 0;
    int64_t h = mor_op_int(op, "heads", 0), kvh = mor_op_int(op, "kv_heads", 0), hd = mor_op_int(op, "head_dim", 0);
    CHECK(h > 0 && kvh > 0 && hd > 0 && h % kvh == 0, "heads must be a positive multiple of kv_heads");
    CHECK(h * hd == o[0]->type.dims[1].n, "heads * head_dim must equal the row width of q");
    CHECK(dim_same(o[0]->type.dims[0], o[1]->type.dims[0]), "q and pos must have the same rows");
    if (!check_caches(v, op, kvh * hd, op->n_operands == 3)) return 0;
    return result_is(v, op, 0, &o[0]->type);
  }
  case MOR_OP_SILU_MUL:
  case MOR_OP_ADD:
    if (!want(v, op, o[0], "a", MOR_F32, -1)) return 0;
    CHECK(type_same(&o[0]->type, &o[1]->type), "operands must have the same type");
    return result_is(v, op, 0, &o[0]->type);
  case MOR_OP_ROUTER: {
    CHECK(op->n_operands == 1 || op->n_operands == 2, "takes x and an optional depth");
    if (!want(v, op, o[0], "x", MOR_F32, 2) || !depth_operand(v, op, 1)) return 0;
    if (!need_attr(v, op, "weights", MOR_ATTR_SYMS) || !need_attr(v, op, "kind", MOR_ATTR_STR) ||
        !need_attr(v, op, "act", MOR_ATTR_STR) || !need_attr(v, op, "outputs", MOR_ATTR_INT) ||
        !need_attr(v, op, "temperature", MOR_ATTR_FLOAT))
      return 0;
    const char *kind = mor_op_str(op, "kind"), *act = mor_op_str(op, "act");
    CHECK(!strcmp(kind, "linear") || !strcmp(kind, "mlp"), "kind must be \"linear\" or \"mlp\"");
    CHECK(!strcmp(act, "sigmoid") || !strcmp(act, "tanh") || !strcmp(act, "softmax"),
          "act must be \"sigmoid\", \"tanh\" or \"softmax\"");
    int64_t outs = mor_op_int(op, "outputs", 0), D = o[0]->type.dims[1].n;
    CHECK(outs >= 1, "outputs must be positive");
    const mor_attr *w = mor_op_attr(op, "weights"), *w2 = mor_op_attr(op, "weights2");
    int mlp = !strcmp(kind, "mlp");
    CHECK(w->n >= 1, "weights must list at least one weight");
    if (mlp) CHECK(w2 && w2->kind == MOR_ATTR_SYMS && w2->n == w->n, "an mlp router needs weights2, as many as weights");
    for (int i = 0; i < w->n; i++) {
      const mor_global *g = mor_find_global(v->m, w->syms[i]);
      CHECK(g && g->kind == MOR_GLOBAL_WEIGHT && g->type.rank == 2, "weights[%d] @%s is not a rank-2 weight", i,
            MOR_SYM(w->syms[i]));
      CHECK(g->type.dims[1].n == D, "weights[%d] @%s must have %lld columns", i, MOR_SYM(w->syms[i]), (long long)D);
      int64_t hidden = g->type.dims[0].n;
      if (mlp) {
        const mor_global *g2 = mor_find_global(v->m, w2->syms[i]);
        CHECK(g2 && g2->kind == MOR_GLOBAL_WEIGHT && g2->type.rank == 2, "weights2[%d] @%s is not a rank-2 weight", i,
              MOR_SYM(w2->syms[i]));
        CHECK(g2->type.dims[1].n == hidden && g2->type.dims[0].n == outs, "weights2[%d] @%s must be [%lld, %lld]", i,
              MOR_SYM(w2->syms[i]), (long long)outs, (long long)hidden);
      } else {
        CHECK(hidden == outs, "weights[%d] @%s must have %lld rows", i, MOR_SYM(w->syms[i]), (long long)outs);
      }
    }
    mor_dim d[2] = {o[0]->type.dims[0], mor_dconst(outs)};
    t = mor_type_make(MOR_F32, outs == 1 ? 1 : 2, d);
    return result_is(v, op, 0, &t);
  }
  case MOR_OP_SELECT: {
    CHECK(op->n_operands == 2 || op->n_operands == 3, "takes scores, active rows and an optional depth");
    if (!want(v, op, o[0], "scores", MOR_F32, 1) || !want(v, op, o[1], "active", MOR_I32, 1) ||
        !depth_operand(v, op, 2))
      return 0;
    if (!need_attr(v, op, "mode", MOR_ATTR_STR) || !need_attr(v, op, "capacity", MOR_ATTR_FLOATS) ||
        !need_attr(v, op, "threshold", MOR_ATTR_FLOAT) || !need_attr(v, op, "alpha", MOR_ATTR_FLOAT))
      return 0;
    const char *mode = mor_op_str(op, "mode");
    CHECK(!strcmp(mode, "threshold") || !strcmp(mode, "top_k"), "mode must be \"threshold\" or \"top_k\"");
    CHECK(mor_op_attr(op, "capacity")->n >= 1, "capacity must list at least one value");
    return want(v, op, op->results[0], "the result", MOR_I32, 1);
  }
  case MOR_OP_TC_ROUTE: {
    if (!want(v, op, o[0], "p", MOR_F32, 2) || !need_attr(v, op, "alpha", MOR_ATTR_FLOAT)) return 0;
    mor_dim d[1] = {o[0]->type.dims[0]};
    t = mor_type_make(MOR_I32, 1, d);
    if (!result_is(v, op, 0, &t)) return 0;
    t.dtype = MOR_F32;
    return result_is(v, op, 1, &t);
  }
  case MOR_OP_WHERE: {
    if (!want(v, op, o[0], "d", MOR_I32, 1) || !depth_operand(v, op, 1) || !need_attr(v, op, "cmp", MOR_ATTR_STR))
      return 0;
    const char *cmp = mor_op_str(op, "cmp");
    CHECK(!strcmp(cmp, "ge") || !strcmp(cmp, "eq"), "cmp must be \"ge\" or \"eq\"");
    return want(v, op, op->results[0], "the result", MOR_I32, 1);
  }
  case MOR_OP_GATHER: {
    CHECK(o[0]->type.rank >= 1, "x must have rank >= 1");
    if (!want(v, op, o[1], "idx", MOR_I32, 1)) return 0;
    t = o[0]->type;
    t.dims[0] = o[1]->type.dims[0];
    return result_is(v, op, 0, &t);
  }
  case MOR_OP_SCATTER: {
    CHECK(o[0]->type.rank >= 1, "x must have rank >= 1");
    if (!want(v, op, o[1], "idx", MOR_I32, 1)) return 0;
    t = o[0]->type;
    t.dims[0] = o[1]->type.dims[0];
    CHECK(type_same(&o[2]->type, &t), "y must have the rows of idx and the columns of x");
    return result_is(v, op, 0, &o[0]->type);
  }
  case MOR_OP_GATE_ADD: {
    if (!want(v, op, o[0], "dst", MOR_F32, 2) || !want(v, op, o[2], "y", MOR_F32, 2) ||
        !want(v, op, o[3], "s", MOR_F32, 1) || !want(v, op, o[4], "idx", MOR_I32, 1))
      return 0;
    if (!need_attr(v, op, "alpha", MOR_ATTR_FLOAT) || !need_attr(v, op, "gating", MOR_ATTR_STR)) return 0;
    const char *g = mor_op_str(op, "gating");
    CHECK(!strcmp(g, "weighted") || !strcmp(g, "none"), "gating must be \"weighted\" or \"none\"");
    CHECK(type_same(&o[0]->type, &o[1]->type), "dst and base must have the same type");
    CHECK(dim_same(o[2]->type.dims[0], o[4]->type.dims[0]), "y and idx must have the same rows");
    CHECK(o[2]->type.dims[1].n == o[0]->type.dims[1].n, "y and dst must have the same columns");
    CHECK(dim_same(o[3]->type.dims[0], o[0]->type.dims[0]), "s must have the rows of dst");
    return result_is(v, op, 0, &o[0]->type);
  }
  case MOR_OP_COUNT_ADD:
    if (!want(v, op, o[0], "d", MOR_I32, 1) || !want(v, op, o[1], "idx", MOR_I32, 1)) return 0;
    return result_is(v, op, 0, &o[0]->type);
  case MOR_OP_IOTA:
  case MOR_OP_FILL: {
    CHECK(o[0]->type.rank >= 1, "the operand must have rank >= 1");
    mor_dim d[1] = {o[0]->type.dims[0]};
    mor_dtype dt = op->code == MOR_OP_IOTA ? MOR_I32 : op->results[0]->type.dtype;
    if (op->code == MOR_OP_FILL) {
      CHECK(dt == MOR_I32 || dt == MOR_F32, "the result must be i32 or f32");
      if (!need_attr(v, op, "value", MOR_ATTR_FLOAT)) return 0;
    }
    t = mor_type_make(dt, 1, d);
    return result_is(v, op, 0, &t);
  }
  case MOR_OP_RECUR: {
    if (!need_attr(v, op, "n", MOR_ATTR_INT)) return 0;
    CHECK(mor_op_int(op, "n", 0) >= 1, "n must be at least 1");
    const mor_block *r = op->region;
    CHECK(r->n_args == op->n_operands + 1, "the region takes the depth and %d carried values, found %d arguments",
          op->n_operands, r->n_args);
    CHECK(r->args[0]->type.dtype == MOR_I64 && r->args[0]->type.rank == 0, "the first region argument must be i64[]");
    CHECK(op->n_results == op->n_operands, "has as many results as carried values");
    for (int i = 0; i < op->n_operands; i++) {
      CHECK(type_fits(&o[i]->type, &r->args[i + 1]->type), "carried value %d does not fit region argument %d", i,
            i + 1);
      CHECK(type_same(&op->results[i]->type, &r->args[i + 1]->type), "result %d must have the type of region argument %d",
            i, i + 1);
    }
    CHECK(r->last && r->last->code == MOR_OP_YIELD, "the region must end with 'yield'");
    CHECK(r->last->n_operands == op->n_operands, "yield gives %d values, the region carries %d", r->last->n_operands,
          op->n_operands);
    for (int i = 0; i < op->n_operands; i++)
      CHECK(type_fits(&r->last->operands[i]->type, &r->args[i + 1]->type),
            "yielded value %d does not fit region argument %d", i, i + 1);
    return 1;
  }
  case MOR_OP_YIELD:
    CHECK(op->parent && op->parent->parent_op && op->parent->last == op, "'yield' must end a region");
    return 1;
  case MOR_OP_RETURN:
    CHECK(op->parent && !op->parent->parent_op && op->parent->last == op, "'return' must end a function");
    CHECK(op->n_operands == v->f->n_results, "returns %d values, the function has %d results", op->n_operands,
          v->f->n_results);
    for (int i = 0; i < op->n_operands; i++)
      CHECK(type_fits(&o[i]->type, &v->f->result_types[i]), "returned value %d does not fit the result type", i);
    return 1;
  case MOR_OP_CONST:
  case MOR_OP_CALL:
  case MOR_OP_NORM_MATMUL:
  case MOR_OP_QKV:
  case MOR_OP_GATE_UP:
  case MOR_OP_MATMUL_ADD:
  case MOR_OP_MATMUL_STORE: return verify_pass_op(v, op);
  case MOR_OP_COUNT: break;
  }
  return vfail(v, op, "unknown operation");
}

static int verify_block(verifier *v, const mor_block *b) {
  for (int i = 0; i < b->n_args; i++) v->defined[b->args[i]->id] = 1;
  for (const mor_op *op = b->first; op; op = op->next) {
    v->op_index++;
    CHECK(op->parent == b, "op is linked into the wrong block");
    for (int i = 0; i < op->n_operands; i++)
      CHECK(op->operands[i] && op->operands[i]->id < v->m->next_value_id && v->defined[op->operands[i]->id],
            "operand %d is used before it is defined (or outside its region)", i);
    if (op->region) {
      if (!verify_block(v, op->region)) return 0;
    }
    if (!verify_op(v, op)) return 0;
    for (int i = 0; i < op->n_results; i++) v->defined[op->results[i]->id] = 1;
  }
  /* values of this block are not visible outside it */
  for (int i = 0; i < b->n_args; i++) v->defined[b->args[i]->id] = 0;
  if (b->parent_op)
    for (const mor_op *op = b->first; op; op = op->next)
      for (int i = 0; i < op->n_results; i++) v->defined[op->results[i]->id] = 0;
  return 1;
}

int mor_verify_module(const mor_module *m, mor_err *err) {
  verifier v0 = {0}, *v = &v0;
  v->m = m;
  v->err = err;
  const mor_op *op = NULL;
  for (int i = 0; i < m->n_syms; i++)
    if (m->syms[i].bound < 1) return vfail(v, op, "symbol '%s' needs a positive bound", m->syms[i].name), -1;
  for (int i = 0; i < m->n_globals; i++) {
    const mor_global *g = &m->globals[i];
    for (int d = 0; d < g->type.rank; d++)
      if (g->type.dims[d].sym >= 0) return vfail(v, op, "global @%s must have a constant shape", MOR_SYM(g->name)), -1;
    if (g->kind == MOR_GLOBAL_WEIGHT && g->type.dtype != MOR_F32 && g->type.dtype != MOR_F16 &&
        g->type.dtype != MOR_BF16)
      return vfail(v, op, "weight @%s must be f32, f16 or bf16", MOR_SYM(g->name)), -1;
    if (g->kind == MOR_GLOBAL_KV) {
      if (g->type.rank != 3 || g->type.dtype != MOR_F32)
        return vfail(v, op, "kv @%s must be f32[capacity, kv_heads, head_dim]", MOR_SYM(g->name)), -1;
      if (g->policy && strcmp(g->policy, "reserve") && strcmp(g->policy, "grow"))
        return vfail(v, op, "kv @%s: policy must be \"reserve\" or \"grow\"", MOR_SYM(g->name)), -1;
      if (g->alias) {
        const mor_global *a = mor_find_global(m, g->alias);
        if (!a || a->kind != MOR_GLOBAL_KV || a->alias)
          return vfail(v, op, "kv @%s: alias @%s must name a kv cache that is not itself an alias", MOR_SYM(g->name), MOR_SYM(g->alias)), -1;
        if (!mor_type_equal(&a->type, &g->type))
          return vfail(v, op, "kv @%s: alias @%s has a different type", MOR_SYM(g->name), MOR_SYM(g->alias)), -1;
      }
    }
    for (int j = 0; j < i; j++)
      if (!strcmp(m->globals[j].name, g->name)) return vfail(v, op, "global @%s is defined twice", MOR_SYM(g->name)), -1;
  }
  v->defined = mor_xcalloc((size_t)m->next_value_id + 1, 1);
  int ok = 1;
  for (int f = 0; f < m->n_funcs && ok; f++) {
    v->f = m->funcs[f];
    v->op_index = 0;
    memset(v->defined, 0, (size_t)m->next_value_id + 1);
    if (!v->f->body->last || v->f->body->last->code != MOR_OP_RETURN) {
      vfail(v, NULL, "function @%s must end with 'return'", MOR_SYM(v->f->name));
      ok = 0;
      break;
    }
    ok = verify_block(v, v->f->body);
  }
  free(v->defined);
  return ok && !v->failed ? 0 : -1;
}

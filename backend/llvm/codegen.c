/* codegen.c: IR -> LLVM IR. Each IR function becomes an internal LLVM
 * function `mor.fn.<name>(ctx, (data, rows) per argument, data per result,
 * rows_out)`; each op becomes calls into the kernel library (parallel ones
 * through a generated instance function `void (arg slots, begin, end)`
 * handed to ctx->parallel), with shapes, attributes and weight slots as
 * constants so the kernels are specialized when inlined. Tensors live in the
 * arena at offsets from memplan.c; row counts are i64 SSA values (data
 * dependent after select/where); `recur` becomes a loop over the depth with
 * two ping-pong buffers per carried value. The module exports a morrt_desc
 * and a `<name>_forward` entry (runtime/morrt_abi.h). */
#include "backend/llvm/llvm_impl.h"
#include "runtime/morrt_abi.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SLOTS 32
#define MAX_RESULTS 16

/* ---- errors ------------------------------------------------------------------ */

static int op_number(const mor_block *b, const mor_op *target, int *k) {
  for (const mor_op *o = b->first; o; o = o->next) {
    if (o == target) return 1;
    ++*k;
    if (o->region && op_number(o->region, target, k)) return 1;
  }
  return 0;
}

static int gfail(lg *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int gfail(lg *g, const char *fmt, ...) {
  if (g->failed) return -1;
  g->failed = 1;
  char msg[1536];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const mor_op *op = g->cur_op;
  if (op && op->line > 0 && g->m->src_file) {
    mor_errf(g->err, "%s:%d:%d: %s: llvm backend: %s", g->m->src_file, op->line, op->col, mor_ops[op->code].name, msg);
  } else if (op && g->cur) {
    int k = 0;
    op_number(g->cur->body, op, &k);
    mor_errf(g->err, "@%s: op #%d (%s): llvm backend: %s", MOR_SYM(g->cur->name), k, mor_ops[op->code].name, msg);
  } else {
    mor_errf(g->err, "llvm backend: %s", msg);
  }
  return -1;
}

/* ---- small builders ------------------------------------------------------------ */

static LLVMValueRef ci64(lg *g, int64_t v) { return LLVMConstInt(g->i64, (unsigned long long)v, 1); }
static LLVMValueRef ci32(lg *g, int32_t v) { return LLVMConstInt(g->i32, (unsigned long long)(int64_t)v, 1); }
static LLVMValueRef cf32(lg *g, double v) { return LLVMConstReal(g->f32, (double)(float)v); }
static LLVMValueRef cf64(lg *g, double v) { return LLVMConstReal(g->f64, v); }
static LLVMValueRef cnull(lg *g) { return LLVMConstNull(g->ptr); }

static LLVMValueRef mul(lg *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(g->b, a, b, ""); }

static LLVMValueRef gep8(lg *g, LLVMValueRef base, LLVMValueRef off) {
  return LLVMBuildGEP2(g->b, g->i8, base, &off, 1, "");
}

static LLVMValueRef load_field(lg *g, LLVMValueRef ctx, int field) {
  LLVMValueRef off = ci64(g, 8 * field);
  return LLVMBuildLoad2(g->b, g->ptr, gep8(g, ctx, off), "");
}

/* A kernel of the library; NULL after an error. */
static LLVMValueRef kernel(lg *g, const char *name, LLVMTypeRef *fty) {
  LLVMValueRef f = LLVMGetNamedFunction(g->mod, name);
  if (!f) {
    gfail(g, "internal error: kernel %s missing from the kernel library", name);
    return NULL;
  }
  *fty = LLVMGlobalGetValueType(f);
  return f;
}

static int check_args(lg *g, const char *name, LLVMTypeRef fty, int n, LLVMValueRef *args) {
  unsigned np = LLVMCountParamTypes(fty);
  if ((int)np != n) return gfail(g, "internal error: kernel %s takes %u arguments, %d given", name, np, n);
  LLVMTypeRef pt[64];
  LLVMGetParamTypes(fty, pt);
  for (int i = 0; i < n; i++)
    if (LLVMTypeOf(args[i]) != pt[i]) return gfail(g, "internal error: kernel %s argument %d has the wrong type", name, i);
  return 0;
}

/* Call a kernel directly (sequential kernels, helpers). */
static LLVMValueRef call_k(lg *g, const char *name, int n, LLVMValueRef *args) {
  LLVMTypeRef fty;
  LLVMValueRef f = kernel(g, name, &fty);
  if (!f || check_args(g, name, fty, n, args)) return NULL;
  return LLVMBuildCall2(g->b, fty, f, args, (unsigned)n, "");
}

/* Instances made so far, for reuse: the kernel and, per argument, the
 * constant itself or (for run-time arguments) its type. */
typedef struct inst_key {
  LLVMValueRef inst, kernel;
  int n;
  LLVMValueRef args[24];
  LLVMTypeRef types[24];
} inst_key;

static LLVMValueRef find_instance(lg *g, LLVMValueRef kf, int n, LLVMValueRef *args) {
  if (n > 24) return NULL;
  for (int k = 0; k < g->n_keys; k++) {
    inst_key *e = &((inst_key *)g->keys)[k];
    if (e->kernel != kf || e->n != n) continue;
    int same = 1;
    for (int i = 0; i < n && same; i++) {
      int c = LLVMIsConstant(args[i]) != 0;
      same = c ? e->args[i] == args[i] : !e->args[i] && e->types[i] == LLVMTypeOf(args[i]);
    }
    if (same) return e->inst;
  }
  return NULL;
}

static void remember_instance(lg *g, LLVMValueRef inst, LLVMValueRef kf, int n, LLVMValueRef *args) {
  if (n > 24) return;
  if (g->n_keys == g->cap_keys) {
    g->cap_keys = g->cap_keys ? 2 * g->cap_keys : 64;
    g->keys = mor_xrealloc(g->keys, sizeof(inst_key) * (size_t)g->cap_keys);
  }
  inst_key *e = &((inst_key *)g->keys)[g->n_keys++];
  e->inst = inst;
  e->kernel = kf;
  e->n = n;
  for (int i = 0; i < n; i++) {
    int c = LLVMIsConstant(args[i]) != 0;
    e->args[i] = c ? args[i] : NULL;
    e->types[i] = LLVMTypeOf(args[i]);
  }
}

/* Run a range kernel over items [0, n) through ctx->parallel: a new
 * instance function calls the kernel with the constant arguments baked in
 * and the others loaded from the slot array. */
static int par_k(lg *g, const char *name, int n, LLVMValueRef *args, LLVMValueRef items, LLVMValueRef cost) {
  LLVMTypeRef fty;
  LLVMValueRef kf = kernel(g, name, &fty);
  if (!kf) return -1;
  LLVMValueRef full[64];
  for (int i = 0; i < n; i++) full[i] = args[i];
  full[n] = ci64(g, 0);
  full[n + 1] = ci64(g, 0);
  if (check_args(g, name, fty, n + 2, full)) return -1;
  /* an instance with the same kernel, constants and run-time argument types is reused */
  LLVMValueRef inst = find_instance(g, kf, n, args);
  if (inst) {
    int slot = 0;
    for (int i = 0; i < n; i++) {
      if (LLVMIsConstant(args[i])) continue;
      LLVMValueRef si = ci64(g, slot++);
      LLVMBuildStore(g->b, args[i], LLVMBuildGEP2(g->b, g->i64, g->slots, &si, 1, ""));
    }
    LLVMValueRef pool = load_field(g, g->ctx, 3), par = load_field(g, g->ctx, 4);
    LLVMValueRef pargs[5] = {pool, inst, g->slots, items, cost};
    LLVMBuildCall2(g->b, g->par_t, par, pargs, 5, "");
    return 0;
  }
  char nm[96];
  snprintf(nm, sizeof nm, "mor.inst.%d.%s", g->n_inst++, name + (strncmp(name, "mork_", 5) ? 0 : 5));
  inst = LLVMAddFunction(g->mod, nm, g->task_t);
  remember_instance(g, inst, kf, n, args);
  LLVMSetLinkage(inst, LLVMInternalLinkage);
  LLVMBuilderRef ib = LLVMCreateBuilderInContext(g->cx);
  LLVMPositionBuilderAtEnd(ib, LLVMAppendBasicBlockInContext(g->cx, inst, "entry"));
  LLVMValueRef argp = LLVMGetParam(inst, 0);
  int slot = 0;
  for (int i = 0; i < n; i++) {
    if (LLVMIsConstant(args[i])) continue;
    if (slot == MAX_SLOTS) {
      LLVMDisposeBuilder(ib);
      return gfail(g, "internal error: too many run-time arguments for %s", name);
    }
    LLVMValueRef si = ci64(g, slot++);
    LLVMBuildStore(g->b, args[i], LLVMBuildGEP2(g->b, g->i64, g->slots, &si, 1, ""));
    full[i] = LLVMBuildLoad2(ib, LLVMTypeOf(args[i]), LLVMBuildGEP2(ib, g->i64, argp, &si, 1, ""), "");
  }
  full[n] = LLVMGetParam(inst, 1);
  full[n + 1] = LLVMGetParam(inst, 2);
  LLVMBuildCall2(ib, fty, kf, full, (unsigned)n + 2, "");
  LLVMBuildRetVoid(ib);
  LLVMDisposeBuilder(ib);
  LLVMValueRef pool = load_field(g, g->ctx, 3), par = load_field(g, g->ctx, 4);
  LLVMValueRef pargs[5] = {pool, inst, g->slots, items, cost};
  LLVMBuildCall2(g->b, g->par_t, par, pargs, 5, "");
  return 0;
}

static void copy_bytes(lg *g, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef bytes) {
  LLVMValueRef a[3] = {dst, src, bytes};
  call_k(g, "mork_copy", 3, a);
}

/* ---- values ---------------------------------------------------------------------- */

static lg_val *V(lg *g, const mor_value *v) { return &g->v[v->id]; }
static LLVMValueRef P(lg *g, const mor_value *v) { return g->v[v->id].ptr; }
static LLVMValueRef R(lg *g, const mor_value *v) { return g->v[v->id].rows; }

/* elements per row (dims 1..) */
static int64_t inner(const mor_type *t) {
  int64_t n = 1;
  for (int i = 1; i < t->rank; i++) n *= t->dims[i].n;
  return n;
}
static int64_t last_dim(const mor_type *t) { return t->rank ? t->dims[t->rank - 1].n : 1; }
static int64_t esize(const mor_type *t) { return mor_dtype_size(t->dtype); }

/* rows * dims[1..rank-2]: the rows of a [.., K] tensor seen as a matrix */
static LLVMValueRef flat_rows(lg *g, const mor_value *v) {
  int64_t k = 1;
  for (int i = 1; i + 1 < v->type.rank; i++) k *= v->type.dims[i].n;
  return k == 1 ? R(g, v) : mul(g, R(g, v), ci64(g, k));
}

static const mp_plan *plan(lg *g) { return &g->plans[g->cur_index]; }

static LLVMValueRef frame_at(lg *g, int64_t off) { return gep8(g, g->frame, ci64(g, off)); }

/* Bind result i of op to its planned buffer with `rows` rows. */
static LLVMValueRef res(lg *g, const mor_op *op, int i, LLVMValueRef rows) {
  const mor_value *v = op->results[i];
  int b = plan(g)->val_buf[v->id];
  if (b < 0) {
    gfail(g, "internal error: result %d has no buffer", i);
    return cnull(g);
  }
  V(g, v)->ptr = frame_at(g, plan(g)->bufs[b].off);
  V(g, v)->rows = rows;
  return V(g, v)->ptr;
}

static LLVMValueRef temp(lg *g, const mor_op *op, int k) {
  const mp_op *s = mp_find(plan(g), op);
  if (!s || k >= s->n_bufs) {
    gfail(g, "internal error: temp %d not planned", k);
    return cnull(g);
  }
  return frame_at(g, plan(g)->bufs[s->first_buf + k].off);
}

/* ---- attributes, weights, caches -------------------------------------------------- */

static int attr_int(lg *g, const mor_op *op, const char *name, int64_t *out) {
  const mor_attr *a = mor_op_attr(op, name);
  *out = 0;
  if (!a || a->kind != MOR_ATTR_INT) return gfail(g, "missing integer attribute '%s'", name);
  *out = a->i;
  return 0;
}

static double attr_float(const mor_op *op, const char *name, double dflt) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return dflt;
  if (a->kind == MOR_ATTR_FLOAT) return a->f;
  if (a->kind == MOR_ATTR_INT) return (double)a->i;
  return dflt;
}

static const char *attr_str(lg *g, const mor_op *op, const char *name) {
  const char *s = mor_op_str(op, name);
  if (!s) gfail(g, "missing string attribute '%s'", name);
  return s;
}

/* The depth operand (i64 scalar) of op, or the constant 0 when absent. */
static LLVMValueRef depth_of(lg *g, const mor_op *op, int i) {
  if (i < 0 || i >= op->n_operands) return ci64(g, 0);
  const mor_value *d = op->operands[i];
  if (d->type.rank != 0 || d->type.dtype != MOR_I64) {
    gfail(g, "operand %d must be an i64 depth", i);
    return ci64(g, 0);
  }
  return R(g, d);
}

/* Entry `depth` of a table of n i64 values: folded when depth is a
 * constant, else a load from a private constant array (clamped). */
static LLVMValueRef table_i64(lg *g, const int64_t *vals, int n, LLVMValueRef depth) {
  if (LLVMIsAConstantInt(depth)) {
    int64_t d = LLVMConstIntGetSExtValue(depth);
    return ci64(g, vals[d < 0 ? 0 : d >= n ? n - 1 : d]);
  }
  int same = 1;
  for (int i = 1; i < n; i++) same &= vals[i] == vals[0];
  if (same) return ci64(g, vals[0]);
  LLVMValueRef *c = mor_xcalloc((size_t)n, sizeof *c);
  for (int i = 0; i < n; i++) c[i] = ci64(g, vals[i]);
  LLVMTypeRef at = LLVMArrayType2(g->i64, (uint64_t)n);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, at, "mor.tab");
  LLVMSetInitializer(gv, LLVMConstArray2(g->i64, c, (uint64_t)n));
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
  free(c);
  LLVMValueRef hi = ci64(g, n - 1);
  LLVMValueRef over = LLVMBuildICmp(g->b, LLVMIntUGT, depth, hi, "");
  LLVMValueRef idx = LLVMBuildSelect(g->b, over, hi, depth, "");
  return LLVMBuildLoad2(g->b, g->i64, LLVMBuildGEP2(g->b, g->i64, gv, &idx, 1, ""), "");
}

static LLVMValueRef table_f64(lg *g, const double *vals, int n, LLVMValueRef depth) {
  if (LLVMIsAConstantInt(depth)) {
    int64_t d = LLVMConstIntGetSExtValue(depth);
    return cf64(g, vals[d < 0 ? 0 : d >= n ? n - 1 : d]);
  }
  LLVMValueRef *c = mor_xcalloc((size_t)n, sizeof *c);
  for (int i = 0; i < n; i++) c[i] = cf64(g, vals[i]);
  LLVMTypeRef at = LLVMArrayType2(g->f64, (uint64_t)n);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, at, "mor.ftab");
  LLVMSetInitializer(gv, LLVMConstArray2(g->f64, c, (uint64_t)n));
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
  free(c);
  LLVMValueRef hi = ci64(g, n - 1);
  LLVMValueRef over = LLVMBuildICmp(g->b, LLVMIntUGT, depth, hi, "");
  LLVMValueRef idx = LLVMBuildSelect(g->b, over, hi, depth, "");
  return LLVMBuildLoad2(g->b, g->f64, LLVMBuildGEP2(g->b, g->f64, gv, &idx, 1, ""), "");
}

/* Weight global named by SYM attribute `attr`, or entry `depth` of a SYMS
 * list: returns the f32 data pointer (loaded from ctx->weights) and the
 * global (of entry 0 for lists: every entry must have the same shape). */
static LLVMValueRef weight(lg *g, const mor_op *op, const char *attr, LLVMValueRef depth, const mor_global **gout) {
  const mor_attr *a = mor_op_attr(op, attr);
  *gout = NULL;
  if (!a || (a->kind != MOR_ATTR_SYM && a->kind != MOR_ATTR_SYMS) || (a->kind == MOR_ATTR_SYMS && a->n < 1)) {
    gfail(g, "missing weight attribute '%s'", attr);
    return cnull(g);
  }
  int n = a->kind == MOR_ATTR_SYM ? 1 : a->n;
  int64_t *slots = mor_xcalloc((size_t)n, sizeof *slots);
  for (int i = 0; i < n; i++) {
    const char *nm = a->kind == MOR_ATTR_SYM ? a->s : a->syms[i];
    const mor_global *gl = mor_find_global(g->m, nm);
    if (!gl || gl->kind != MOR_GLOBAL_WEIGHT) {
      free(slots);
      gfail(g, "'%s' names @%s, which is not a weight", attr, MOR_SYM(nm));
      return cnull(g);
    }
    if (i == 0) *gout = gl;
    else if (!mor_type_equal(&gl->type, &(*gout)->type)) {
      free(slots);
      gfail(g, "the weights of '%s' differ in shape", attr);
      return cnull(g);
    }
    slots[i] = g->wslot[gl - g->m->globals];
  }
  LLVMValueRef s = table_i64(g, slots, n, depth);
  free(slots);
  return LLVMBuildLoad2(g->b, g->ptr, LLVMBuildGEP2(g->b, g->ptr, g->weights, &s, 1, ""), "w");
}

/* KV store index of entry `depth` of the SYMS attribute `caches` (-1: @none). */
static LLVMValueRef store_of(lg *g, const mor_op *op, LLVMValueRef depth, int64_t *width) {
  const mor_attr *a = mor_op_attr(op, "caches");
  if (!a || (a->kind != MOR_ATTR_SYMS && a->kind != MOR_ATTR_SYM)) {
    gfail(g, "missing attribute 'caches'");
    return ci64(g, -1);
  }
  int n = a->kind == MOR_ATTR_SYM ? 1 : a->n;
  int64_t *st = mor_xcalloc((size_t)n + 1, sizeof *st);
  *width = -1;
  for (int i = 0; i < n; i++) {
    const char *nm = a->kind == MOR_ATTR_SYM ? a->s : a->syms[i];
    if (!strcmp(nm, "none")) {
      st[i] = -1;
      continue;
    }
    const mor_global *gl = mor_find_global(g->m, nm);
    if (!gl || gl->kind != MOR_GLOBAL_KV) {
      free(st);
      gfail(g, "'caches' names @%s, which is not a KV cache", MOR_SYM(nm));
      return ci64(g, -1);
    }
    st[i] = g->kvstore[gl - g->m->globals];
    *width = gl->type.dims[1].n * gl->type.dims[2].n;
  }
  LLVMValueRef s = n ? table_i64(g, st, n, depth) : ci64(g, -1);
  free(st);
  return s;
}

/* ---- ops ------------------------------------------------------------------------------ */

/* The storage format of weight global W (a weight slot). */
static int64_t wformat(lg *g, const mor_global *W) { return g->wfmt[g->wslot[W - g->m->globals]]; }


static int gen_embed(lg *g, const mor_op *op) {
  const mor_value *tok = op->operands[0];
  const mor_global *E;
  LLVMValueRef w = weight(g, op, "weight", ci64(g, 0), &E);
  if (g->failed) return -1;
  int64_t D = E->type.dims[1].n, fmt = wformat(g, E);
  LLVMValueRef y = res(g, op, 0, R(g, tok));
  if (fmt == MORRT_FMT_F32) {
    LLVMValueRef a[4] = {P(g, tok), w, y, ci64(g, D)};
    return par_k(g, "mork_embed", 4, a, R(g, tok), ci64(g, D));
  }
  LLVMValueRef a[6] = {P(g, tok), w, ci64(g, fmt), ci64(g, E->type.dims[0].n), y, ci64(g, D)};
  return par_k(g, "mork_embed_w", 6, a, R(g, tok), ci64(g, 2 * D));
}

static int rmsnorm_into(lg *g, const mor_op *op, const char *wattr, const mor_value *x, LLVMValueRef y) {
  const mor_global *W;
  LLVMValueRef w = weight(g, op, wattr, ci64(g, 0), &W);
  if (g->failed) return -1;
  int64_t D = last_dim(&x->type);
  LLVMValueRef rows = mul(g, R(g, x), ci64(g, inner(&x->type) / (D ? D : 1)));
  LLVMValueRef a[5] = {P(g, x), w, y, ci64(g, D), cf64(g, attr_float(op, "eps", 1e-6))};
  return par_k(g, "mork_rmsnorm", 5, a, rows, ci64(g, 4 * D));
}

static int gen_rmsnorm(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0];
  return rmsnorm_into(g, op, "weight", x, res(g, op, 0, R(g, x)));
}

/* y_i = x W_i^T for the weights in attributes wattr[0..n) (n = 1 to 3),
 * as one parallel call (mork_matmul3_w); Nout[i] (may be NULL) gets N_i. */
static int matmul_group(lg *g, const mor_op *op, int n, const char *const *wattr, LLVMValueRef x, LLVMValueRef M,
                        int64_t K, LLVMValueRef *y, int64_t *Nout) {
  LLVMValueRef w[3] = {cnull(g), cnull(g), cnull(g)}, yy[3] = {cnull(g), cnull(g), cnull(g)};
  int64_t N[3] = {0, 0, 0}, fmt = 0;
  for (int i = 0; i < n; i++) {
    const mor_global *W;
    w[i] = weight(g, op, wattr[i], ci64(g, 0), &W);
    if (g->failed) return -1;
    if (W->type.rank != 2 || W->type.dims[1].n != K)
      return gfail(g, "weight @%s is not [N, %lld]", MOR_SYM(W->name), (long long)K);
    N[i] = W->type.dims[0].n;
    if (Nout) Nout[i] = N[i];
    if (i && wformat(g, W) != fmt) return gfail(g, "the weights of '%s' differ in format", wattr[0]);
    fmt = wformat(g, W);
    yy[i] = y[i];
  }
  LLVMValueRef ia[4] = {M, ci64(g, N[0]), ci64(g, N[1]), ci64(g, N[2])};
  LLVMValueRef items = call_k(g, "mork_matmul3_items", 4, ia);
  if (!items) return -1;
  if (fmt == MORRT_FMT_BF16 && g->o->bf16_dot) fmt |= MORRT_FMT_BF16DOT; /* prefill tiles on AVX512-BF16 */
  LLVMValueRef a[13] = {x, ci64(g, fmt), M, ci64(g, K), w[0], yy[0], ci64(g, N[0]), w[1], yy[1], ci64(g, N[1]),
                        w[2], yy[2], ci64(g, N[2])};
  LLVMValueRef small = LLVMBuildICmp(g->b, LLVMIntSLT, M, ci64(g, 128), "");
  LLVMValueRef rows = LLVMBuildSelect(g->b, small, M, ci64(g, 128), "");
  return par_k(g, "mork_matmul3_w", 13, a, items, mul(g, rows, ci64(g, 2 * 16 * K)));
}

/* y[M, N] = x[M, K] W^T with W the weight in attribute wattr. */
static int matmul_raw(lg *g, const mor_op *op, const char *wattr, LLVMValueRef x, LLVMValueRef M, int64_t K,
                      LLVMValueRef y, int64_t *Nout) {
  return matmul_group(g, op, 1, &wattr, x, M, K, &y, Nout);
}

static int gen_matmul(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0];
  LLVMValueRef y = res(g, op, 0, R(g, x));
  return matmul_raw(g, op, "weight", P(g, x), flat_rows(g, x), last_dim(&x->type), y, NULL);
}

static int rope_raw(lg *g, LLVMValueRef x, LLVMValueRef pos, LLVMValueRef y, LLVMValueRef M, int64_t H, int64_t hd,
                    double theta) {
  LLVMValueRef a[6] = {x, pos, y, ci64(g, H), ci64(g, hd), cf64(g, theta)};
  return par_k(g, "mork_rope", 6, a, M, ci64(g, H * hd * 4 + hd * 20));
}

static int gen_rope(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0], *pos = op->operands[1];
  int64_t H, hd;
  if (attr_int(g, op, "heads", &H) || attr_int(g, op, "head_dim", &hd)) return -1;
  if (hd <= 0 || hd % 2 || H * hd != last_dim(&x->type)) return gfail(g, "heads x head_dim do not fit the rows");
  LLVMValueRef y = res(g, op, 0, R(g, x));
  return rope_raw(g, P(g, x), P(g, pos), y, R(g, x), H, hd, attr_float(op, "theta", 10000.0));
}

static int kv_write_raw(lg *g, LLVMValueRef si, LLVMValueRef k, LLVMValueRef v, LLVMValueRef pos, LLVMValueRef M,
                        int64_t width) {
  LLVMValueRef a[7] = {g->kv, si, k, v, pos, M, ci64(g, width)};
  return call_k(g, "mork_kv_write", 7, a) ? 0 : -1;
}

static int gen_kv_write(lg *g, const mor_op *op) {
  const mor_value *k = op->operands[0], *v = op->operands[1], *pos = op->operands[2];
  int64_t width;
  LLVMValueRef si = store_of(g, op, depth_of(g, op, op->n_operands > 3 ? 3 : -1), &width);
  if (g->failed) return -1;
  if (width >= 0 && (inner(&k->type) != width || inner(&v->type) != width))
    return gfail(g, "K/V rows do not match the cache rows of %lld values", (long long)width);
  return kv_write_raw(g, si, P(g, k), P(g, v), P(g, pos), R(g, k), inner(&k->type));
}

static int attention_raw(lg *g, LLVMValueRef si, LLVMValueRef q, LLVMValueRef pos, LLVMValueRef y, LLVMValueRef M,
                         int64_t H, int64_t KVH, int64_t hd) {
  LLVMValueRef la[2] = {g->kv, si};
  LLVMValueRef n = call_k(g, "mork_kv_len", 2, la);
  if (!n) return -1;
  LLVMValueRef cost = mul(g, LLVMBuildAdd(g->b, n, ci64(g, 1), ""), ci64(g, 4 * hd));
  LLVMValueRef a[8] = {q, pos, g->kv, si, y, ci64(g, H), ci64(g, KVH), ci64(g, hd)};
  return par_k(g, "mork_attention", 8, a, mul(g, M, ci64(g, H)), cost);
}

static int gen_attention(lg *g, const mor_op *op) {
  const mor_value *q = op->operands[0], *pos = op->operands[1];
  int64_t H, KVH, hd, width;
  if (attr_int(g, op, "heads", &H) || attr_int(g, op, "kv_heads", &KVH) || attr_int(g, op, "head_dim", &hd)) return -1;
  LLVMValueRef si = store_of(g, op, depth_of(g, op, op->n_operands > 2 ? 2 : -1), &width);
  if (g->failed) return -1;
  if (H <= 0 || KVH <= 0 || hd <= 0 || H % KVH || H * hd != last_dim(&q->type) || (width >= 0 && width != KVH * hd))
    return gfail(g, "heads %lld, kv_heads %lld, head_dim %lld do not fit q and the caches", (long long)H, (long long)KVH,
                 (long long)hd);
  LLVMValueRef y = res(g, op, 0, R(g, q));
  return attention_raw(g, si, P(g, q), P(g, pos), y, R(g, q), H, KVH, hd);
}

static int silu_mul_raw(lg *g, LLVMValueRef gp, LLVMValueRef up, LLVMValueRef y, LLVMValueRef rows, int64_t F) {
  LLVMValueRef a[4] = {gp, up, y, ci64(g, F)};
  return par_k(g, "mork_silu_mul", 4, a, rows, ci64(g, 12 * F));
}

static int gen_silu_mul(lg *g, const mor_op *op) {
  const mor_value *gv = op->operands[0], *u = op->operands[1];
  LLVMValueRef y = res(g, op, 0, R(g, gv));
  return silu_mul_raw(g, P(g, gv), P(g, u), y, R(g, gv), inner(&gv->type));
}

static int gen_add(lg *g, const mor_op *op) {
  const mor_value *a = op->operands[0], *b = op->operands[1];
  const char *k = a->type.dtype == MOR_F32 ? "mork_add_f32" : a->type.dtype == MOR_I32 ? "mork_add_i32" : "mork_add_i64";
  if (a->type.rank == 0) {
    V(g, op->results[0])->rows = LLVMBuildAdd(g->b, R(g, a), R(g, b), "");
    return 0;
  }
  int64_t W = inner(&a->type);
  LLVMValueRef y = res(g, op, 0, R(g, a));
  LLVMValueRef args[4] = {P(g, a), P(g, b), y, ci64(g, W)};
  return par_k(g, k, 4, args, R(g, a), ci64(g, W));
}

static int gen_router(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0];
  LLVMValueRef depth = depth_of(g, op, op->n_operands > 1 ? 1 : -1);
  const char *kind = attr_str(g, op, "kind"), *act = attr_str(g, op, "act");
  if (!kind || !act) return -1;
  int mlp = !strcmp(kind, "mlp");
  if (!mlp && strcmp(kind, "linear")) return gfail(g, "unknown router kind '%s' (linear, mlp)", kind);
  int64_t actc = !strcmp(act, "sigmoid") ? 0 : !strcmp(act, "tanh") ? 1 : !strcmp(act, "softmax") ? 2 : -1;
  if (actc < 0) return gfail(g, "unknown router act '%s' (sigmoid, tanh, softmax)", act);
  const mor_global *G1, *G2 = NULL;
  LLVMValueRef w1 = weight(g, op, "weights", depth, &G1), w2 = cnull(g);
  if (mlp) w2 = weight(g, op, "weights2", depth, &G2);
  if (g->failed) return -1;
  int64_t D = x->type.dims[1].n, hid = mlp ? G1->type.dims[0].n : 0, out = mlp ? G2->type.dims[0].n : G1->type.dims[0].n;
  if (G1->type.dims[1].n != D || (mlp && G2->type.dims[1].n != hid)) return gfail(g, "router weights do not fit x");
  LLVMValueRef y = res(g, op, 0, R(g, x));
  LLVMValueRef a[10] = {P(g, x), w1,          w2,          y,          temp(g, op, 0),
                        ci64(g, D), ci64(g, hid), ci64(g, out), ci64(g, actc), cf32(g, attr_float(op, "temperature", 1.0))};
  return par_k(g, "mork_router", 10, a, R(g, x), ci64(g, 4 * D * (mlp ? hid : out) + 40 * out));
}

/* capacity[depth] of a FLOATS/INTS list (or a single number) */
static LLVMValueRef capacity_of(lg *g, const mor_op *op, LLVMValueRef depth) {
  const mor_attr *a = mor_op_attr(op, "capacity");
  if (!a) {
    gfail(g, "missing attribute 'capacity'");
    return cf64(g, 1.0);
  }
  if (a->kind == MOR_ATTR_FLOATS || a->kind == MOR_ATTR_INTS) {
    if (a->n < 1) {
      gfail(g, "attribute 'capacity' is empty");
      return cf64(g, 1.0);
    }
    double *v = mor_xcalloc((size_t)a->n, sizeof *v);
    for (int i = 0; i < a->n; i++) v[i] = a->kind == MOR_ATTR_FLOATS ? a->floats[i] : (double)a->ints[i];
    LLVMValueRef r = table_f64(g, v, a->n, depth);
    free(v);
    return r;
  }
  return cf64(g, attr_float(op, "capacity", 1.0));
}

static int gen_select(lg *g, const mor_op *op) {
  const mor_value *s = op->operands[0], *act = op->operands[1];
  LLVMValueRef depth = depth_of(g, op, op->n_operands > 2 ? 2 : -1);
  const char *mode = attr_str(g, op, "mode");
  if (!mode) return -1;
  LLVMValueRef cap = capacity_of(g, op, depth);
  LLVMValueRef out = res(g, op, 0, NULL), n;
  if (!strcmp(mode, "threshold")) {
    LLVMValueRef a[6] = {P(g, s), P(g, act), R(g, act), cap, cf64(g, attr_float(op, "threshold", 0.0)), out};
    n = call_k(g, "mork_select_threshold", 6, a);
  } else if (!strcmp(mode, "top_k")) {
    LLVMValueRef a[8] = {P(g, s), P(g, act), R(g, act), R(g, s), cap, cf32(g, attr_float(op, "alpha", 1.0)), out,
                         temp(g, op, 0)};
    n = call_k(g, "mork_select_topk", 8, a);
  } else {
    return gfail(g, "unknown select mode '%s' (threshold, top_k)", mode);
  }
  if (!n) return -1;
  V(g, op->results[0])->rows = n;
  return 0;
}

static int gen_tc_route(lg *g, const mor_op *op) {
  const mor_value *p = op->operands[0];
  int64_t Rn = p->type.dims[1].n;
  LLVMValueRef d = res(g, op, 0, R(g, p)), w = res(g, op, 1, R(g, p));
  LLVMValueRef a[5] = {P(g, p), d, w, ci64(g, Rn), cf32(g, attr_float(op, "alpha", 1.0))};
  return par_k(g, "mork_tc_route", 5, a, R(g, p), ci64(g, 2 * Rn));
}

static int gen_where(lg *g, const mor_op *op) {
  const mor_value *d = op->operands[0];
  const char *cmp = attr_str(g, op, "cmp");
  if (!cmp) return -1;
  int ge = !strcmp(cmp, "ge");
  if (!ge && strcmp(cmp, "eq")) return gfail(g, "unknown cmp '%s' (ge, eq)", cmp);
  LLVMValueRef out = res(g, op, 0, NULL);
  LLVMValueRef a[5] = {P(g, d), R(g, d), depth_of(g, op, 1), ci64(g, ge), out};
  LLVMValueRef n = call_k(g, "mork_where", 5, a);
  if (!n) return -1;
  V(g, op->results[0])->rows = n;
  return 0;
}

static int gather_raw(lg *g, LLVMValueRef x, LLVMValueRef idx, LLVMValueRef y, LLVMValueRef N, int64_t rb) {
  LLVMValueRef a[4] = {x, idx, y, ci64(g, rb)};
  return par_k(g, "mork_gather", 4, a, N, ci64(g, rb / 4 + 1));
}

static int gen_gather(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0], *idx = op->operands[1];
  LLVMValueRef y = res(g, op, 0, R(g, idx));
  return gather_raw(g, P(g, x), P(g, idx), y, R(g, idx), inner(&x->type) * esize(&x->type));
}

static int scatter_raw(lg *g, LLVMValueRef y, LLVMValueRef idx, LLVMValueRef u, LLVMValueRef N, int64_t rb) {
  LLVMValueRef a[4] = {y, idx, u, ci64(g, rb)};
  return par_k(g, "mork_scatter", 4, a, N, ci64(g, rb / 4 + 1));
}

static int gen_scatter(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0], *idx = op->operands[1], *u = op->operands[2];
  int64_t rb = inner(&x->type) * esize(&x->type);
  LLVMValueRef y = res(g, op, 0, R(g, x));
  copy_bytes(g, y, P(g, x), mul(g, R(g, x), ci64(g, rb)));
  return scatter_raw(g, y, P(g, idx), P(g, u), R(g, idx), rb);
}

static int gate_add_raw(lg *g, const mor_op *op, LLVMValueRef out, LLVMValueRef base, LLVMValueRef y, LLVMValueRef s,
                        LLVMValueRef idx, LLVMValueRef N, int64_t D) {
  const char *gating = mor_op_str(op, "gating");
  int weighted = !gating || !strcmp(gating, "weighted");
  if (gating && !weighted && strcmp(gating, "none")) return gfail(g, "unknown gating '%s' (weighted, none)", gating);
  LLVMValueRef a[8] = {out, base, y, s ? s : cnull(g), idx, ci64(g, D), cf32(g, attr_float(op, "alpha", 1.0)),
                       ci64(g, weighted)};
  return par_k(g, "mork_gate_add", 8, a, N, ci64(g, 2 * D));
}

static int gen_gate_add(lg *g, const mor_op *op) {
  const mor_value *dst = op->operands[0], *base = op->operands[1], *y = op->operands[2], *s = op->operands[3],
                  *idx = op->operands[4];
  int64_t D = inner(&dst->type);
  LLVMValueRef out = res(g, op, 0, R(g, dst));
  copy_bytes(g, out, P(g, dst), mul(g, R(g, dst), ci64(g, 4 * D)));
  return gate_add_raw(g, op, out, P(g, base), P(g, y), P(g, s), P(g, idx), R(g, idx), D);
}

static int gen_count_add(lg *g, const mor_op *op) {
  const mor_value *d = op->operands[0], *idx = op->operands[1];
  LLVMValueRef out = res(g, op, 0, R(g, d));
  copy_bytes(g, out, P(g, d), mul(g, R(g, d), ci64(g, 4)));
  LLVMValueRef a[3] = {out, P(g, idx), R(g, idx)};
  return call_k(g, "mork_count_add", 3, a) ? 0 : -1;
}

static int gen_iota(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0];
  LLVMValueRef a[2] = {res(g, op, 0, R(g, x)), R(g, x)};
  return call_k(g, "mork_iota", 2, a) ? 0 : -1;
}

static int gen_fill(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0];
  double v = attr_float(op, "value", 0.0);
  mor_dtype dt = op->results[0]->type.dtype;
  LLVMValueRef out = res(g, op, 0, R(g, x));
  if (dt == MOR_F32) {
    LLVMValueRef a[3] = {out, R(g, x), cf32(g, v)};
    return call_k(g, "mork_fill_f32", 3, a) ? 0 : -1;
  }
  if (dt == MOR_I32) {
    LLVMValueRef a[3] = {out, R(g, x), ci32(g, (int32_t)v)};
    return call_k(g, "mork_fill_i32", 3, a) ? 0 : -1;
  }
  return gfail(g, "fill gives f32 or i32, not %s", mor_dtype_name(dt));
}

static int gen_const(lg *g, const mor_op *op) {
  int64_t v;
  if (attr_int(g, op, "value", &v)) return -1;
  V(g, op->results[0])->ptr = NULL;
  V(g, op->results[0])->rows = ci64(g, v);
  return 0;
}

/* norm_matmul: rmsnorm(x, norm) W^T */
static int gen_norm_matmul(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0];
  LLVMValueRef t = temp(g, op, 0);
  if (rmsnorm_into(g, op, "norm", x, t)) return -1;
  LLVMValueRef y = res(g, op, 0, R(g, x));
  return matmul_raw(g, op, "weight", t, flat_rows(g, x), last_dim(&x->type), y, NULL);
}

/* 1 when the op has a `caches` attribute and none of its entries is @none */
static int always_caches(const mor_op *op) {
  const mor_attr *a = mor_op_attr(op, "caches");
  if (!a || (a->kind != MOR_ATTR_SYMS && a->kind != MOR_ATTR_SYM) || (a->kind == MOR_ATTR_SYMS && a->n < 1)) return 0;
  for (int i = 0; i < (a->kind == MOR_ATTR_SYM ? 1 : a->n); i++)
    if (!strcmp(a->kind == MOR_ATTR_SYM ? a->s : a->syms[i], "none")) return 0;
  return 1;
}

/* qkv: rows = x[idx] (or x), a = rmsnorm(rows); q = rope(a Wq^T, p); with
 * caches also k = rope(a Wk^T, p), v = a Wv^T appended to caches[depth]
 * unless that entry is @none (then not computed at all). */
static int gen_qkv(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0], *pos = op->operands[1], *idx = NULL, *dep = NULL;
  for (int i = 2; i < op->n_operands; i++) {
    const mor_value *v = op->operands[i];
    if (v->type.rank == 0 && v->type.dtype == MOR_I64) dep = v;
    else if (v->type.rank == 1 && v->type.dtype == MOR_I32) idx = v;
    else return gfail(g, "operand %d is neither an index (i32[M]) nor a depth (i64[])", i);
  }
  int64_t H, hd, D = x->type.dims[1].n;
  if (attr_int(g, op, "heads", &H) || attr_int(g, op, "head_dim", &hd)) return -1;
  double theta = attr_float(op, "theta", 10000.0);
  LLVMValueRef M = idx ? R(g, idx) : R(g, x), rows = P(g, x), p = P(g, pos);
  if (idx) {
    rows = temp(g, op, 0);
    p = temp(g, op, 1);
    if (gather_raw(g, P(g, x), P(g, idx), rows, M, 4 * D) || gather_raw(g, P(g, pos), P(g, idx), p, M, 4)) return -1;
  }
  LLVMValueRef a = temp(g, op, 2), qpre = temp(g, op, 3);
  const mor_global *Wn;
  LLVMValueRef wn = weight(g, op, "norm", ci64(g, 0), &Wn);
  if (g->failed) return -1;
  LLVMValueRef na[5] = {rows, wn, a, ci64(g, D), cf64(g, attr_float(op, "eps", 1e-6))};
  if (par_k(g, "mork_rmsnorm", 5, na, M, ci64(g, 4 * D))) return -1;
  if (always_caches(op)) {
    /* k and v are always computed: q, k, v in one parallel call */
    static const char *const qkv_w[3] = {"wq", "wk", "wv"};
    int64_t KVH, width, NN[3];
    if (attr_int(g, op, "kv_heads", &KVH)) return -1;
    LLVMValueRef si = store_of(g, op, dep ? R(g, dep) : ci64(g, 0), &width);
    if (g->failed) return -1;
    LLVMValueRef qpre = temp(g, op, 3), kpre = temp(g, op, 4), k = temp(g, op, 5), v = temp(g, op, 6);
    LLVMValueRef ys[3] = {qpre, kpre, v};
    if (matmul_group(g, op, 3, qkv_w, a, M, D, ys, NN)) return -1;
    if (NN[0] != H * hd) return gfail(g, "wq gives rows of %lld, not heads x head_dim", (long long)NN[0]);
    if (NN[1] != KVH * hd || NN[2] != NN[1] || (width >= 0 && width != NN[1]))
      return gfail(g, "wk/wv rows do not fit kv_heads x head_dim and the caches");
    LLVMValueRef q = res(g, op, 0, M);
    if (rope_raw(g, qpre, p, q, M, H, hd, theta) || rope_raw(g, kpre, p, k, M, KVH, hd, theta)) return -1;
    return kv_write_raw(g, si, k, v, p, M, NN[1]);
  }
  int64_t Q;
  if (matmul_raw(g, op, "wq", a, M, D, qpre, &Q)) return -1;
  if (Q != H * hd) return gfail(g, "wq gives rows of %lld, not heads x head_dim", (long long)Q);
  LLVMValueRef q = res(g, op, 0, M);
  if (rope_raw(g, qpre, p, q, M, H, hd, theta)) return -1;
  if (!mor_op_attr(op, "caches")) return 0;
  int64_t KVH, width;
  if (attr_int(g, op, "kv_heads", &KVH)) return -1;
  LLVMValueRef si = store_of(g, op, dep ? R(g, dep) : ci64(g, 0), &width);
  if (g->failed) return -1;
  /* if (si >= 0) { k, v, append } */
  LLVMValueRef has = LLVMBuildICmp(g->b, LLVMIntSGE, si, ci64(g, 0), "");
  LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(g->cx, g->fn, "qkv.kv"),
                    done = LLVMAppendBasicBlockInContext(g->cx, g->fn, "qkv.done");
  LLVMBuildCondBr(g->b, has, yes, done);
  LLVMPositionBuilderAtEnd(g->b, yes);
  LLVMValueRef kpre = temp(g, op, 4), k = temp(g, op, 5), v = temp(g, op, 6);
  int64_t KW, VW;
  if (matmul_raw(g, op, "wk", a, M, D, kpre, &KW) || matmul_raw(g, op, "wv", a, M, D, v, &VW)) return -1;
  if (KW != KVH * hd || VW != KW || (width >= 0 && width != KW))
    return gfail(g, "wk/wv rows do not fit kv_heads x head_dim and the caches");
  if (rope_raw(g, kpre, p, k, M, KVH, hd, theta) || kv_write_raw(g, si, k, v, p, M, KW)) return -1;
  LLVMBuildBr(g->b, done);
  LLVMPositionBuilderAtEnd(g->b, done);
  return 0;
}

/* gate_up: m = rmsnorm(x); silu(m Wg^T) * (m Wu^T) */
static int gen_gate_up(lg *g, const mor_op *op) {
  const mor_value *x = op->operands[0];
  LLVMValueRef m = temp(g, op, 0), gt = temp(g, op, 1), ut = temp(g, op, 2);
  if (rmsnorm_into(g, op, "norm", x, m)) return -1;
  int64_t D = last_dim(&x->type), F[3];
  LLVMValueRef M = flat_rows(g, x), ys[2] = {gt, ut};
  static const char *const gu_w[2] = {"wg", "wu"};
  if (matmul_group(g, op, 2, gu_w, m, M, D, ys, F)) return -1;
  if (F[0] != F[1]) return gfail(g, "wg and wu differ in rows");
  int64_t F1 = F[0];
  LLVMValueRef y = res(g, op, 0, R(g, x));
  return silu_mul_raw(g, gt, ut, y, M, F1);
}

/* y += r[idx] (or r) */
static int add_rows(lg *g, LLVMValueRef y, LLVMValueRef r, LLVMValueRef idx, LLVMValueRef M, int64_t N) {
  LLVMValueRef a[4] = {y, r, idx ? idx : cnull(g), ci64(g, N)};
  return par_k(g, "mork_add_rows", 4, a, M, ci64(g, N));
}

/* matmul_add: r[idx] + a W^T */
static int gen_matmul_add(lg *g, const mor_op *op) {
  const mor_value *a = op->operands[0], *r = op->operands[1], *idx = op->n_operands > 2 ? op->operands[2] : NULL;
  LLVMValueRef y = res(g, op, 0, R(g, a));
  int64_t N;
  if (matmul_raw(g, op, "weight", P(g, a), R(g, a), last_dim(&a->type), y, &N)) return -1;
  return add_rows(g, y, P(g, r), idx ? P(g, idx) : NULL, R(g, a), N);
}

/* matmul_store: y = r + a W^T; dst with rows idx set to y (set) or gated */
static int gen_matmul_store(lg *g, const mor_op *op) {
  if (op->n_operands != 4 && op->n_operands != 6) return gfail(g, "expects 4 or 6 operands");
  const mor_value *a = op->operands[0], *r = op->operands[1], *dst = op->operands[2], *idx = op->operands[3];
  const char *mode = attr_str(g, op, "mode");
  if (!mode) return -1;
  int gate = !strcmp(mode, "gate");
  if (!gate && strcmp(mode, "set")) return gfail(g, "unknown mode '%s' (set, gate)", mode);
  if (gate && op->n_operands != 6) return gfail(g, "mode gate needs base and s operands");
  LLVMValueRef y = temp(g, op, 0);
  int64_t D;
  if (matmul_raw(g, op, "weight", P(g, a), R(g, a), last_dim(&a->type), y, &D)) return -1;
  if (add_rows(g, y, P(g, r), NULL, R(g, a), D)) return -1;
  LLVMValueRef out = res(g, op, 0, R(g, dst));
  copy_bytes(g, out, P(g, dst), mul(g, R(g, dst), ci64(g, 4 * D)));
  if (!gate) return scatter_raw(g, out, P(g, idx), y, R(g, idx), 4 * D);
  return gate_add_raw(g, op, out, P(g, op->operands[4]), y, P(g, op->operands[5]), P(g, idx), R(g, idx), D);
}

static int func_index(const mor_module *m, const char *name) {
  for (int i = 0; i < m->n_funcs; i++)
    if (!strcmp(m->funcs[i]->name, name)) return i;
  return -1;
}

static int gen_call(lg *g, const mor_op *op) {
  const char *callee = attr_str(g, op, "callee");
  if (!callee) return -1;
  int fi = func_index(g->m, callee);
  if (fi < 0) return gfail(g, "no function @%s", MOR_SYM(callee));
  const mor_func *f = g->m->funcs[fi];
  if (f->body->n_args != op->n_operands || f->n_results != op->n_results)
    return gfail(g, "@%s takes %d arguments and gives %d results", MOR_SYM(callee), f->body->n_args, f->n_results);
  if (op->n_results > MAX_RESULTS) return gfail(g, "too many results");
  int n = 1 + 2 * op->n_operands + op->n_results + 1, k = 0;
  LLVMValueRef *a = mor_xcalloc((size_t)n, sizeof *a);
  a[k++] = g->ctx;
  for (int i = 0; i < op->n_operands; i++) {
    const mor_value *v = op->operands[i];
    a[k++] = P(g, v) ? P(g, v) : cnull(g);
    a[k++] = R(g, v);
  }
  for (int i = 0; i < op->n_results; i++) {
    if (op->results[i]->type.rank == 0) {
      free(a);
      return gfail(g, "scalar results of calls are not supported");
    }
    a[k++] = res(g, op, i, NULL);
  }
  a[k++] = g->rows_out;
  LLVMBuildCall2(g->b, LLVMGlobalGetValueType(g->fns[fi]), g->fns[fi], a, (unsigned)k, "");
  free(a);
  for (int i = 0; i < op->n_results; i++) {
    LLVMValueRef ix = ci64(g, i);
    V(g, op->results[i])->rows =
        LLVMBuildLoad2(g->b, g->i64, LLVMBuildGEP2(g->b, g->i64, g->rows_out, &ix, 1, ""), "rows");
  }
  return 0;
}

/* ---- blocks, recur, terminators ------------------------------------------------------ */

/* Where a terminator puts its values: buffers dst (copy) and rows (out). */
typedef struct term_ctx {
  int n;
  LLVMValueRef *dst;       /* per value: destination pointer (NULL for scalars) */
  LLVMValueRef *rows;      /* filled: rows (or the scalar) of each value */
  LLVMValueRef rows_store; /* functions: i64 array for the rows, or NULL */
} term_ctx;

static int gen_block(lg *g, const mor_block *b, term_ctx *tc);

static int gen_terminator(lg *g, const mor_op *op, term_ctx *tc) {
  if (op->n_operands != tc->n) return gfail(g, "gives %d values, %d expected", op->n_operands, tc->n);
  for (int i = 0; i < tc->n; i++) {
    const mor_value *v = op->operands[i];
    tc->rows[i] = R(g, v);
    if (v->type.rank == 0) continue;
    if (!tc->dst[i]) return gfail(g, "value %d: a tensor where a scalar is expected", i);
    copy_bytes(g, tc->dst[i], P(g, v), mul(g, R(g, v), ci64(g, inner(&v->type) * esize(&v->type))));
    if (tc->rows_store) {
      LLVMValueRef ix = ci64(g, i);
      LLVMBuildStore(g->b, R(g, v), LLVMBuildGEP2(g->b, g->i64, tc->rows_store, &ix, 1, ""));
    }
  }
  return 0;
}

static int gen_recur(lg *g, const mor_op *op) {
  int64_t n;
  if (attr_int(g, op, "n", &n)) return -1;
  const mor_block *body = op->region;
  int nc = op->n_operands;
  if (!body || op->n_results != nc || body->n_args != nc + 1)
    return gfail(g, "%d carried values, %d results and %d region arguments do not match", nc, op->n_results,
                 body ? body->n_args : 0);
  const mp_op *s = mp_find(plan(g), op);
  if (!s || s->n_bufs != 2 * nc) return gfail(g, "internal error: recur buffers not planned");
  LLVMValueRef *A = mor_xcalloc((size_t)nc + 1, sizeof *A), *B = mor_xcalloc((size_t)nc + 1, sizeof *B);
  LLVMValueRef *cur = mor_xcalloc((size_t)nc + 1, sizeof *cur), *oth = mor_xcalloc((size_t)nc + 1, sizeof *oth);
  LLVMValueRef *rws = mor_xcalloc((size_t)nc + 1, sizeof *rws), *yr = mor_xcalloc((size_t)nc + 1, sizeof *yr);
  for (int i = 0; i < nc; i++) {
    const mor_value *init = op->operands[i];
    if (init->type.rank == 0) continue;
    A[i] = frame_at(g, plan(g)->bufs[s->first_buf + 2 * i].off);
    B[i] = frame_at(g, plan(g)->bufs[s->first_buf + 2 * i + 1].off);
    copy_bytes(g, A[i], P(g, init), mul(g, R(g, init), ci64(g, inner(&init->type) * esize(&init->type))));
  }
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(g->cx, g->fn, "recur.head"),
                    bodyb = LLVMAppendBasicBlockInContext(g->cx, g->fn, "recur.body"),
                    exit = LLVMAppendBasicBlockInContext(g->cx, g->fn, "recur.exit");
  LLVMBuildBr(g->b, head);
  LLVMPositionBuilderAtEnd(g->b, head);
  LLVMValueRef depth = LLVMBuildPhi(g->b, g->i64, "depth");
  for (int i = 0; i < nc; i++) {
    if (A[i]) {
      cur[i] = LLVMBuildPhi(g->b, g->ptr, "cur");
      oth[i] = LLVMBuildPhi(g->b, g->ptr, "oth");
    }
    rws[i] = LLVMBuildPhi(g->b, g->i64, "rows");
  }
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, depth, ci64(g, n), ""), bodyb, exit);
  LLVMPositionBuilderAtEnd(g->b, bodyb);
  V(g, body->args[0])->ptr = NULL;
  V(g, body->args[0])->rows = depth;
  for (int i = 0; i < nc; i++) {
    V(g, body->args[i + 1])->ptr = cur[i];
    V(g, body->args[i + 1])->rows = rws[i];
  }
  term_ctx tc = {.n = nc, .dst = oth, .rows = yr};
  int rc = gen_block(g, body, &tc);
  if (!rc) {
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
    LLVMValueRef next = LLVMBuildAdd(g->b, depth, ci64(g, 1), "");
    LLVMBuildBr(g->b, head);
    LLVMValueRef zero = ci64(g, 0);
    LLVMBasicBlockRef from[2] = {pre, latch};
    LLVMValueRef dv[2] = {zero, next};
    LLVMAddIncoming(depth, dv, from, 2);
    for (int i = 0; i < nc; i++) {
      if (A[i]) {
        LLVMValueRef cv[2] = {A[i], oth[i]}, ov[2] = {B[i], cur[i]};
        LLVMAddIncoming(cur[i], cv, from, 2);
        LLVMAddIncoming(oth[i], ov, from, 2);
      }
      LLVMValueRef rv[2] = {R(g, op->operands[i]), yr[i]};
      LLVMAddIncoming(rws[i], rv, from, 2);
    }
    LLVMPositionBuilderAtEnd(g->b, exit);
    for (int i = 0; i < nc; i++) {
      V(g, op->results[i])->ptr = cur[i];
      V(g, op->results[i])->rows = rws[i];
    }
  }
  free(A);
  free(B);
  free(cur);
  free(oth);
  free(rws);
  free(yr);
  return rc;
}

static int gen_op(lg *g, const mor_op *op) {
  switch (op->code) {
  case MOR_OP_EMBED: return gen_embed(g, op);
  case MOR_OP_RMSNORM: return gen_rmsnorm(g, op);
  case MOR_OP_MATMUL: return gen_matmul(g, op);
  case MOR_OP_ROPE: return gen_rope(g, op);
  case MOR_OP_KV_WRITE: return gen_kv_write(g, op);
  case MOR_OP_ATTENTION: return gen_attention(g, op);
  case MOR_OP_SILU_MUL: return gen_silu_mul(g, op);
  case MOR_OP_ADD: return gen_add(g, op);
  case MOR_OP_ROUTER: return gen_router(g, op);
  case MOR_OP_SELECT: return gen_select(g, op);
  case MOR_OP_TC_ROUTE: return gen_tc_route(g, op);
  case MOR_OP_WHERE: return gen_where(g, op);
  case MOR_OP_GATHER: return gen_gather(g, op);
  case MOR_OP_SCATTER: return gen_scatter(g, op);
  case MOR_OP_GATE_ADD: return gen_gate_add(g, op);
  case MOR_OP_COUNT_ADD: return gen_count_add(g, op);
  case MOR_OP_IOTA: return gen_iota(g, op);
  case MOR_OP_FILL: return gen_fill(g, op);
  case MOR_OP_RECUR: return gen_recur(g, op);
  case MOR_OP_CONST: return gen_const(g, op);
  case MOR_OP_CALL: return gen_call(g, op);
  case MOR_OP_NORM_MATMUL: return gen_norm_matmul(g, op);
  case MOR_OP_QKV: return gen_qkv(g, op);
  case MOR_OP_GATE_UP: return gen_gate_up(g, op);
  case MOR_OP_MATMUL_ADD: return gen_matmul_add(g, op);
  case MOR_OP_MATMUL_STORE: return gen_matmul_store(g, op);
  default: break;
  }
  return gfail(g, "op '%s' is not supported by the LLVM backend", op->code < MOR_OP_COUNT ? mor_ops[op->code].name : "?");
}

static int gen_block(lg *g, const mor_block *b, term_ctx *tc) {
  int terminated = 0;
  for (const mor_op *op = b->first; op; op = op->next) {
    g->cur_op = op;
    if (terminated) return gfail(g, "op after the terminator");
    int rc;
    if (op->code == MOR_OP_YIELD || op->code == MOR_OP_RETURN) {
      if ((op->code == MOR_OP_YIELD) != (b->parent_op != NULL))
        return gfail(g, "%s in the wrong kind of block", mor_ops[op->code].name);
      rc = gen_terminator(g, op, tc);
      terminated = 1;
    } else {
      rc = gen_op(g, op);
    }
    if (rc || g->failed) return -1;
  }
  g->cur_op = NULL;
  if (!terminated) return gfail(g, "a block ends without %s", b->parent_op ? "yield" : "return");
  return 0;
}

/* ---- functions --------------------------------------------------------------------------- */

/* Every dim after the first must be a constant: rows are the only run-time size. */
static int check_types(lg *g, const mor_block *b) {
  for (int i = 0; i < b->n_args; i++)
    for (int d = 1; d < b->args[i]->type.rank; d++)
      if (b->args[i]->type.dims[d].sym >= 0) return gfail(g, "a block argument has a symbolic inner dimension");
  for (const mor_op *op = b->first; op; op = op->next) {
    g->cur_op = op;
    for (int r = 0; r < op->n_results; r++)
      for (int d = 1; d < op->results[r]->type.rank; d++)
        if (op->results[r]->type.dims[d].sym >= 0)
          return gfail(g, "result %d has a symbolic dimension %d: only the row count may vary at run time", r, d);
    if (op->region && check_types(g, op->region)) return -1;
  }
  g->cur_op = NULL;
  return 0;
}

static LLVMTypeRef func_type(lg *g, const mor_func *f) {
  int n = 1 + 2 * f->body->n_args + f->n_results + 1;
  LLVMTypeRef *p = mor_xcalloc((size_t)n, sizeof *p);
  int k = 0;
  p[k++] = g->ptr;
  for (int i = 0; i < f->body->n_args; i++) p[k++] = g->ptr, p[k++] = g->i64;
  for (int i = 0; i < f->n_results; i++) p[k++] = g->ptr;
  p[k++] = g->ptr;
  LLVMTypeRef t = LLVMFunctionType(g->vd, p, (unsigned)k, 0);
  free(p);
  return t;
}

static int gen_func(lg *g, int fi) {
  const mor_func *f = g->m->funcs[fi];
  g->cur = f;
  g->cur_index = fi;
  g->fn = g->fns[fi];
  if (f->n_results > MAX_RESULTS) return gfail(g, "@%s has too many results", MOR_SYM(f->name));
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(g->cx, g->fn, "entry");
  LLVMPositionBuilderAtEnd(g->b, entry);
  g->ctx = LLVMGetParam(g->fn, 0);
  g->weights = load_field(g, g->ctx, 0);
  g->kv = load_field(g, g->ctx, 1);
  LLVMValueRef arena = load_field(g, g->ctx, 2);
  g->frame = gep8(g, arena, ci64(g, g->frame_base[fi]));
  g->slots = LLVMBuildAlloca(g->b, LLVMArrayType2(g->i64, MAX_SLOTS), "slots");
  g->rows_out = LLVMBuildAlloca(g->b, LLVMArrayType2(g->i64, MAX_RESULTS), "rows_out");
  int k = 1;
  for (int i = 0; i < f->body->n_args; i++) {
    const mor_value *a = f->body->args[i];
    V(g, a)->ptr = a->type.rank ? LLVMGetParam(g->fn, (unsigned)k) : NULL;
    V(g, a)->rows = LLVMGetParam(g->fn, (unsigned)k + 1);
    k += 2;
  }
  LLVMValueRef dst[MAX_RESULTS + 1], rows[MAX_RESULTS + 1];
  for (int i = 0; i < f->n_results; i++) dst[i] = f->result_types[i].rank ? LLVMGetParam(g->fn, (unsigned)k + i) : NULL;
  term_ctx tc = {.n = f->n_results, .dst = dst, .rows = rows, .rows_store = LLVMGetParam(g->fn, (unsigned)(k + f->n_results))};
  if (gen_block(g, f->body, &tc)) return -1;
  LLVMBuildRetVoid(g->b);
  g->cur = NULL;
  return 0;
}

/* DFS over calls: a function must not reach itself (frames are static). */
static int calls_cycle(const mor_module *m, const mor_block *b, int *state);
static int visit_func(const mor_module *m, int fi, int *state) {
  if (state[fi] == 1) return 1;
  if (state[fi] == 2) return 0;
  state[fi] = 1;
  if (calls_cycle(m, m->funcs[fi]->body, state)) return 1;
  state[fi] = 2;
  return 0;
}
static int calls_cycle(const mor_module *m, const mor_block *b, int *state) {
  for (const mor_op *op = b->first; op; op = op->next) {
    if (op->code == MOR_OP_CALL) {
      const char *c = mor_op_str(op, "callee");
      int fi = c ? func_index(m, c) : -1;
      if (fi >= 0 && visit_func(m, fi, state)) return 1;
    }
    if (op->region && calls_cycle(m, op->region, state)) return 1;
  }
  return 0;
}

/* ---- globals: weight slots and KV stores -------------------------------------------------- */

/* Weight formats: a rank-2 weight that ops read only as a matmul's W (or as
 * an embedding table, which reads any format) is stored in the build's
 * weights format; every other weight (norms, routers, a table no matmul
 * reads) stays f32. use[slot]: bit 0 read as a matmul W, bit 1 read by an
 * op that needs f32. */
static int is_matmul_attr(const mor_op *op, const char *attr) {
  switch (op->code) {
  case MOR_OP_MATMUL: case MOR_OP_NORM_MATMUL: case MOR_OP_MATMUL_ADD: case MOR_OP_MATMUL_STORE:
    return !strcmp(attr, "weight");
  case MOR_OP_QKV: return !strcmp(attr, "wq") || !strcmp(attr, "wk") || !strcmp(attr, "wv");
  case MOR_OP_GATE_UP: return !strcmp(attr, "wg") || !strcmp(attr, "wu");
  default: return 0;
  }
}

static void weight_uses(lg *g, const mor_block *b, int *use) {
  for (const mor_op *op = b ? b->first : NULL; op; op = op->next) {
    for (int i = 0; i < op->n_attrs; i++) {
      const mor_attr *a = &op->attrs[i];
      if (a->kind != MOR_ATTR_SYM && a->kind != MOR_ATTR_SYMS) continue;
      int n = a->kind == MOR_ATTR_SYM ? 1 : a->n;
      int bit = is_matmul_attr(op, a->name) ? 1 : op->code == MOR_OP_EMBED && !strcmp(a->name, "weight") ? 0 : 2;
      for (int k = 0; k < n; k++) {
        const mor_global *gl = mor_find_global(g->m, a->kind == MOR_ATTR_SYM ? a->s : a->syms[k]);
        if (gl && gl->kind == MOR_GLOBAL_WEIGHT) use[g->wslot[gl - g->m->globals]] |= bit;
      }
    }
    if (op->region) weight_uses(g, op->region, use);
  }
}

static void weight_formats(lg *g) {
  int *use = mor_xcalloc((size_t)g->n_wslots + 1, sizeof *use);
  g->wfmt = mor_xcalloc((size_t)g->n_wslots + 1, sizeof *g->wfmt);
  for (int f = 0; f < g->m->n_funcs; f++) weight_uses(g, g->m->funcs[f]->body, use);
  for (int i = 0; i < g->n_wslots; i++) {
    const mor_global *gl = &g->m->globals[g->wslot_global[i]];
    g->wfmt[i] = use[i] == 1 && gl->type.rank == 2 ? g->o->weights_format : MORRT_FMT_F32;
  }
  free(use);
}

/* by MORRT_FMT_* */
static const char *const format_names[] = {"f32", "bf16", "f16", "q8"};

int mor_llvm_weights_format(const char *name) {
  for (int i = 0; i < 4; i++)
    if (name && !strcmp(name, format_names[i])) return i;
  return -1;
}

static int bind_globals(lg *g) {
  const mor_module *m = g->m;
  int n = m->n_globals;
  g->wslot = mor_xcalloc((size_t)n + 1, sizeof(int));
  g->kvstore = mor_xcalloc((size_t)n + 1, sizeof(int));
  g->wslot_global = mor_xcalloc((size_t)n + 1, sizeof(int));
  g->store_global = mor_xcalloc((size_t)n + 1, sizeof(int));
  for (int i = 0; i < n; i++) {
    const mor_global *gl = &m->globals[i];
    g->wslot[i] = g->kvstore[i] = -1;
    if (gl->kind == MOR_GLOBAL_WEIGHT) {
      if (gl->type.dtype != MOR_F32 && gl->type.dtype != MOR_F16 && gl->type.dtype != MOR_BF16)
        return gfail(g, "weight @%s has dtype %s (f32, f16, bf16 expected)", MOR_SYM(gl->name), mor_dtype_name(gl->type.dtype));
      if (gl->type.rank < 1 || gl->type.rank > 4) return gfail(g, "weight @%s has rank %d", MOR_SYM(gl->name), gl->type.rank);
      g->wslot_global[g->n_wslots] = i;
      g->wslot[i] = g->n_wslots++;
    } else if (!gl->alias) {
      if (gl->type.rank != 3 || gl->type.dtype != MOR_F32)
        return gfail(g, "KV cache @%s: type must be f32[capacity, kv_heads, head_dim]", MOR_SYM(gl->name));
      g->store_global[g->n_stores] = i;
      g->kvstore[i] = g->n_stores++;
    }
  }
  for (int i = 0; i < n; i++) {
    const mor_global *gl = &m->globals[i], *t = gl;
    if (gl->kind != MOR_GLOBAL_KV || !gl->alias) continue;
    for (int steps = 0; t && t->alias; steps++) {
      if (steps > n) return gfail(g, "KV cache @%s: aliases form a cycle", MOR_SYM(gl->name));
      t = mor_find_global(m, t->alias);
      if (!t || t->kind != MOR_GLOBAL_KV) return gfail(g, "KV cache @%s: alias @%s is not a KV cache", MOR_SYM(gl->name), MOR_SYM(gl->alias));
    }
    g->kvstore[i] = g->kvstore[t - m->globals];
  }
  return 0;
}

/* ---- the descriptor ---------------------------------------------------------------------- */

static LLVMValueRef cstr(lg *g, const char *s) {
  if (!s) return cnull(g);
  LLVMValueRef c = LLVMConstStringInContext2(g->cx, s, strlen(s), 0);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, LLVMTypeOf(c), "mor.str");
  LLVMSetInitializer(gv, c);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
  return gv;
}

static void asm_escape(mor_buf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') mor_buf_putc(b, '\\');
    mor_buf_putc(b, *s);
  }
}

/* Embed a file's bytes with the assembler's .incbin; returns the symbol
 * (an external i8 declaration resolved within the same object). */
static LLVMValueRef embed_file(lg *g, const char *path, const char *sym, int64_t *size) {
  struct stat st;
  if (stat(path, &st) != 0) {
    gfail(g, "%s: cannot read the file to embed", path);
    return cnull(g);
  }
  *size = (int64_t)st.st_size;
  mor_buf b = {0};
  mor_buf_printf(&b, "\t.section .rodata.%s,\"a\"\n\t.p2align 6\n\t.globl %s\n\t.hidden %s\n%s:\n\t.incbin \"", sym, sym,
                 sym, sym);
  asm_escape(&b, path);
  mor_buf_puts(&b, "\"\n\t.byte 0\n\t.text\n");
  LLVMAppendModuleInlineAsm(g->mod, b.data, b.len);
  mor_buf_free(&b);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, g->i8, sym);
  LLVMSetLinkage(gv, LLVMExternalLinkage);
  LLVMSetVisibility(gv, LLVMHiddenVisibility);
  return gv;
}

static LLVMValueRef forward_entry(lg *g, const char *name) {
  int fi = func_index(g->m, "forward");
  const mor_func *f = fi >= 0 ? g->m->funcs[fi] : NULL;
  if (!f) {
    gfail(g, "the module has no @forward function");
    return NULL;
  }
  const mor_type *a0 = f->body->n_args == 2 ? &f->body->args[0]->type : NULL;
  const mor_type *a1 = a0 ? &f->body->args[1]->type : NULL;
  if (!a0 || a0->dtype != MOR_I32 || a0->rank != 1 || a1->dtype != MOR_I32 || a1->rank != 1 || f->n_results != 2 ||
      f->result_types[0].dtype != MOR_F32 || f->result_types[0].rank != 2 || f->result_types[1].dtype != MOR_I32 ||
      f->result_types[1].rank != 1) {
    gfail(g, "@forward must be (tokens i32[T], pos i32[T]) -> (f32[T, V], i32[T])");
    return NULL;
  }
  LLVMTypeRef p[6] = {g->ptr, g->ptr, g->ptr, g->i64, g->ptr, g->ptr};
  LLVMTypeRef ft = LLVMFunctionType(g->vd, p, 6, 0);
  char sym[256];
  snprintf(sym, sizeof sym, "%s_forward", name);
  LLVMValueRef w = LLVMAddFunction(g->mod, sym, ft);
  LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->cx, w, "entry"));
  LLVMValueRef rows = LLVMBuildAlloca(g->b, LLVMArrayType2(g->i64, MAX_RESULTS), "rows");
  LLVMValueRef T = LLVMGetParam(w, 3);
  LLVMValueRef a[8] = {LLVMGetParam(w, 0), LLVMGetParam(w, 1), T, LLVMGetParam(w, 2), T, LLVMGetParam(w, 4),
                       LLVMGetParam(w, 5), rows};
  LLVMBuildCall2(g->b, LLVMGlobalGetValueType(g->fns[fi]), g->fns[fi], a, 8, "");
  LLVMBuildRetVoid(g->b);
  return w;
}

static int uses_topk(const mor_block *b) {
  for (const mor_op *op = b->first; op; op = op->next) {
    if (op->code == MOR_OP_SELECT) {
      const char *mode = mor_op_str(op, "mode");
      if (mode && !strcmp(mode, "top_k")) return 1;
    }
    if (op->region && uses_topk(op->region)) return 1;
  }
  return 0;
}

static int emit_desc(lg *g, const char *name, const char *triple, const char *cpu) {
  const mor_module *m = g->m;
  LLVMValueRef fwd = forward_entry(g, name);
  if (!fwd) return -1;
  /* weights */
  LLVMTypeRef shape_t = LLVMArrayType2(g->i64, 4);
  LLVMTypeRef wt_f[5] = {g->ptr, g->i64, g->i64, shape_t, g->i64};
  LLVMTypeRef wt = LLVMStructTypeInContext(g->cx, wt_f, 5, 0);
  LLVMValueRef *wv = mor_xcalloc((size_t)g->n_wslots + 1, sizeof *wv);
  for (int i = 0; i < g->n_wslots; i++) {
    const mor_global *gl = &m->globals[g->wslot_global[i]];
    LLVMValueRef sh[4];
    for (int d = 0; d < 4; d++) sh[d] = ci64(g, d < gl->type.rank ? gl->type.dims[d].n : 0);
    int64_t dt = gl->type.dtype == MOR_F32 ? 0 : gl->type.dtype == MOR_F16 ? 1 : 2;
    LLVMValueRef f[5] = {cstr(g, gl->name), ci64(g, dt), ci64(g, gl->type.rank), LLVMConstArray2(g->i64, sh, 4),
                         ci64(g, g->wfmt[i])};
    wv[i] = LLVMConstNamedStruct(wt, f, 5);
  }
  LLVMValueRef warr = LLVMAddGlobal(g->mod, LLVMArrayType2(wt, (uint64_t)g->n_wslots), "mor.weights");
  LLVMSetInitializer(warr, LLVMConstArray2(wt, wv, (uint64_t)g->n_wslots));
  LLVMSetGlobalConstant(warr, 1);
  LLVMSetLinkage(warr, LLVMPrivateLinkage);
  free(wv);
  /* KV stores */
  LLVMTypeRef kt_f[5] = {g->ptr, g->i64, g->i64, g->i64, g->i64};
  LLVMTypeRef kt = LLVMStructTypeInContext(g->cx, kt_f, 5, 0);
  LLVMValueRef *kv = mor_xcalloc((size_t)g->n_stores + 1, sizeof *kv);
  for (int i = 0; i < g->n_stores; i++) {
    const mor_global *gl = &m->globals[g->store_global[i]];
    LLVMValueRef f[5] = {cstr(g, gl->name), ci64(g, mp_dim(m, gl->type.dims[0], 0)),
                         ci64(g, gl->type.dims[1].n * gl->type.dims[2].n), ci64(g, gl->layer), ci64(g, gl->depth)};
    kv[i] = LLVMConstNamedStruct(kt, f, 5);
  }
  LLVMValueRef karr = LLVMAddGlobal(g->mod, LLVMArrayType2(kt, (uint64_t)g->n_stores), "mor.kv");
  LLVMSetInitializer(karr, LLVMConstArray2(kt, kv, (uint64_t)g->n_stores));
  LLVMSetGlobalConstant(karr, 1);
  LLVMSetLinkage(karr, LLVMPrivateLinkage);
  free(kv);
  /* embedded files */
  char sym[256];
  int64_t wsize = 0, tsize = 0;
  LLVMValueRef wblob = cnull(g), tblob = cnull(g);
  if (g->o->embed_weights) {
    snprintf(sym, sizeof sym, "%s_weights_blob", name);
    wblob = embed_file(g, g->o->embed_weights, sym, &wsize);
  }
  if (g->o->embed_tokenizer) {
    snprintf(sym, sizeof sym, "%s_tokenizer_blob", name);
    tblob = embed_file(g, g->o->embed_tokenizer, sym, &tsize);
  }
  if (g->failed) return -1;
  const mor_attr *routing = mor_get_mattr(m, "routing");
  int64_t rt = 0;
  if (routing && routing->kind == MOR_ATTR_STR)
    rt = !strcmp(routing->s, "expert_choice") ? 1 : !strcmp(routing->s, "token_choice") ? 2 : 0;
  int whole = 0;
  for (int i = 0; i < m->n_funcs; i++) whole |= uses_topk(m->funcs[i]->body);
  int64_t max_pos = mor_mattr_int(m, "max_position_embeddings", 0);
  LLVMValueRef f[22] = {
      ci64(g, MORRT_ABI_VERSION),
      cstr(g, m->name ? m->name : name), cstr(g, triple), cstr(g, cpu),
      ci64(g, mor_mattr_int(m, "vocab_size", 0)), ci64(g, mor_mattr_int(m, "hidden_size", 0)), ci64(g, max_pos),
      ci64(g, g->max_tokens), ci64(g, mor_mattr_int(m, "num_recursions", 1)), ci64(g, rt), ci64(g, whole),
      ci64(g, g->arena_bytes), ci64(g, g->n_wslots), warr, ci64(g, g->n_stores), karr, fwd,
      cstr(g, g->o->weights_file), wblob, ci64(g, wsize), tblob, ci64(g, tsize)};
  LLVMTypeRef ft[22];
  for (int i = 0; i < 22; i++) ft[i] = LLVMTypeOf(f[i]);
  LLVMTypeRef dt = LLVMStructTypeInContext(g->cx, ft, 22, 0);
  snprintf(sym, sizeof sym, "%s_model", name);
  LLVMValueRef desc = LLVMAddGlobal(g->mod, dt, sym);
  LLVMSetInitializer(desc, LLVMConstStructInContext(g->cx, f, 22, 0));
  LLVMSetGlobalConstant(desc, 1);
  if (g->o->main_alias) LLVMAddAlias2(g->mod, dt, 0, desc, "morrt_main_model");
  return 0;
}

/* ---- driver ---------------------------------------------------------------------------- */

int mor_llvm_codegen(lg *g) {
  const mor_module *m = g->m;
  g->i8 = LLVMInt8TypeInContext(g->cx);
  g->i32 = LLVMInt32TypeInContext(g->cx);
  g->i64 = LLVMInt64TypeInContext(g->cx);
  g->f32 = LLVMFloatTypeInContext(g->cx);
  g->f64 = LLVMDoubleTypeInContext(g->cx);
  g->ptr = LLVMPointerTypeInContext(g->cx, 0);
  g->vd = LLVMVoidTypeInContext(g->cx);
  LLVMTypeRef tp[3] = {g->ptr, g->i64, g->i64};
  g->task_t = LLVMFunctionType(g->vd, tp, 3, 0);
  LLVMTypeRef pp[5] = {g->ptr, g->ptr, g->ptr, g->i64, g->i64};
  g->par_t = LLVMFunctionType(g->vd, pp, 5, 0);
  g->b = LLVMCreateBuilderInContext(g->cx);
  if (!g->max_tokens) {
    int ts = mor_find_sym(m, "T");
    g->max_tokens = ts >= 0 ? m->syms[ts].bound : mor_mattr_int(m, "max_position_embeddings", 0);
  }
  int rc = -1;
  int *state = mor_xcalloc((size_t)m->n_funcs + 1, sizeof *state);
  g->fns = mor_xcalloc((size_t)m->n_funcs + 1, sizeof *g->fns);
  g->plans = mor_xcalloc((size_t)m->n_funcs + 1, sizeof *g->plans);
  g->frame_base = mor_xcalloc((size_t)m->n_funcs + 1, sizeof *g->frame_base);
  g->v = mor_xcalloc((size_t)m->next_value_id + 1, sizeof *g->v);
  if (bind_globals(g)) goto out;
  weight_formats(g);
  for (int i = 0; i < m->n_funcs; i++)
    if (visit_func(m, i, state)) {
      gfail(g, "@%s calls itself (directly or not): recursion is not supported", MOR_SYM(m->funcs[i]->name));
      goto out;
    }
  g->arena_bytes = 0;
  for (int i = 0; i < m->n_funcs; i++) {
    g->cur = m->funcs[i];
    if (check_types(g, m->funcs[i]->body) || mp_plan_func(&g->plans[i], m, m->funcs[i], g->max_tokens, g->err)) goto out;
    g->frame_base[i] = g->arena_bytes;
    g->arena_bytes += g->plans[i].frame_bytes;
    char nm[256];
    snprintf(nm, sizeof nm, "mor.fn.%s", m->funcs[i]->name);
    g->fns[i] = LLVMAddFunction(g->mod, nm, func_type(g, m->funcs[i]));
    LLVMSetLinkage(g->fns[i], LLVMInternalLinkage);
  }
  g->cur = NULL;
  if (g->arena_bytes < 64) g->arena_bytes = 64;
  for (int i = 0; i < m->n_funcs; i++)
    if (gen_func(g, i)) goto out;
  rc = 0;
out:
  free(state);
  return rc;
}

/* Exported for mor_llvm_build (target.c): descriptor after the functions. */
int mor_llvm_codegen_desc(lg *g, const char *name, const char *triple, const char *cpu);
int mor_llvm_codegen_desc(lg *g, const char *name, const char *triple, const char *cpu) {
  return emit_desc(g, name, triple, cpu);
}

void mor_llvm_codegen_free(lg *g);
void mor_llvm_codegen_free(lg *g) {
  if (g->b) LLVMDisposeBuilder(g->b);
  for (int i = 0; g->plans && i < g->m->n_funcs; i++) mp_free(&g->plans[i]);
  free(g->plans);
  free(g->fns);
  free(g->frame_base);
  free(g->v);
  free(g->wslot);
  free(g->kvstore);
  free(g->wslot_global);
  free(g->wfmt);
  free(g->store_global);
  free(g->keys);
}

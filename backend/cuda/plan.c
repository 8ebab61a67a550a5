/* plan.c: IR -> the flat launch plan of one forward call. `forward` is
 * flattened into a list of op instances (recur regions unrolled with the
 * depth as a constant, calls inlined), every value instance gets a buffer
 * (in-place results reuse the buffer of an operand that dies there), each
 * instance becomes one or more kernel launches, and the buffers are placed
 * in one arena by best fit over their lifetimes. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_impl.h"

/* ---- kernel families (the parameter lists of kernels.cuh) ------------------ */

#define GEMM_PT                                                                                                 \
  {"const float*", "const int*", "const int*", "const void*", "const void*", "const void*", "const float*",     \
   "double",       "float*",     "const float*", "const int*", "const int*", "const float*", "const float*",   \
   "double",       "const int*", "float*",       "float*",     "int*",       "int*",       "int*",       "double", \
   "mor_i64"}
const cu_family cu_families[CU_F_COUNT] = {
    [CU_F_EMBED] = {"embed", "fam_embed", 4, {"const void*", "const int*", "const int*", "float*"}},
    [CU_F_RMSNORM] = {"rmsnorm", "fam_rmsnorm", 5, {"const float*", "const int*", "const float*", "double", "float*"}},
    [CU_F_GEMM_SIMT] = {"gemm_simt", "fam_gemm_simt", 23, GEMM_PT},
    [CU_F_GEMM_MMA] = {"gemm_mma", "fam_gemm_mma", 23, GEMM_PT},
    [CU_F_GEMV] = {"gemv", "fam_gemv", 23, GEMM_PT, "mor_gemv_prefetch"},
    [CU_F_ROPE] = {"rope", "fam_rope", 5, {"const float*", "const int*", "const int*", "double", "float*"}},
    [CU_F_KV_APPEND] = {"kv_append",
                        "fam_kv_append",
                        10,
                        {"const float*", "const float*", "const int*", "const int*", "float*", "float*", "int*",
                         "int*", "int*", "mor_i64"}},
    [CU_F_ATTENTION] = {"attention",
                        "fam_attention",
                        10,
                        {"const float*", "const int*", "const int*", "const float*", "const float*", "const int*",
                         "const int*", "float*", "float*", "int*"}},
    [CU_F_SILU_MUL] = {"silu_mul", "fam_silu_mul", 5, {"const float*", "const float*", "const int*", "mor_i64", "float*"}},
    [CU_F_ADD] = {"add", "fam_add", 5, {"const void*", "const void*", "const int*", "mor_i64", "void*"}},
    [CU_F_GATHER] = {"gather", "fam_gather", 5, {"const unsigned*", "const int*", "const int*", "mor_i64", "unsigned*"}},
    [CU_F_SCATTER] = {"scatter", "fam_scatter", 5, {"const int*", "const int*", "const unsigned*", "mor_i64", "unsigned*"}},
    [CU_F_GATE_ADD] = {"gate_add",
                       "fam_gate_add",
                       8,
                       {"const float*", "const float*", "const float*", "const int*", "const int*", "mor_i64",
                        "double", "float*"}},
    [CU_F_COUNT_ADD] = {"count_add", "fam_count_add", 3, {"const int*", "const int*", "int*"}},
    [CU_F_FILL] = {"fill", "fam_fill", 3, {"const int*", "double", "void*"}},
    [CU_F_TC_ROUTE] = {"tc_route", "fam_tc_route", 5, {"const float*", "const int*", "double", "int*", "float*"}},
    [CU_F_WHERE] = {"where", "fam_where", 5, {"const int*", "const int*", "mor_i64", "int*", "int*"}},
    [CU_F_SELECT] = {"select",
                     "fam_select",
                     9,
                     {"const float*", "const int*", "const int*", "const int*", "double", "double", "double", "int*",
                      "int*"}},
    [CU_F_ROWDOT] = {"rowdot", "fam_rowdot", 5, {"const float*", "const int*", "const float*", "double", "float*"}},
    [CU_F_ATTENTION_DEC] = {"attention_dec",
                            "fam_attention_dec",
                            10,
                            {"const float*", "const int*", "const int*", "const float*", "const float*", "const int*",
                             "const int*", "float*", "float*", "int*"}},
    [CU_F_ATTENTION_MMA] = {"attention_mma",
                            "fam_attention_mma",
                            10,
                            {"const float*", "const int*", "const int*", "const float*", "const float*", "const int*",
                             "const int*", "float*", "float*", "int*"}},
};

void mor_cuda_opts_default(mor_cuda_opts *o) {
  memset(o, 0, sizeof *o);
  o->arch = "sm_90";
  o->mma = 1;
  o->weights_dtype = -1;
  o->gemv_max_t = 8;
}

const char *mor_cuda_comment_name(const char *s, char *buf, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t k = 0;
  if (n == 0) return buf;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
             *p == '.' || *p == '-';
    size_t need = ok ? 1 : 4;
    if (k + need + 4 >= n) {
      if (k + 3 < n) memcpy(buf + k, "...", 3), k += 3;
      break;
    }
    if (ok) {
      buf[k++] = (char)*p;
    } else {
      buf[k++] = '\\';
      buf[k++] = 'x';
      buf[k++] = hex[*p >> 4];
      buf[k++] = hex[*p & 15];
    }
  }
  buf[k] = 0;
  return buf;
}

/* ---- value instances and op instances ------------------------------------- */

typedef struct vt {
  mor_dtype dt;
  int rank;
  int64_t rowlen, rows; /* elements per row, rows bound */
  int slot;             /* count slot of dim 0; -1 for scalars */
  int st;               /* storage, -1 for scalars or not yet placed */
  int is_const;
  int64_t cval;
  int last_use;
} vt;

typedef struct inst {
  const mor_op *op;
  int nin, nout;
  int *in, *out;
} inst;

typedef struct planner {
  mor_cuda_prog *p;
  const mor_module *m;
  mor_err *err;
  int failed;
  int n_vt, cap_vt;
  vt *v;
  int *env;             /* by mor_value id: vt id */
  int n_inst, cap_inst;
  inst *ins;
  int cur;              /* the inst being emitted */
  int depth_calls;
} planner;

#define GROW(arr, n, cap)                                                                                      \
  do {                                                                                                         \
    if ((n) >= (cap)) {                                                                                        \
      (cap) = (cap) ? 2 * (cap) : 64;                                                                          \
      (arr) = mor_xrealloc((arr), sizeof *(arr) * (size_t)(cap));                                              \
    }                                                                                                          \
  } while (0)

static int op_index(const mor_block *b, const mor_op *target, int *k) {
  for (const mor_op *o = b->first; o; o = o->next) {
    if (o == target) return 1;
    ++*k;
    if (o->region && op_index(o->region, target, k)) return 1;
  }
  return 0;
}

/* where an op is, as the reference interpreter says it */
static void op_where(planner *P, const mor_op *op, char *buf, size_t n) {
  if (op->line > 0) {
    char f[256];
    snprintf(buf, n, "%s:%d:%d: '%s'", mor_esc(P->m->src_file ? P->m->src_file : "<input>", f, sizeof f), op->line,
             op->col, mor_ops[op->code].name);
    return;
  }
  for (int i = 0; i < P->m->n_funcs; i++) {
    int k = 1;
    if (op_index(P->m->funcs[i]->body, op, &k)) {
      char f[128];
      snprintf(buf, n, "@%s: op #%d ('%s')", mor_esc(P->m->funcs[i]->name, f, sizeof f), k, mor_ops[op->code].name);
      return;
    }
  }
  snprintf(buf, n, "'%s'", mor_ops[op->code].name);
}

__attribute__((format(printf, 3, 4))) static int pfail(planner *P, const mor_op *op, const char *fmt, ...) {
  if (P->failed) return -1;
  P->failed = 1;
  char msg[1024], where[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (op) {
    op_where(P, op, where, sizeof where);
    mor_errf(P->err, "cuda: %s: %s", where, msg);
  } else {
    mor_errf(P->err, "cuda: %s", msg);
  }
  return -1;
}

static int64_t cap_rows(planner *P, mor_dim d) {
  int64_t n = d.n;
  if (d.sym >= 0 && n > P->p->max_tokens) n = P->p->max_tokens;
  return n < 0 ? 0 : n;
}

static int new_vt(planner *P, const mor_type *t, int slot) {
  GROW(P->v, P->n_vt, P->cap_vt);
  vt *x = &P->v[P->n_vt];
  memset(x, 0, sizeof *x);
  x->dt = t->dtype;
  x->rank = t->rank;
  x->st = -1;
  x->slot = t->rank ? slot : -1;
  x->rowlen = 1;
  for (int i = 1; i < t->rank; i++) x->rowlen *= t->dims[i].n;
  x->rows = t->rank ? cap_rows(P, t->dims[0]) : 1;
  x->last_use = -1;
  return P->n_vt++;
}

static int const_vt(planner *P, int64_t v) {
  mor_type t = mor_type_make(MOR_I64, 0, NULL);
  int id = new_vt(P, &t, -1);
  P->v[id].is_const = 1;
  P->v[id].cval = v;
  return id;
}

static int new_slot(planner *P) { return P->p->n_cnt++; }

/* the count slot of result i of op, given its operand instances */
static int result_slot(planner *P, const mor_op *op, const int *in, int i) {
  switch (op->code) {
  case MOR_OP_SELECT:
  case MOR_OP_WHERE: return new_slot(P);
  case MOR_OP_GATHER: return P->v[in[1]].slot;
  case MOR_OP_MATMUL_STORE: return P->v[in[2]].slot;
  case MOR_OP_QKV:
    if (op->n_operands > 2 && op->operands[2]->type.dtype == MOR_I32) return P->v[in[2]].slot;
    return P->v[in[0]].slot;
  default: break;
  }
  (void)i;
  for (int k = 0; k < op->n_operands; k++)
    if (P->v[in[k]].slot >= 0) return P->v[in[k]].slot;
  return new_slot(P);
}

static int flatten(planner *P, const mor_block *b, int **term, int *nterm);

static int flatten_op(planner *P, const mor_op *op) {
  int *in = mor_xcalloc((size_t)op->n_operands + 1, sizeof(int));
  for (int i = 0; i < op->n_operands; i++) {
    in[i] = P->env[op->operands[i]->id];
    if (in[i] < 0) {
      free(in);
      return pfail(P, op, "operand %d is used before it is defined", i);
    }
  }
  switch (op->code) {
  case MOR_OP_RECUR: {
    int n = (int)mor_op_int(op, "n", -1);
    if (n < 0 || !op->region || op->region->n_args != op->n_operands + 1) {
      free(in);
      return pfail(P, op, "malformed recur");
    }
    int nc = op->n_operands;
    int *carried = mor_xcalloc((size_t)nc + 1, sizeof(int));
    memcpy(carried, in, sizeof(int) * (size_t)nc);
    for (int d = 0; d < n && !P->failed; d++) {
      P->env[op->region->args[0]->id] = const_vt(P, d);
      for (int i = 0; i < nc; i++) P->env[op->region->args[i + 1]->id] = carried[i];
      int *y = NULL, ny = 0;
      if (flatten(P, op->region, &y, &ny) == 0) {
        if (ny != nc) pfail(P, op, "the region yields %d values for %d carried", ny, nc);
        else memcpy(carried, y, sizeof(int) * (size_t)nc);
      }
      free(y);
    }
    for (int i = 0; i < op->n_results && i < nc; i++) P->env[op->results[i]->id] = carried[i];
    free(carried);
    free(in);
    return P->failed ? -1 : 0;
  }
  case MOR_OP_CALL: {
    const char *callee = mor_op_str(op, "callee");
    const mor_func *f = callee ? mor_find_func(P->m, callee) : NULL;
    if (!f || f->body->n_args != op->n_operands) {
      free(in);
      return pfail(P, op, "bad call");
    }
    if (++P->depth_calls > 64) {
      free(in);
      return pfail(P, op, "calls nest too deeply");
    }
    for (int i = 0; i < op->n_operands; i++) P->env[f->body->args[i]->id] = in[i];
    int *y = NULL, ny = 0;
    if (flatten(P, f->body, &y, &ny) == 0) {
      if (ny != op->n_results) pfail(P, op, "@%s returns %d values, the call has %d results", MOR_SYM(f->name), ny, op->n_results);
      for (int i = 0; i < op->n_results && i < ny; i++) P->env[op->results[i]->id] = y[i];
    }
    P->depth_calls--;
    free(y);
    free(in);
    return P->failed ? -1 : 0;
  }
  case MOR_OP_CONST:
    P->env[op->results[0]->id] = const_vt(P, mor_op_int(op, "value", 0));
    free(in);
    return 0;
  case MOR_OP_ADD:
    if (op->results[0]->type.rank == 0) {
      if (!P->v[in[0]].is_const || !P->v[in[1]].is_const) {
        free(in);
        return pfail(P, op, "scalar additions must have constant operands on the CUDA backend");
      }
      P->env[op->results[0]->id] = const_vt(P, P->v[in[0]].cval + P->v[in[1]].cval);
      free(in);
      return 0;
    }
    break;
  default: break;
  }
  GROW(P->ins, P->n_inst, P->cap_inst);
  inst *I = &P->ins[P->n_inst++];
  I->op = op;
  I->nin = op->n_operands;
  I->in = in;
  I->nout = op->n_results;
  I->out = mor_xcalloc((size_t)op->n_results + 1, sizeof(int));
  for (int i = 0; i < op->n_results; i++) {
    int slot = op->results[i]->type.rank ? result_slot(P, op, in, i) : -1;
    I->out[i] = new_vt(P, &op->results[i]->type, slot);
    P->env[op->results[i]->id] = I->out[i];
  }
  return 0;
}

/* Flatten a block; its terminator's operand instances go to *term. */
static int flatten(planner *P, const mor_block *b, int **term, int *nterm) {
  for (const mor_op *op = b->first; op && !P->failed; op = op->next) {
    if (op->code == MOR_OP_YIELD || op->code == MOR_OP_RETURN) {
      *nterm = op->n_operands;
      *term = mor_xcalloc((size_t)op->n_operands + 1, sizeof(int));
      for (int i = 0; i < op->n_operands; i++) (*term)[i] = P->env[op->operands[i]->id];
      return 0;
    }
    if (flatten_op(P, op)) return -1;
  }
  return P->failed ? -1 : pfail(P, NULL, "a block has no terminator");
}

/* ---- weights and KV stores --------------------------------------------------- */

static int global_index(const mor_module *m, const char *name) {
  for (int i = 0; i < m->n_globals; i++)
    if (!strcmp(m->globals[i].name, name)) return i;
  return -1;
}

/* classes of weight use: 1 GEMM or embedding operand (may be bf16), 2 f32 only */
static void note_use(planner *P, int *cls, const mor_op *op, const char *attr, int c) {
  const mor_attr *a = mor_op_attr(op, attr);
  if (!a) return;
  int n = a->kind == MOR_ATTR_SYMS ? a->n : a->kind == MOR_ATTR_SYM ? 1 : 0;
  for (int i = 0; i < n; i++) {
    const char *s = a->kind == MOR_ATTR_SYMS ? a->syms[i] : a->s;
    int g = global_index(P->m, s);
    if (g >= 0 && cls[g] < c) cls[g] = c;
  }
}

static void scan_uses(planner *P, const mor_block *b, int *cls) {
  for (const mor_op *op = b->first; op; op = op->next) {
    if (op->region) scan_uses(P, op->region, cls);
    switch (op->code) {
    case MOR_OP_EMBED:
    case MOR_OP_MATMUL:
    case MOR_OP_NORM_MATMUL:
    case MOR_OP_MATMUL_ADD:
    case MOR_OP_MATMUL_STORE: note_use(P, cls, op, "weight", 1); break;
    case MOR_OP_QKV:
    case MOR_OP_GATE_UP: {
      static const char *ws[] = {"wq", "wk", "wv", "wg", "wu"};
      int any2 = 0;
      for (int i = 0; i < 5; i++) {
        const mor_attr *a = mor_op_attr(op, ws[i]);
        int g = a && a->kind == MOR_ATTR_SYM ? global_index(P->m, a->s) : -1;
        if (g >= 0 && cls[g] == 2) any2 = 1;
      }
      for (int i = 0; i < 5; i++) note_use(P, cls, op, ws[i], any2 ? 2 : 1);
      break;
    }
    default: break;
    }
    note_use(P, cls, op, "norm", 2);
    note_use(P, cls, op, "weights", 2);
    note_use(P, cls, op, "weights2", 2);
    if (op->code == MOR_OP_RMSNORM) note_use(P, cls, op, "weight", 2);
  }
}

static int plan_globals(planner *P) {
  mor_cuda_prog *p = P->p;
  const mor_module *m = P->m;
  int *cls = mor_xcalloc((size_t)m->n_globals + 1, sizeof(int));
  /* a GEMM over several weights needs one format: a weight that must be
   * f32 elsewhere pulls its partners to f32; iterate to a fixed point */
  for (int round = 0; round < 4; round++)
    for (int f = 0; f < m->n_funcs; f++) scan_uses(P, m->funcs[f]->body, cls);
  p->w_of_global = mor_xcalloc((size_t)m->n_globals + 1, sizeof(int));
  p->kv_of_global = mor_xcalloc((size_t)m->n_globals + 1, sizeof(int));
  p->w = mor_xcalloc((size_t)m->n_globals + 1, sizeof *p->w);
  p->kv = mor_xcalloc((size_t)m->n_globals + 1, sizeof *p->kv);
  uint64_t off = 0;
  for (int i = 0; i < m->n_globals; i++) {
    const mor_global *g = &m->globals[i];
    p->w_of_global[i] = -1;
    p->kv_of_global[i] = -1;
    if (g->kind != MOR_GLOBAL_WEIGHT || !cls[i]) continue;
    cu_weight *w = &p->w[p->n_w];
    w->g = g;
    mor_dtype dev = MOR_F32;
    if (cls[i] == 1) {
      if (p->o.weights_dtype == MOR_BF16) dev = MOR_BF16;
      else if (p->o.weights_dtype < 0 && g->type.dtype == MOR_BF16) dev = MOR_BF16;
    }
    w->dev = dev;
    if (dev == MOR_BF16 && p->o.mma) p->mma_attention = 1;
    int64_t n = mor_type_max_numel(&g->type);
    w->bytes = (uint64_t)n * (dev == MOR_BF16 ? 2 : 4);
    w->off = off;
    off += (w->bytes + 255) & ~(uint64_t)255;
    p->w_of_global[i] = p->n_w++;
  }
  p->weights_bytes = off;
  /* KV stores: one per cache global that is not an alias */
  for (int i = 0; i < m->n_globals; i++) {
    const mor_global *g = &m->globals[i];
    if (g->kind != MOR_GLOBAL_KV || g->alias) continue;
    if (g->type.rank != 3 || g->type.dtype != MOR_F32) {
      free(cls);
      return pfail(P, NULL, "KV global @%s: expected f32[capacity, kv_heads, head_dim]", MOR_SYM(g->name));
    }
    cu_store *s = &p->kv[p->n_st_kv];
    s->g = g;
    s->capacity = g->type.dims[0].n;
    s->width = g->type.dims[1].n * g->type.dims[2].n;
    p->kv_of_global[i] = p->n_st_kv++;
  }
  for (int i = 0; i < m->n_globals; i++) {
    const mor_global *g = &m->globals[i];
    if (g->kind != MOR_GLOBAL_KV || !g->alias) continue;
    const char *target = g->alias;
    int t = -1;
    for (int hop = 0; hop < 16 && target; hop++) {
      t = global_index(m, target);
      if (t < 0 || m->globals[t].kind != MOR_GLOBAL_KV) break;
      if (!m->globals[t].alias) break;
      target = m->globals[t].alias;
    }
    if (t < 0 || p->kv_of_global[t] < 0) {
      free(cls);
      return pfail(P, NULL, "KV global @%s aliases @%s, which is not a KV cache", MOR_SYM(g->name), MOR_SYM(g->alias));
    }
    p->kv_of_global[i] = p->kv_of_global[t];
  }
  free(cls);
  return 0;
}

/* ---- emission helpers -------------------------------------------------------- */

static int label_of(planner *P, const mor_op *op, int64_t depth) {
  mor_cuda_prog *p = P->p;
  char w[160] = "", shown[200];
  const char *attrs[] = {"weight", "wq", "wg", "weights", "caches", "norm"};
  for (int i = 0; i < 6 && !w[0]; i++) {
    const mor_attr *a = mor_op_attr(op, attrs[i]);
    if (!a) continue;
    const char *s = a->kind == MOR_ATTR_SYM ? a->s : a->kind == MOR_ATTR_SYMS && a->n ? a->syms[depth >= 0 && depth < a->n ? depth : 0] : NULL;
    if (s) snprintf(w, sizeof w, "%s", s);
  }
  mor_buf b = {0};
  mor_buf_printf(&b, "%s", mor_ops[op->code].name);
  if (w[0]) mor_buf_printf(&b, " @%s", mor_cuda_comment_name(w, shown, sizeof shown));
  if (depth >= 0) mor_buf_printf(&b, " (depth %lld)", (long long)depth);
  mor_buf_putc(&b, 0);
  for (int i = 0; i < p->n_labels; i++)
    if (!strcmp(p->labels[i], b.data)) {
      mor_buf_free(&b);
      return i;
    }
  GROW(p->labels, p->n_labels, p->cap_labels);
  p->labels[p->n_labels] = b.data;
  return p->n_labels++;
}

static int kernel_of(planner *P, int family, const char *targs, int threads) {
  mor_cuda_prog *p = P->p;
  for (int i = 0; i < p->n_k; i++)
    if (p->k[i].family == family && p->k[i].threads == threads && !strcmp(p->k[i].targs, targs)) return i;
  GROW(p->k, p->n_k, p->cap_k);
  cu_kernel *k = &p->k[p->n_k];
  memset(k, 0, sizeof *k);
  k->family = family;
  k->targs = mor_xstrdup(targs);
  k->threads = threads;
  k->name = mor_xasprintf("mor_k%d_%s", p->n_k, cu_families[family].name);
  return p->n_k++;
}

static int new_storage(planner *P, int64_t bytes) {
  mor_cuda_prog *p = P->p;
  GROW(p->sto, p->n_sto, p->cap_sto);
  cu_storage *s = &p->sto[p->n_sto];
  memset(s, 0, sizeof *s);
  s->bytes = (bytes + 255) & ~(int64_t)255;
  if (s->bytes == 0) s->bytes = 256;
  s->first = s->last = P->cur;
  return p->n_sto++;
}

static int64_t vt_bytes(const vt *x) { return x->rows * x->rowlen * mor_dtype_size(x->dt); }

/* give vt a fresh buffer */
static void place(planner *P, int id) {
  vt *x = &P->v[id];
  if (x->rank == 0 || x->st >= 0) return;
  x->st = new_storage(P, vt_bytes(x));
  cu_storage *s = &P->p->sto[x->st];
  if (x->last_use > s->last) s->last = x->last_use;
}

/* a scratch buffer that lives during the current inst only */
static int scratch(planner *P, int64_t bytes) { return new_storage(P, bytes); }

/* A launch with up to MORCU_VARIANTS kernels by call size: variant i runs
 * calls of T <= max_t (the last one INT32_MAX). Grid dims are c + ceil(T/d). */
typedef struct lvar {
  int kernel, gx_c, gx_d, gy_c, gy_d, max_t;
  int gz_c; /* 0: 1 */
} lvar;
typedef struct launch {
  int n;
  lvar v[MORCU_VARIANTS];
} launch;

static void add_var(launch *L, int kernel, int gx_c, int gx_d, int gy_c, int gy_d, int max_t) {
  if (L->n < MORCU_VARIANTS) L->v[L->n++] = (lvar){kernel, gx_c, gx_d, gy_c, gy_d, max_t, 0};
}

/* 1 when the variants so far already run every call (then no more are needed) */
static int covered(const planner *P, const launch *L) {
  return L->n > 0 && L->v[L->n - 1].max_t >= P->p->max_tokens;
}

/* one step with its parameters (CU_P_ST entries name storages) */
static void step(planner *P, const launch *L, int label, int n, const cu_param *ps) {
  mor_cuda_prog *p = P->p;
  GROW(p->steps, p->n_steps, p->cap_steps);
  cu_step *s = &p->steps[p->n_steps++];
  memset(s, 0, sizeof *s);
  for (int v = 0; v < MORCU_VARIANTS; v++) {
    morcu_launch *l = &s->var[v];
    if (v >= L->n) {
      l->kernel = -1;
      continue;
    }
    const lvar *x = &L->v[v];
    l->kernel = x->kernel;
    l->grid_c[0] = x->gx_c, l->grid_d[0] = x->gx_d;
    l->grid_c[1] = x->gy_c ? x->gy_c : (x->gy_d ? 0 : 1), l->grid_d[1] = x->gy_d;
    l->grid_c[2] = x->gz_c ? x->gz_c : 1;
    l->block[0] = p->k[x->kernel].threads, l->block[1] = l->block[2] = 1;
    s->max_t[v] = x->max_t;
  }
  s->label = label;
  s->first_param = p->n_params;
  s->n_params = n;
  for (int i = 0; i < n; i++) {
    GROW(p->params, p->n_params, p->cap_params);
    p->params[p->n_params++] = ps[i];
    if (ps[i].kind == CU_P_ST) {
      cu_storage *st = &p->sto[ps[i].st];
      if (P->cur > st->last) st->last = P->cur;
    }
  }
}

static cu_param pv(planner *P, int id) {
  vt *x = &P->v[id];
  if (x->st < 0) place(P, id);
  cu_param q = {CU_P_ST, x->st, 0};
  return q;
}
static cu_param pst(int st) { return (cu_param){CU_P_ST, st, 0}; }
static cu_param pcnt(int slot) { return (cu_param){MORCU_P_CNT, 0, (uint64_t)slot}; }
static cu_param pnull(void) { return (cu_param){MORCU_P_NULL, 0, 0}; }
static cu_param pint(int64_t v) { return (cu_param){MORCU_P_I64, 0, (uint64_t)v}; }
static cu_param pf64(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return (cu_param){MORCU_P_F64, 0, u};
}
static cu_param pkv(int kind, int store) { return (cu_param){kind, 0, (uint64_t)store}; }

static const mor_global *weight_global(planner *P, const mor_op *op, const char *attr, int64_t idx, int *wi) {
  const mor_attr *a = mor_op_attr(op, attr);
  const char *s = NULL;
  if (a && a->kind == MOR_ATTR_SYM && idx == 0) s = a->s;
  else if (a && a->kind == MOR_ATTR_SYMS && idx >= 0 && idx < a->n) s = a->syms[idx];
  if (!s) {
    pfail(P, op, "no weight '%s' for depth %lld", attr, (long long)idx);
    return NULL;
  }
  int g = global_index(P->m, s);
  if (g < 0 || P->m->globals[g].kind != MOR_GLOBAL_WEIGHT || P->p->w_of_global[g] < 0) {
    char shown[160];
    pfail(P, op, "@%s is not a weight global", mor_esc(s, shown, sizeof shown));
    return NULL;
  }
  *wi = P->p->w_of_global[g];
  return &P->m->globals[g];
}

static cu_param pw(planner *P, int wi) { return (cu_param){MORCU_P_WEIGHT, 0, P->p->w[wi].off}; }

/* KV store for entry idx of the caches attribute; -2 for @none, -1 error */
static int kv_store(planner *P, const mor_op *op, int64_t idx) {
  const mor_attr *a = mor_op_attr(op, "caches");
  const char *s = NULL;
  if (a && a->kind == MOR_ATTR_SYM && idx == 0) s = a->s;
  else if (a && a->kind == MOR_ATTR_SYMS && idx >= 0 && idx < a->n) s = a->syms[idx];
  if (!s) return pfail(P, op, "no cache for depth %lld", (long long)idx);
  if (!strcmp(s, "none")) return -2;
  int g = global_index(P->m, s);
  if (g < 0 || P->p->kv_of_global[g] < 0) {
    char shown[160];
    return pfail(P, op, "@%s is not a KV cache", mor_esc(s, shown, sizeof shown));
  }
  return P->p->kv_of_global[g];
}

/* value of the optional depth operand (i64 scalar, constant once unrolled) */
static int64_t depth_of(planner *P, const inst *I, int at) {
  if (at < 0 || at >= I->nin) return 0;
  vt *x = &P->v[I->in[at]];
  if (x->rank != 0 || x->dt != MOR_I64) return 0;
  if (!x->is_const) return pfail(P, I->op, "the depth is not a constant (recur depths and const ops are)");
  return x->cval;
}

static double fattr(const mor_op *op, const char *name, double dflt) { return mor_op_float(op, name, dflt); }

/* entry idx of a float or float-list attribute */
static int float_entry(planner *P, const mor_op *op, const char *name, int64_t idx, double *out) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return pfail(P, op, "missing attribute '%s'", name);
  if (a->kind == MOR_ATTR_FLOATS || a->kind == MOR_ATTR_INTS) {
    if (idx < 0 || idx >= a->n) return pfail(P, op, "attribute '%s' has no entry for depth %lld", name, (long long)idx);
    *out = a->kind == MOR_ATTR_FLOATS ? a->floats[idx] : (double)a->ints[idx];
    return 0;
  }
  if (idx != 0) return pfail(P, op, "attribute '%s' is not a list, but the depth is %lld", name, (long long)idx);
  *out = mor_op_float(op, name, 0);
  return 0;
}

/* grid helpers: one variant for every call size */
static launch rows_launch(int kernel, int64_t cols_chunks) { /* a block per row (x) and column chunk (y) */
  launch L = {0};
  add_var(&L, kernel, 0, 1, (int)(cols_chunks < 1 ? 1 : cols_chunks), 0, INT32_MAX);
  return L;
}
static launch flat_launch(int kernel, int per) { /* ceil(T / per) blocks */
  launch L = {0};
  add_var(&L, kernel, 0, per, 1, 0, INT32_MAX);
  return L;
}
static launch one_block(int kernel) {
  launch L = {0};
  add_var(&L, kernel, 1, 0, 1, 0, INT32_MAX);
  return L;
}

/* ---- GEMMs -------------------------------------------------------------------- */

typedef struct gemm_desc {
  int x, rows_slot;        /* x vt, its row count (after the indexed load) */
  cu_param xidx;           /* rows of x (or null) */
  int nseg, wi[3];         /* weights */
  int64_t n[3], K;
  int paired;
  int norm_wi;             /* -1: no rmsnorm prologue */
  double eps;
  int epi;
  cu_param y, r, ridx, oidx, base, s;
  double alpha;
  /* epi 6 (QKV with RoPE and the KV append) */
  int rope;                /* head_dim */
  cu_param pos;
  int store;               /* KV store, -1: none */
  double theta;
} gemm_desc;

static void gemm(planner *P, const gemm_desc *G, int label) {
  mor_cuda_prog *p = P->p;
  int wt = p->w[G->wi[0]].dev == MOR_BF16;
  for (int i = 1; i < G->nseg; i++)
    if ((p->w[G->wi[i]].dev == MOR_BF16) != wt) {
      pfail(P, NULL, "weights of one GEMM differ in device format");
      return;
    }
  int64_t n0 = G->n[0], n1 = G->nseg > 1 && !G->paired ? G->n[1] : (G->paired ? G->n[0] : 0),
          n2 = G->nseg > 2 ? G->n[2] : 0;
  int64_t nt = G->paired ? 2 * n0 : n0 + n1 + n2;
  int pro = G->norm_wi >= 0, rope = G->epi == 6 ? G->rope : 0;
  char t[160];
  launch L = {0};
  if (p->o.gemv_max_t > 0) {
    snprintf(t, sizeof t, "%d,%lld,%lld,%lld,%lld,%d,%d,%d,%d,%d", wt, (long long)G->K, (long long)n0, (long long)n1,
             (long long)n2, G->paired, pro, G->epi, rope, p->o.gemv_max_t);
    add_var(&L, kernel_of(P, CU_F_GEMV, t, 256), (int)((nt + 15) / 16), 0, 1, 0, p->o.gemv_max_t);
  }
  if (wt && p->o.mma) {
    /* 64x64 tiles (4 warps) for medium calls, 128x128 (8 warps) for large ones */
    snprintf(t, sizeof t, "64,64,2,2,%lld,%lld,%lld,%lld,%d,%d,%d,%d", (long long)G->K, (long long)n0,
             (long long)n1, (long long)n2, G->paired, pro, G->epi, rope);
    add_var(&L, kernel_of(P, CU_F_GEMM_MMA, t, 128), (int)((nt + 63) / 64), 0, 0, 64, 256);
    if (!covered(P, &L)) {
      snprintf(t, sizeof t, "128,128,2,4,%lld,%lld,%lld,%lld,%d,%d,%d,%d", (long long)G->K, (long long)n0,
               (long long)n1, (long long)n2, G->paired, pro, G->epi, rope);
      add_var(&L, kernel_of(P, CU_F_GEMM_MMA, t, 256), (int)((nt + 127) / 128), 0, 0, 128, INT32_MAX);
    }
  } else {
    snprintf(t, sizeof t, "%d,%lld,%lld,%lld,%lld,%d,%d,%d,%d", wt, (long long)G->K, (long long)n0, (long long)n1,
             (long long)n2, G->paired, pro, G->epi, rope);
    add_var(&L, kernel_of(P, CU_F_GEMM_SIMT, t, 256), (int)((nt + 63) / 64), 0, 0, 64, INT32_MAX);
  }
  cu_param ps[23] = {pv(P, G->x),
                     pcnt(G->rows_slot),
                     G->xidx,
                     pw(P, G->wi[0]),
                     G->nseg > 1 ? pw(P, G->wi[1]) : pnull(),
                     G->nseg > 2 ? pw(P, G->wi[2]) : pnull(),
                     pro ? pw(P, G->norm_wi) : pnull(),
                     pf64(G->eps),
                     G->y,
                     G->r,
                     G->ridx,
                     G->oidx,
                     G->base,
                     G->s,
                     pf64(G->alpha),
                     G->epi == 6 ? G->pos : pnull(),
                     G->store >= 0 ? pkv(MORCU_P_KVK, G->store) : pnull(),
                     G->store >= 0 ? pkv(MORCU_P_KVV, G->store) : pnull(),
                     G->store >= 0 ? pkv(MORCU_P_KVPOS, G->store) : pnull(),
                     G->store >= 0 ? pkv(MORCU_P_KVN, G->store) : pnull(),
                     G->store >= 0 ? (cu_param){MORCU_P_TICKET, 0, 0} : pnull(),
                     pf64(G->theta),
                     pint(G->store >= 0 ? p->kv[G->store].capacity : 0)};
  step(P, &L, label, 23, ps);
}

static gemm_desc gemm_init(void) {
  gemm_desc G;
  memset(&G, 0, sizeof G);
  G.norm_wi = -1;
  G.store = -1;
  G.xidx = G.r = G.ridx = G.oidx = G.base = G.s = G.pos = pnull();
  return G;
}

/* weight attr -> (wi, N, K) with K checked */
static int gemm_weight(planner *P, const mor_op *op, const char *attr, int64_t K, int *wi, int64_t *N) {
  const mor_global *g = weight_global(P, op, attr, 0, wi);
  if (!g) return -1;
  if (g->type.rank != 2 || g->type.dims[1].n != K)
    return pfail(P, op, "weight '%s' is not [N, %lld]", attr, (long long)K);
  *N = g->type.dims[0].n;
  return 0;
}

/* ---- in-place results ------------------------------------------------------------ */

/* The buffer for the result of an op that updates rows of `dst` (operand
 * dpos): dst's own buffer when dst dies here and is not read otherwise by the
 * op in a way that conflicts (only `allow` may be the same value), else a
 * fresh buffer with dst copied into it first. */
static int inplace_result(planner *P, inst *I, int dpos, int allow, int label) {
  int d = I->in[dpos], res = I->out[0];
  vt *dv = &P->v[d];
  if (dv->st < 0) place(P, d);
  cu_storage *ds = &P->p->sto[dv->st];
  int ok = !ds->io && ds->last <= P->cur && dv->last_use <= P->cur;
  for (int i = 0; i < I->nin && ok; i++)
    if (i != dpos && i != allow && I->in[i] == d) ok = 0;
  if (ok) {
    P->v[res].st = dv->st;
    if (P->v[res].last_use > ds->last) ds->last = P->v[res].last_use;
    return res;
  }
  place(P, res);
  int64_t words = P->v[d].rowlen * mor_dtype_size(P->v[d].dt) / 4;
  int k = kernel_of(P, CU_F_GATHER, "", 256);
  launch L = rows_launch(k, (words + 1023) / 1024);
  cu_param ps[5] = {pv(P, d), pnull(), pcnt(P->v[d].slot), pint(words), pv(P, res)};
  step(P, &L, label, 5, ps);
  return res;
}

/* ---- one op instance ----------------------------------------------------------- */

static int rope_check(planner *P, const mor_op *op, int64_t H, int64_t hd) {
  if (H <= 0 || hd <= 0 || hd % 2 || hd > 512) return pfail(P, op, "heads %lld and head_dim %lld are not supported", (long long)H, (long long)hd);
  return 0;
}

static int emit_inst(planner *P, inst *I) {
  const mor_op *op = I->op;
  mor_cuda_prog *p = P->p;
  char t[160];
  int *in = I->in;
  vt *x0 = I->nin ? &P->v[in[0]] : NULL;
  int res = I->nout ? I->out[0] : -1;
  int64_t depth = -1;
  switch (op->code) {
  case MOR_OP_KV_WRITE: depth = depth_of(P, I, 3); break;
  case MOR_OP_ATTENTION: depth = depth_of(P, I, 2); break;
  case MOR_OP_ROUTER: depth = depth_of(P, I, 1); break;
  case MOR_OP_SELECT: depth = depth_of(P, I, 2); break;
  case MOR_OP_WHERE: depth = depth_of(P, I, 1); break;
  case MOR_OP_QKV:
    depth = I->nin > 2 && P->v[in[I->nin - 1]].dt == MOR_I64 ? depth_of(P, I, I->nin - 1) : 0;
    break;
  default: break;
  }
  if (P->failed) return -1;
  int has_depth = (op->code == MOR_OP_KV_WRITE && I->nin > 3) || (op->code == MOR_OP_ATTENTION && I->nin > 2) ||
                  (op->code == MOR_OP_ROUTER && I->nin > 1) || (op->code == MOR_OP_SELECT && I->nin > 2) ||
                  op->code == MOR_OP_WHERE ||
                  (op->code == MOR_OP_QKV && I->nin > 2 && P->v[in[I->nin - 1]].dt == MOR_I64);
  int label = label_of(P, op, has_depth ? depth : mor_op_int(op, "depth", -1));
  switch (op->code) {
  case MOR_OP_EMBED: {
    int wi;
    const mor_global *g = weight_global(P, op, "weight", 0, &wi);
    if (!g) return -1;
    int64_t D = g->type.dims[1].n;
    snprintf(t, sizeof t, "%d,%lld", p->w[wi].dev == MOR_BF16, (long long)D);
    launch L = rows_launch(kernel_of(P, CU_F_EMBED, t, 256), 1);
    cu_param ps[4] = {pw(P, wi), pv(P, in[0]), pcnt(x0->slot), pv(P, res)};
    step(P, &L, label, 4, ps);
    return 0;
  }
  case MOR_OP_RMSNORM: {
    int wi;
    if (!weight_global(P, op, "weight", 0, &wi)) return -1;
    snprintf(t, sizeof t, "%lld", (long long)x0->rowlen);
    launch L = rows_launch(kernel_of(P, CU_F_RMSNORM, t, 256), 1);
    cu_param ps[5] = {pv(P, in[0]), pcnt(x0->slot), pw(P, wi), pf64(fattr(op, "eps", 1e-6)), pv(P, res)};
    step(P, &L, label, 5, ps);
    return 0;
  }
  case MOR_OP_MATMUL:
  case MOR_OP_NORM_MATMUL: {
    gemm_desc G = gemm_init();
    G.x = in[0];
    G.rows_slot = x0->slot;
    G.K = x0->rowlen;
    G.nseg = 1;
    if (gemm_weight(P, op, "weight", G.K, &G.wi[0], &G.n[0])) return -1;
    if (op->code == MOR_OP_NORM_MATMUL) {
      if (!weight_global(P, op, "norm", 0, &G.norm_wi)) return -1;
      G.eps = fattr(op, "eps", 1e-6);
    }
    G.epi = 0;
    G.y = pv(P, res);
    gemm(P, &G, label);
    return 0;
  }
  case MOR_OP_GATE_UP: {
    gemm_desc G = gemm_init();
    G.x = in[0];
    G.rows_slot = x0->slot;
    G.K = x0->rowlen;
    G.nseg = 2;
    G.paired = 1;
    int64_t nu = 0;
    if (gemm_weight(P, op, "wg", G.K, &G.wi[0], &G.n[0]) || gemm_weight(P, op, "wu", G.K, &G.wi[1], &nu)) return -1;
    if (nu != G.n[0]) return pfail(P, op, "gate and up weights differ in rows");
    G.n[1] = nu;
    if (!weight_global(P, op, "norm", 0, &G.norm_wi)) return -1;
    G.eps = fattr(op, "eps", 1e-6);
    G.epi = 1;
    G.y = pv(P, res);
    gemm(P, &G, label);
    return 0;
  }
  case MOR_OP_MATMUL_ADD: {
    gemm_desc G = gemm_init();
    G.x = in[0];
    G.rows_slot = x0->slot;
    G.K = x0->rowlen;
    G.nseg = 1;
    if (gemm_weight(P, op, "weight", G.K, &G.wi[0], &G.n[0])) return -1;
    G.epi = 2;
    G.r = pv(P, in[1]);
    if (I->nin > 2) G.ridx = pv(P, in[2]);
    G.y = pv(P, res);
    gemm(P, &G, label);
    return 0;
  }
  case MOR_OP_MATMUL_STORE: {
    const char *mode = mor_op_str(op, "mode");
    int gate = mode && !strcmp(mode, "gate");
    if (!mode || (!gate && strcmp(mode, "set"))) return pfail(P, op, "unknown mode");
    int out = inplace_result(P, I, 2, gate ? 4 : -1, label);
    gemm_desc G = gemm_init();
    G.x = in[0];
    G.rows_slot = x0->slot;
    G.K = x0->rowlen;
    G.nseg = 1;
    if (gemm_weight(P, op, "weight", G.K, &G.wi[0], &G.n[0])) return -1;
    G.r = pv(P, in[1]);
    G.oidx = pv(P, in[3]);
    G.y = pv(P, out);
    if (gate) {
      const char *gating = mor_op_str(op, "gating");
      int weighted = !gating || strcmp(gating, "none") != 0;
      G.epi = weighted ? 4 : 5;
      G.base = pv(P, in[4]);
      G.s = pv(P, in[5]);
      G.alpha = fattr(op, "alpha", 1.0);
    } else {
      G.epi = 3;
    }
    gemm(P, &G, label);
    return 0;
  }
  case MOR_OP_QKV: {
    int has_idx = I->nin > 2 && P->v[in[2]].dt == MOR_I32;
    int64_t H = mor_op_int(op, "heads", 0), hd = mor_op_int(op, "head_dim", 0), KVH = mor_op_int(op, "kv_heads", 1);
    if (rope_check(P, op, H, hd)) return -1;
    int store = -2;
    if (mor_op_attr(op, "caches")) {
      store = kv_store(P, op, depth);
      if (store == -1) return -1;
    }
    int has_kv = store >= 0;
    if (has_kv && (KVH <= 0 || H % KVH || p->kv[store].width != KVH * hd))
      return pfail(P, op, "kv_heads %lld * head_dim %lld does not fit the cache", (long long)KVH, (long long)hd);
    gemm_desc G = gemm_init();
    G.x = in[0];
    G.rows_slot = P->v[res].slot;
    G.K = x0->rowlen;
    if (has_idx) G.xidx = pv(P, in[2]);
    G.nseg = has_kv ? 3 : 1;
    if (gemm_weight(P, op, "wq", G.K, &G.wi[0], &G.n[0])) return -1;
    if (has_kv && (gemm_weight(P, op, "wk", G.K, &G.wi[1], &G.n[1]) || gemm_weight(P, op, "wv", G.K, &G.wi[2], &G.n[2])))
      return -1;
    if (!weight_global(P, op, "norm", 0, &G.norm_wi)) return -1;
    G.eps = fattr(op, "eps", 1e-6);
    /* one GEMM: RoPE on the q and k pairs in the epilogue, k and v appended to the store */
    G.epi = 6;
    G.rope = (int)hd;
    G.pos = pv(P, in[1]);
    G.store = has_kv ? store : -1;
    G.theta = fattr(op, "theta", 10000.0);
    G.y = pv(P, res);
    gemm(P, &G, label);
    return 0;
  }
  case MOR_OP_ROPE: {
    int64_t H = mor_op_int(op, "heads", 0), hd = mor_op_int(op, "head_dim", 0);
    if (rope_check(P, op, H, hd)) return -1;
    snprintf(t, sizeof t, "%lld,%lld", (long long)H, (long long)hd);
    launch L = rows_launch(kernel_of(P, CU_F_ROPE, t, 128), 1);
    cu_param ps[5] = {pv(P, in[0]), pcnt(x0->slot), pv(P, in[1]), pf64(fattr(op, "theta", 10000.0)), pv(P, res)};
    step(P, &L, label, 5, ps);
    return 0;
  }
  case MOR_OP_KV_WRITE: {
    int store = kv_store(P, op, depth);
    if (store == -2) return 0;
    if (store < 0) return -1;
    if (x0->rowlen != p->kv[store].width) return pfail(P, op, "K rows do not fit the cache rows");
    snprintf(t, sizeof t, "%lld", (long long)p->kv[store].width);
    launch L = rows_launch(kernel_of(P, CU_F_KV_APPEND, t, 128), 1);
    cu_param ps[10] = {pv(P, in[0]),          pv(P, in[1]),          pcnt(x0->slot),
                       pv(P, in[2]),          pkv(MORCU_P_KVK, store), pkv(MORCU_P_KVV, store),
                       pkv(MORCU_P_KVPOS, store), pkv(MORCU_P_KVN, store), (cu_param){MORCU_P_TICKET, 0, 0},
                       pint(p->kv[store].capacity)};
    step(P, &L, label, 10, ps);
    return 0;
  }
  case MOR_OP_ATTENTION: {
    int store = kv_store(P, op, depth);
    if (store == -2) return pfail(P, op, "cache entry for depth %lld is @none", (long long)depth);
    if (store < 0) return -1;
    int64_t H = mor_op_int(op, "heads", 0), KVH = mor_op_int(op, "kv_heads", 0), hd = mor_op_int(op, "head_dim", 0);
    if (rope_check(P, op, H, hd)) return -1;
    if (KVH <= 0 || H % KVH || x0->rowlen != H * hd || p->kv[store].width != KVH * hd)
      return pfail(P, op, "heads %lld, kv_heads %lld, head_dim %lld do not fit q and the cache", (long long)H,
                   (long long)KVH, (long long)hd);
    launch L = {0};
    int part = -1;
    if (p->o.gemv_max_t > 0) {
      /* decode: the entries split NS ways over blocks, partials merged by the last block */
      const int NS = 16;
      snprintf(t, sizeof t, "%lld,%lld,%lld,%d", (long long)H, (long long)(H / KVH), (long long)hd, NS);
      add_var(&L, kernel_of(P, CU_F_ATTENTION_DEC, t, 256), 0, 1, (int)H, 0, p->o.gemv_max_t);
      L.v[L.n - 1].gz_c = NS;
      part = scratch(P, (int64_t)p->o.gemv_max_t * H * NS * (hd + 2) * 4);
      if (1 + p->o.gemv_max_t * H > p->n_tickets) p->n_tickets = (int)(1 + p->o.gemv_max_t * H);
    }
    if (p->o.mma && hd % 16 == 0 && hd <= 128 && !covered(P, &L)) {
      /* tensor cores when the model runs its GEMMs on them too (bf16 Q, K, P, V) */
      snprintf(t, sizeof t, "%lld,%lld,%lld", (long long)H, (long long)(H / KVH), (long long)hd);
      if (p->mma_attention) add_var(&L, kernel_of(P, CU_F_ATTENTION_MMA, t, 128), 0, 64, (int)H, 0, INT32_MAX);
    }
    if (!covered(P, &L)) {
      snprintf(t, sizeof t, "%lld,%lld,%lld,8,1", (long long)H, (long long)(H / KVH), (long long)hd);
      add_var(&L, kernel_of(P, CU_F_ATTENTION, t, 256), 0, 8, (int)H, 0, INT32_MAX);
    }
    cu_param ps[10] = {pv(P, in[0]),          pcnt(x0->slot),          pv(P, in[1]),
                       pkv(MORCU_P_KVK, store), pkv(MORCU_P_KVV, store), pkv(MORCU_P_KVPOS, store),
                       pkv(MORCU_P_KVN, store), pv(P, res),             part >= 0 ? pst(part) : pnull(),
                       part >= 0 ? (cu_param){MORCU_P_TICKET, 0, 1} : pnull()};
    step(P, &L, label, 10, ps);
    return 0;
  }
  case MOR_OP_SILU_MUL: {
    int64_t F = x0->rowlen;
    launch L = rows_launch(kernel_of(P, CU_F_SILU_MUL, "", 256), (F + 1023) / 1024);
    cu_param ps[5] = {pv(P, in[0]), pv(P, in[1]), pcnt(x0->slot), pint(F), pv(P, res)};
    step(P, &L, label, 5, ps);
    return 0;
  }
  case MOR_OP_ADD: {
    int e = x0->dt == MOR_F32 ? 0 : x0->dt == MOR_I32 ? 1 : x0->dt == MOR_I64 ? 2 : -1;
    if (e < 0) return pfail(P, op, "add of %s is not supported", mor_dtype_name(x0->dt));
    snprintf(t, sizeof t, "%d", e);
    int64_t Lr = x0->rowlen;
    launch L = rows_launch(kernel_of(P, CU_F_ADD, t, 256), (Lr + 1023) / 1024);
    cu_param ps[5] = {pv(P, in[0]), pv(P, in[1]), pcnt(x0->slot), pint(Lr), pv(P, res)};
    step(P, &L, label, 5, ps);
    return 0;
  }
  case MOR_OP_ROUTER: {
    const char *kind = mor_op_str(op, "kind"), *act = mor_op_str(op, "act");
    if (!kind || !act) return pfail(P, op, "router needs kind and act");
    int a = !strcmp(act, "sigmoid") ? 2 : !strcmp(act, "tanh") ? 3 : !strcmp(act, "softmax") ? 4 : -1;
    if (a < 0) return pfail(P, op, "unknown router act");
    int mlp = !strcmp(kind, "mlp");
    if (!mlp && strcmp(kind, "linear")) return pfail(P, op, "unknown router kind");
    double temp = fattr(op, "temperature", 1.0);
    int64_t D = x0->rowlen;
    int w1;
    const mor_global *g1 = weight_global(P, op, "weights", depth, &w1);
    if (!g1) return -1;
    if (g1->type.rank != 2 || g1->type.dims[1].n != D) return pfail(P, op, "router weight does not fit the rows");
    int64_t o1 = g1->type.dims[0].n;
    if (!mlp) {
      if (a == 4 && o1 > 1024) return pfail(P, op, "softmax over more than 1024 router outputs");
      snprintf(t, sizeof t, "%lld,%lld,%d,1", (long long)D, (long long)o1, a);
      launch L = rows_launch(kernel_of(P, CU_F_ROWDOT, t, 256), 1);
      cu_param ps[5] = {pv(P, in[0]), pcnt(x0->slot), pw(P, w1), pf64(temp), pv(P, res)};
      step(P, &L, label, 5, ps);
      return 0;
    }
    int w2;
    const mor_global *g2 = weight_global(P, op, "weights2", depth, &w2);
    if (!g2) return -1;
    if (g2->type.rank != 2 || g2->type.dims[1].n != o1) return pfail(P, op, "second router weight does not fit");
    int64_t o2 = g2->type.dims[0].n;
    if (a == 4 && o2 > 1024) return pfail(P, op, "softmax over more than 1024 router outputs");
    int h = scratch(P, x0->rows * o1 * 4);
    snprintf(t, sizeof t, "%lld,%lld,1,1", (long long)D, (long long)o1);
    launch L = rows_launch(kernel_of(P, CU_F_ROWDOT, t, 256), 1);
    cu_param ps[5] = {pv(P, in[0]), pcnt(x0->slot), pw(P, w1), pf64(temp), pst(h)};
    step(P, &L, label, 5, ps);
    snprintf(t, sizeof t, "%lld,%lld,%d,0", (long long)o1, (long long)o2, a);
    launch L2 = rows_launch(kernel_of(P, CU_F_ROWDOT, t, 256), 1);
    cu_param ps2[5] = {pst(h), pcnt(x0->slot), pw(P, w2), pf64(1.0), pv(P, res)};
    step(P, &L2, label, 5, ps2);
    return 0;
  }
  case MOR_OP_SELECT: {
    const char *mode = mor_op_str(op, "mode");
    int topk = mode && !strcmp(mode, "top_k");
    if (!mode || (!topk && strcmp(mode, "threshold"))) return pfail(P, op, "unknown select mode");
    double cap = 1.0;
    if (float_entry(P, op, "capacity", depth, &cap)) return -1;
    if (topk) p->whole_sequence = 1;
    launch L = one_block(kernel_of(P, CU_F_SELECT, topk ? "1" : "0", 256));
    cu_param ps[9] = {pv(P, in[0]),
                      pcnt(x0->slot),
                      pv(P, in[1]),
                      pcnt(P->v[in[1]].slot),
                      pf64(cap),
                      pf64(fattr(op, "threshold", 0.0)),
                      pf64(fattr(op, "alpha", 1.0)),
                      pv(P, res),
                      pcnt(P->v[res].slot)};
    step(P, &L, label, 9, ps);
    return 0;
  }
  case MOR_OP_TC_ROUTE: {
    snprintf(t, sizeof t, "%lld", (long long)x0->rowlen);
    launch L = flat_launch(kernel_of(P, CU_F_TC_ROUTE, t, 256), 256);
    cu_param ps[5] = {pv(P, in[0]), pcnt(x0->slot), pf64(fattr(op, "alpha", 1.0)), pv(P, I->out[0]), pv(P, I->out[1])};
    step(P, &L, label, 5, ps);
    return 0;
  }
  case MOR_OP_WHERE: {
    const char *cmp = mor_op_str(op, "cmp");
    int ge = cmp && !strcmp(cmp, "ge");
    if (!cmp || (!ge && strcmp(cmp, "eq"))) return pfail(P, op, "unknown cmp");
    launch L = one_block(kernel_of(P, CU_F_WHERE, ge ? "1" : "0", 256));
    cu_param ps[5] = {pv(P, in[0]), pcnt(x0->slot), pint(depth), pv(P, res), pcnt(P->v[res].slot)};
    step(P, &L, label, 5, ps);
    return 0;
  }
  case MOR_OP_GATHER: {
    int64_t words = x0->rowlen * mor_dtype_size(x0->dt) / 4;
    launch L = rows_launch(kernel_of(P, CU_F_GATHER, "", 256), (words + 1023) / 1024);
    cu_param ps[5] = {pv(P, in[0]), pv(P, in[1]), pcnt(P->v[in[1]].slot), pint(words), pv(P, res)};
    step(P, &L, label, 5, ps);
    return 0;
  }
  case MOR_OP_SCATTER: {
    int out = inplace_result(P, I, 0, -1, label);
    int64_t words = x0->rowlen * mor_dtype_size(x0->dt) / 4;
    launch L = rows_launch(kernel_of(P, CU_F_SCATTER, "", 256), (words + 1023) / 1024);
    cu_param ps[5] = {pv(P, in[1]), pcnt(P->v[in[1]].slot), pv(P, in[2]), pint(words), pv(P, out)};
    step(P, &L, label, 5, ps);
    return 0;
  }
  case MOR_OP_GATE_ADD: {
    const char *gating = mor_op_str(op, "gating");
    int weighted = !gating || strcmp(gating, "none") != 0;
    int out = inplace_result(P, I, 0, 1, label);
    int64_t D = x0->rowlen;
    launch L = rows_launch(kernel_of(P, CU_F_GATE_ADD, weighted ? "1" : "0", 256), (D + 1023) / 1024);
    cu_param ps[8] = {pv(P, in[1]), pv(P, in[2]), pv(P, in[3]), pv(P, in[4]), pcnt(P->v[in[4]].slot),
                      pint(D),      pf64(fattr(op, "alpha", 1.0)), pv(P, out)};
    step(P, &L, label, 8, ps);
    return 0;
  }
  case MOR_OP_COUNT_ADD: {
    int out = inplace_result(P, I, 0, -1, label);
    launch L = flat_launch(kernel_of(P, CU_F_COUNT_ADD, "", 256), 256);
    cu_param ps[3] = {pv(P, in[1]), pcnt(P->v[in[1]].slot), pv(P, out)};
    step(P, &L, label, 3, ps);
    return 0;
  }
  case MOR_OP_IOTA:
  case MOR_OP_FILL: {
    mor_dtype dt = P->v[res].dt;
    int mode = op->code == MOR_OP_IOTA ? 1 : dt == MOR_I32 ? 2 : dt == MOR_F32 ? 0 : -1;
    if (mode < 0) return pfail(P, op, "fill gives f32 or i32");
    snprintf(t, sizeof t, "%d", mode);
    launch L = flat_launch(kernel_of(P, CU_F_FILL, t, 256), 256);
    cu_param ps[3] = {pcnt(x0->slot), pf64(fattr(op, "value", 0.0)), pv(P, res)};
    step(P, &L, label, 3, ps);
    return 0;
  }
  default: break;
  }
  return pfail(P, op, "op '%s' is not supported by the CUDA backend", mor_ops[op->code].name);
}

/* ---- memory placement -------------------------------------------------------------- */

static int by_size_desc(const void *a, const void *b, void *ctx) {
  const cu_storage *s = ctx;
  int i = *(const int *)a, j = *(const int *)b;
  if (s[i].bytes != s[j].bytes) return s[i].bytes > s[j].bytes ? -1 : 1;
  return i - j;
}

typedef struct span {
  int64_t off, end;
} span;

static int by_off(const void *a, const void *b) {
  const span *x = a, *y = b;
  return (x->off > y->off) - (x->off < y->off);
}

/* Best fit by size: the biggest buffers first, each at the lowest offset
 * where it overlaps no placed buffer that is live at the same time. */
static void place_arena(mor_cuda_prog *p) {
  int *order = mor_xcalloc((size_t)p->n_sto + 1, sizeof(int)), n = 0;
  for (int i = 0; i < p->n_sto; i++)
    if (!p->sto[i].io) order[n++] = i;
  qsort_r(order, (size_t)n, sizeof(int), by_size_desc, p->sto);
  int *placed = mor_xcalloc((size_t)n + 1, sizeof(int)), np = 0;
  span *busy = mor_xcalloc((size_t)n + 1, sizeof(span));
  int64_t top = 0;
  for (int a = 0; a < n; a++) {
    cu_storage *s = &p->sto[order[a]];
    int nb = 0;
    for (int k = 0; k < np; k++) {
      const cu_storage *q = &p->sto[placed[k]];
      if (q->last < s->first || s->last < q->first) continue;
      busy[nb++] = (span){q->off, q->off + q->bytes};
    }
    qsort(busy, (size_t)nb, sizeof(span), by_off);
    int64_t off = 0;
    for (int k = 0; k < nb; k++) {
      if (busy[k].off >= off + s->bytes) break;
      if (busy[k].end > off) off = busy[k].end;
    }
    s->off = off;
    if (off + s->bytes > top) top = off + s->bytes;
    placed[np++] = order[a];
  }
  p->arena_bytes = top < 256 ? 256 : top;
  free(order);
  free(placed);
  free(busy);
}

/* ---- the whole plan ------------------------------------------------------------------ */

mor_cuda_prog *mor_cuda_plan(const mor_module *m, const mor_cuda_opts *o, mor_err *err) {
  mor_cuda_prog *p = mor_xcalloc(1, sizeof *p);
  p->m = m;
  if (o) p->o = *o;
  else mor_cuda_opts_default(&p->o);
  if (!p->o.arch) p->o.arch = "sm_90";
  int sm = 0;
  if (sscanf(p->o.arch, "sm_%d", &sm) != 1 || sm < 80 || sm > 200 || strlen(p->o.arch) > 8) {
    char shown[64];
    mor_errf(err, "cuda: --cuda-arch '%s' is not supported (sm_80 or newer, e.g. sm_80, sm_86, sm_89, sm_90)",
             mor_esc(p->o.arch, shown, sizeof shown));
    free(p);
    return NULL;
  }
  snprintf(p->arch, sizeof p->arch, "sm_%d", sm);
  p->o.arch = p->arch;
  p->sm = sm;
  if (p->o.gemv_max_t < 0) p->o.gemv_max_t = 0;
  if (p->o.gemv_max_t > 16) p->o.gemv_max_t = 16;
  planner P0 = {0}, *P = &P0;
  P->p = p;
  P->m = m;
  P->err = err;
  const mor_func *f = mor_find_func(m, "forward");
  p->vocab = mor_mattr_int(m, "vocab_size", -1);
  p->hidden = mor_mattr_int(m, "hidden_size", -1);
  p->max_pos = mor_mattr_int(m, "max_position_embeddings", -1);
  p->n_r = mor_mattr_int(m, "num_recursions", 1);
  const mor_attr *ra = mor_get_mattr(m, "routing");
  p->routing = ra && ra->s && !strcmp(ra->s, "expert_choice") ? 1 : ra && ra->s && !strcmp(ra->s, "token_choice") ? 2 : 0;
  if (!f) {
    pfail(P, NULL, "the module has no @forward");
    goto fail;
  }
  if (f->body->n_args != 2 || f->n_results != 2 || f->body->args[0]->type.dtype != MOR_I32 ||
      f->body->args[0]->type.rank != 1 || f->body->args[1]->type.dtype != MOR_I32 ||
      f->result_types[0].dtype != MOR_F32 || f->result_types[0].rank != 2 || f->result_types[1].dtype != MOR_I32) {
    pfail(P, NULL, "@forward must be (tokens i32[T], pos i32[T]) -> (f32[T, V], i32[T])");
    goto fail;
  }
  mor_dim T = f->body->args[0]->type.dims[0];
  if (T.sym < 0) {
    pfail(P, NULL, "@forward must take a symbolic number of tokens");
    goto fail;
  }
  if (p->vocab < 0) p->vocab = f->result_types[0].dims[1].n;
  if (p->max_pos < 0) p->max_pos = T.n;
  p->max_tokens = p->o.max_tokens > 0 && p->o.max_tokens < T.n ? p->o.max_tokens : T.n;
  if (p->max_tokens > p->max_pos) p->max_tokens = p->max_pos;
  if (p->max_tokens < 1 || p->max_tokens > (1 << 24)) {
    pfail(P, NULL, "bad number of tokens per call (%lld)", (long long)p->max_tokens);
    goto fail;
  }
  if (plan_globals(P)) goto fail;

  /* flatten */
  P->env = mor_xcalloc((size_t)m->next_value_id + 1, sizeof(int));
  for (int i = 0; i < m->next_value_id; i++) P->env[i] = -1;
  p->n_cnt = 1; /* slot 0: T */
  p->n_tickets = 1;
  int a_tok = new_vt(P, &f->body->args[0]->type, 0), a_pos = new_vt(P, &f->body->args[1]->type, 0);
  P->env[f->body->args[0]->id] = a_tok;
  P->env[f->body->args[1]->id] = a_pos;
  int *ret = NULL, nret = 0;
  if (flatten(P, f->body, &ret, &nret)) goto fail;
  if (nret != 2) {
    free(ret);
    pfail(P, NULL, "@forward returns %d values", nret);
    goto fail;
  }
  /* last uses */
  for (int i = 0; i < P->n_inst; i++)
    for (int k = 0; k < P->ins[i].nin; k++) P->v[P->ins[i].in[k]].last_use = i;
  P->v[ret[0]].last_use = P->v[ret[1]].last_use = INT_MAX / 2;
  /* io buffer: T at 0, tokens and positions */
  p->io_tokens = 64;
  p->io_pos = 64 + ((4 * p->max_tokens + 63) & ~(int64_t)63);
  p->io_bytes = p->io_pos + ((4 * p->max_tokens + 63) & ~(int64_t)63);
  for (int k = 0; k < 2; k++) {
    int id = k ? a_pos : a_tok;
    int st = new_storage(P, 4 * p->max_tokens);
    p->sto[st].io = 1;
    p->sto[st].off = k ? p->io_pos : p->io_tokens;
    p->sto[st].first = 0;
    p->sto[st].last = INT_MAX / 2;
    P->v[id].st = st;
  }
  /* emit */
  for (int i = 0; i < P->n_inst && !P->failed; i++) {
    P->cur = i;
    inst *I = &P->ins[i];
    for (int k = 0; k < I->nout; k++) {
      /* results are placed lazily (in-place results take their operand's buffer) */
    }
    if (emit_inst(P, I)) break;
    for (int k = 0; k < I->nout; k++)
      if (P->v[I->out[k]].rank && P->v[I->out[k]].st < 0) place(P, I->out[k]);
  }
  if (P->failed) {
    free(ret);
    goto fail;
  }
  {
    vt *lg = &P->v[ret[0]], *dp = &P->v[ret[1]];
    if (lg->st < 0 || dp->st < 0 || p->sto[lg->st].io || p->sto[dp->st].io || lg->rowlen != p->vocab) {
      free(ret);
      pfail(P, NULL, "@forward's results must be computed values (logits f32[T, %lld], depths i32[T])",
            (long long)p->vocab);
      goto fail;
    }
    p->sto[lg->st].last = p->sto[dp->st].last = INT_MAX / 2;
    place_arena(p);
    p->logits_off = p->sto[lg->st].off;
    p->depths_off = p->sto[dp->st].off;
  }
  free(ret);
  /* resolve storage parameters to arena / io offsets */
  for (int i = 0; i < p->n_params; i++) {
    cu_param *q = &p->params[i];
    if (q->kind != CU_P_ST) continue;
    cu_storage *s = &p->sto[q->st];
    q->kind = s->io ? MORCU_P_IO : MORCU_P_ARENA;
    q->v += (uint64_t)s->off;
  }
  cu_emit_source(p);
  for (int i = 0; i < P->n_inst; i++) {
    free(P->ins[i].in);
    free(P->ins[i].out);
  }
  free(P->ins);
  free(P->v);
  free(P->env);
  return p;
fail:
  for (int i = 0; i < P->n_inst; i++) {
    free(P->ins[i].in);
    free(P->ins[i].out);
  }
  free(P->ins);
  free(P->v);
  free(P->env);
  mor_cuda_prog_free(p);
  return NULL;
}

void mor_cuda_prog_free(mor_cuda_prog *p) {
  if (!p) return;
  free(p->w);
  free(p->w_of_global);
  free(p->kv);
  free(p->kv_of_global);
  for (int i = 0; i < p->n_k; i++) {
    free(p->k[i].targs);
    free(p->k[i].name);
  }
  free(p->k);
  free(p->steps);
  free(p->params);
  for (int i = 0; i < p->n_labels; i++) free(p->labels[i]);
  free(p->labels);
  free(p->sto);
  free(p->cnt_init);
  mor_buf_free(&p->src);
  free(p->ptx);
  free(p->cubin);
  free(p);
}

const char *mor_cuda_source(const mor_cuda_prog *p) { return p->src.data ? p->src.data : ""; }

int64_t mor_cuda_n_weights(const mor_cuda_prog *p) { return p->n_w; }

const char *mor_cuda_weight(const mor_cuda_prog *p, int64_t i, mor_dtype *dev, uint64_t *offset, uint64_t *bytes) {
  if (i < 0 || i >= p->n_w) return NULL;
  if (dev) *dev = p->w[i].dev;
  if (offset) *offset = p->w[i].off;
  if (bytes) *bytes = p->w[i].bytes;
  return p->w[i].g->name;
}

uint64_t mor_cuda_weights_bytes(const mor_cuda_prog *p) { return p->weights_bytes; }

void mor_cuda_get_info(const mor_cuda_prog *p, mor_cuda_info *info) {
  memset(info, 0, sizeof *info);
  info->n_steps = p->n_steps;
  info->n_kernels = p->n_k;
  info->arena_bytes = p->arena_bytes;
  info->n_kv = p->n_st_kv;
  for (int i = 0; i < p->n_st_kv; i++) info->kv_bytes += p->kv[i].capacity * (p->kv[i].width * 8 + 4);
  info->weights_bytes = (int64_t)p->weights_bytes;
}

static void launch_str(const mor_cuda_prog *p, const morcu_launch *l, mor_buf *b) {
  mor_buf_printf(b, "%s grid(", p->k[l->kernel].name);
  for (int i = 0; i < 2; i++) {
    if (i) mor_buf_puts(b, ", ");
    if (l->grid_d[i] && l->grid_c[i]) mor_buf_printf(b, "%d+T/%d", l->grid_c[i], l->grid_d[i]);
    else if (l->grid_d[i] == 1) mor_buf_puts(b, "T");
    else if (l->grid_d[i]) mor_buf_printf(b, "T/%d", l->grid_d[i]);
    else mor_buf_printf(b, "%d", l->grid_c[i]);
  }
  if (l->grid_c[2] != 1) mor_buf_printf(b, ", %d", l->grid_c[2]);
  mor_buf_printf(b, ") block %d", l->block[0]);
}

void mor_cuda_print_plan(const mor_cuda_prog *p, mor_buf *b) {
  mor_buf_printf(b, "# launch plan of one forward call (T tokens, T <= %lld); arch %s\n", (long long)p->max_tokens,
                 p->arch);
  mor_buf_printf(b, "# %d steps, %d kernels, arena %lld bytes, %d count slots, weights %llu bytes, %d KV stores\n",
                 p->n_steps, p->n_k, (long long)p->arena_bytes, p->n_cnt, (unsigned long long)p->weights_bytes,
                 p->n_st_kv);
  for (int i = 0; i < p->n_steps; i++) {
    const cu_step *s = &p->steps[i];
    mor_buf_printf(b, "%4d  %-40s", i, p->labels[s->label]);
    for (int v = 0; v < MORCU_VARIANTS; v++) {
      if (s->var[v].kernel < 0) continue;
      if (s->max_t[v] == INT32_MAX) mor_buf_puts(b, v ? "  | else " : " ");
      else mor_buf_printf(b, "%sT<=%d: ", v ? "  | " : " ", s->max_t[v]);
      launch_str(p, &s->var[v], b);
    }
    mor_buf_putc(b, '\n');
  }
}

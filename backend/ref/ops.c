/* ops.c: one function per IR op for the reference interpreter, dispatched by
 * a switch over mor_opcode (a new op is one case and one function). The
 * numerics are described at the top of ref.h. */
#include "backend/ref/ref_impl.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- kernels on plain arrays --------------------------------------------- */

static double dot_f64(const float *a, const float *b, int64_t K) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    s0 += (double)a[k] * b[k];
    s1 += (double)a[k + 1] * b[k + 1];
    s2 += (double)a[k + 2] * b[k + 2];
    s3 += (double)a[k + 3] * b[k + 3];
  }
  for (; k < K; k++) s0 += (double)a[k] * b[k];
  return (s0 + s1) + (s2 + s3);
}

/* y[M,N] = x[M,K] W[N,K]^T. Each row of W is read once and dotted with four
 * rows of x at a time (two accumulators each), so W streams from memory once
 * while x stays in cache. */
static void matmul_f32(const float *x, int64_t M, int64_t K, const float *W, int64_t N, float *y) {
  for (int64_t n = 0; n < N; n++) {
    const float *w = W + n * K;
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) {
      const float *x0 = x + m * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
      double a0 = 0, b0 = 0, a1 = 0, b1 = 0, a2 = 0, b2 = 0, a3 = 0, b3 = 0;
      int64_t k = 0;
      for (; k + 2 <= K; k += 2) {
        double w0 = w[k], w1 = w[k + 1];
        a0 += x0[k] * w0, b0 += x0[k + 1] * w1;
        a1 += x1[k] * w0, b1 += x1[k + 1] * w1;
        a2 += x2[k] * w0, b2 += x2[k + 1] * w1;
        a3 += x3[k] * w0, b3 += x3[k + 1] * w1;
      }
      if (k < K) {
        double w0 = w[k];
        a0 += x0[k] * w0, a1 += x1[k] * w0, a2 += x2[k] * w0, a3 += x3[k] * w0;
      }
      y[(m + 0) * N + n] = (float)(a0 + b0);
      y[(m + 1) * N + n] = (float)(a1 + b1);
      y[(m + 2) * N + n] = (float)(a2 + b2);
      y[(m + 3) * N + n] = (float)(a3 + b3);
    }
    for (; m < M; m++) y[m * N + n] = (float)dot_f64(x + m * K, w, K);
  }
}

static float sigmoidf_(float x) { return (float)(1.0 / (1.0 + exp(-(double)x))); }

/* y = w * (x * (float)rsqrt(mean(x^2) + eps)) per row, mean in double. */
static void rmsnorm_rows(const float *x, int64_t M, int64_t D, const float *w, double eps, float *y) {
  for (int64_t m = 0; m < M; m++) {
    const float *xr = x + m * D;
    float *yr = y + m * D;
    double ss = 0;
    for (int64_t i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
    float inv = (float)(1.0 / sqrt(ss / (double)D + eps));
    for (int64_t i = 0; i < D; i++) yr[i] = w[i] * (xr[i] * inv);
  }
}

/* Half-split rotary embedding of H heads of hd per row (y may be x). */
static void rope_rows(const float *x, const int32_t *pos, int64_t M, int64_t H, int64_t hd, double theta, float *y) {
  int64_t half = hd / 2;
  float *c = mor_xmalloc(sizeof(float) * (size_t)(half + 1)), *s = mor_xmalloc(sizeof(float) * (size_t)(half + 1));
  for (int64_t m = 0; m < M; m++) {
    double p = pos[m];
    for (int64_t i = 0; i < half; i++) {
      double ang = p * pow(theta, -2.0 * (double)i / (double)hd);
      c[i] = (float)cos(ang);
      s[i] = (float)sin(ang);
    }
    for (int64_t h = 0; h < H; h++) {
      const float *xr = x + m * H * hd + h * hd;
      float *yr = y + m * H * hd + h * hd;
      for (int64_t i = 0; i < half; i++) {
        float x1 = xr[i], x2 = xr[i + half];
        yr[i] = x1 * c[i] - x2 * s[i];
        yr[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  }
  free(c);
  free(s);
}

static void silu_mul_f32(const float *g, const float *u, int64_t n, float *y) {
  for (int64_t i = 0; i < n; i++) {
    float si = (float)((double)g[i] / (1.0 + exp(-(double)g[i])));
    y[i] = si * u[i];
  }
}

/* out[idx[i]] = base[idx[i]] + g * y[i] with g = alpha * s[idx[i]] (weighted) or y added as is. */
static void gate_rows(float *out, const float *base, const float *y, const float *s, const int32_t *idx, int64_t N,
                      int64_t D, int weighted, double alpha) {
  float af = (float)alpha;
  for (int64_t i = 0; i < N; i++) {
    int64_t t = idx[i];
    const float *br = base + t * D, *yr = y + i * D;
    float *o = out + t * D;
    if (weighted) {
      float g = af * s[t];
      for (int64_t k = 0; k < D; k++) o[k] = br[k] + g * yr[k];
    } else {
      for (int64_t k = 0; k < D; k++) o[k] = br[k] + yr[k];
    }
  }
}

static size_t dsize(mor_dtype dt) { return (size_t)mor_dtype_size(dt); }

/* Rows of a tensor of rank >= 1 and the elements of one row. */
static int64_t row_len(const mor_rt *t) {
  int64_t n = 1;
  for (int i = 1; i < t->rank; i++) n *= t->shape[i];
  return n;
}

static int same_shape(const mor_rt *a, const mor_rt *b) {
  if (a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

static int check_rows(mor_exec *ex, const mor_op *op, const mor_rt *t, int64_t n, const char *what) {
  if (t->shape[0] != n)
    return mor_ref_fail(ex, op, "%s has %lld rows, expected %lld", what, (long long)t->shape[0], (long long)n);
  return 0;
}

/* Row indices must lie in [0, T). */
static int check_idx(mor_exec *ex, const mor_op *op, const mor_rt *idx, int64_t T) {
  const int32_t *ix = idx->data;
  for (int64_t i = 0; i < idx->numel; i++)
    if (ix[i] < 0 || ix[i] >= T)
      return mor_ref_fail(ex, op, "index %lld is row %d, outside [0, %lld)", (long long)i, ix[i], (long long)T);
  return 0;
}

/* ---- ops -------------------------------------------------------------------- */

static int exec_embed(mor_exec *ex, const mor_op *op) {
  mor_rt *tok = mor_ref_arg(ex, op, 0, MOR_I32, 1);
  if (!tok) return -1;
  const mor_global *g;
  const float *E = mor_ref_weight(ex, op, "weight", 0, 2, (int64_t[]){-1, -1}, &g);
  if (!E) return -1;
  int64_t V = g->type.dims[0].n, D = g->type.dims[1].n, T = tok->shape[0];
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, 2, (int64_t[]){T, D});
  if (!y) return -1;
  const int32_t *ids = tok->data;
  float *out = y->data;
  for (int64_t t = 0; t < T; t++) {
    if (ids[t] < 0 || ids[t] >= V)
      return mor_ref_fail(ex, op, "token %lld: id %d out of range [0, %lld)", (long long)t, ids[t], (long long)V);
    memcpy(out + t * D, E + (int64_t)ids[t] * D, sizeof(float) * (size_t)D);
  }
  return 0;
}

static int exec_rmsnorm(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, MOR_F32, -1);
  if (!x) return -1;
  int64_t D = x->shape[x->rank - 1];
  const float *w = mor_ref_weight(ex, op, "weight", 0, 1, (int64_t[]){D}, NULL);
  double eps;
  if (!w || mor_ref_attr_float(ex, op, "eps", &eps)) return -1;
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, x->rank, x->shape);
  if (!y) return -1;
  rmsnorm_rows(x->data, D ? x->numel / D : 0, D, w, eps, y->data);
  return 0;
}

static int exec_matmul(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, MOR_F32, -1);
  if (!x) return -1;
  int64_t K = x->shape[x->rank - 1];
  const mor_global *g;
  const float *W = mor_ref_weight(ex, op, "weight", 0, 2, (int64_t[]){-1, K}, &g);
  if (!W) return -1;
  int64_t N = g->type.dims[0].n, shape[MOR_MAX_RANK];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->rank - 1] = N;
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, x->rank, shape);
  if (!y) return -1;
  matmul_f32(x->data, K ? x->numel / K : 0, K, W, N, y->data);
  return 0;
}

static int exec_rope(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, MOR_F32, 2), *pos = mor_ref_arg(ex, op, 1, MOR_I32, 1);
  int64_t H, hd;
  double theta;
  if (!x || !pos || mor_ref_attr_int(ex, op, "heads", &H) || mor_ref_attr_int(ex, op, "head_dim", &hd) ||
      mor_ref_attr_float(ex, op, "theta", &theta))
    return -1;
  int64_t M = x->shape[0];
  if (check_rows(ex, op, pos, M, "pos")) return -1;
  if (hd <= 0 || hd % 2 || H <= 0 || x->shape[1] != H * hd)
    return mor_ref_fail(ex, op, "rows of %lld do not split into %lld heads of an even head_dim %lld",
                        (long long)x->shape[1], (long long)H, (long long)hd);
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, 2, x->shape);
  if (!y) return -1;
  rope_rows(x->data, pos->data, M, H, hd, theta, y->data);
  return 0;
}

/* Append M rows (positions pos) to a KV store. */
static int kv_append(mor_exec *ex, const mor_op *op, mor_kvstore *c, const mor_global *g, const float *k,
                     const float *v, const int32_t *pos, int64_t M) {
  if (M == 0) return 0;
  if (c->n + M > c->capacity)
    return mor_ref_fail(ex, op, "KV cache @%s: capacity exceeded: %lld entries + %lld new > capacity %lld",
                        MOR_SYM(g->name), (long long)c->n, (long long)M, (long long)c->capacity);
  if (c->n + M > c->alloc) {
    int64_t na = c->alloc ? c->alloc : 16;
    while (na < c->n + M) na *= 2;
    c->pos = mor_xrealloc(c->pos, sizeof(int32_t) * (size_t)na);
    c->k = mor_xrealloc(c->k, sizeof(float) * (size_t)(na * c->width));
    c->v = mor_xrealloc(c->v, sizeof(float) * (size_t)(na * c->width));
    c->alloc = na;
  }
  memcpy(c->pos + c->n, pos, sizeof(int32_t) * (size_t)M);
  memcpy(c->k + c->n * c->width, k, sizeof(float) * (size_t)(M * c->width));
  memcpy(c->v + c->n * c->width, v, sizeof(float) * (size_t)(M * c->width));
  c->n += M;
  return 0;
}

static int exec_kv_write(mor_exec *ex, const mor_op *op) {
  mor_rt *k = mor_ref_arg(ex, op, 0, MOR_F32, -1), *v = mor_ref_arg(ex, op, 1, MOR_F32, -1);
  mor_rt *pos = mor_ref_arg(ex, op, 2, MOR_I32, 1);
  if (!k || !v || !pos) return -1;
  int64_t depth = mor_ref_depth(ex, op, 3);
  if (depth < 0) return -1;
  int none;
  const mor_global *g;
  mor_kvstore *c = mor_ref_cache(ex, op, "caches", depth, &none, &g);
  if (none) return 0;
  if (!c) return -1;
  int64_t M = k->shape[0];
  if (check_rows(ex, op, v, M, "v") || check_rows(ex, op, pos, M, "pos")) return -1;
  if (row_len(k) != c->width || row_len(v) != c->width)
    return mor_ref_fail(ex, op, "K/V rows of %lld/%lld values, cache @%s holds rows of %lld", (long long)row_len(k),
                        (long long)row_len(v), MOR_SYM(g->name), (long long)c->width);
  return kv_append(ex, op, c, g, k->data, v->data, pos->data, M);
}

static int exec_attention(mor_exec *ex, const mor_op *op) {
  mor_rt *q = mor_ref_arg(ex, op, 0, MOR_F32, 2), *pos = mor_ref_arg(ex, op, 1, MOR_I32, 1);
  int64_t H, KVH, hd;
  if (!q || !pos || mor_ref_attr_int(ex, op, "heads", &H) || mor_ref_attr_int(ex, op, "kv_heads", &KVH) ||
      mor_ref_attr_int(ex, op, "head_dim", &hd))
    return -1;
  int64_t depth = mor_ref_depth(ex, op, 2);
  if (depth < 0) return -1;
  int none;
  const mor_global *g;
  mor_kvstore *c = mor_ref_cache(ex, op, "caches", depth, &none, &g);
  if (none) return mor_ref_fail(ex, op, "cache entry for depth %lld is @none", (long long)depth);
  if (!c) return -1;
  int64_t M = q->shape[0];
  if (check_rows(ex, op, pos, M, "pos")) return -1;
  if (H <= 0 || KVH <= 0 || hd <= 0 || H % KVH || q->shape[1] != H * hd || c->width != KVH * hd)
    return mor_ref_fail(ex, op,
                        "heads %lld, kv_heads %lld, head_dim %lld do not fit q rows of %lld and cache @%s rows of %lld",
                        (long long)H, (long long)KVH, (long long)hd, (long long)q->shape[1], MOR_SYM(g->name),
                        (long long)c->width);
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, 2, q->shape);
  if (!y) return -1;
  int64_t group = H / KVH;
  double scale = 1.0 / sqrt((double)hd);
  int64_t *sel = mor_xmalloc(sizeof(int64_t) * (size_t)(c->n + 1));
  double *sc = mor_xmalloc(sizeof(double) * (size_t)(c->n + 1));
  double *acc = mor_xmalloc(sizeof(double) * (size_t)hd);
  int rc = 0;
  for (int64_t m = 0; m < M && !rc; m++) {
    int32_t p = ((const int32_t *)pos->data)[m];
    int64_t n = 0;
    for (int64_t e = 0; e < c->n; e++)
      if (c->pos[e] <= p) sel[n++] = e;
    if (n == 0) {
      rc = mor_ref_fail(ex, op, "row %lld (position %d): cache @%s has no entry at or before it", (long long)m, p,
                        MOR_SYM(g->name));
      break;
    }
    for (int64_t h = 0; h < H; h++) {
      const float *qh = (const float *)q->data + m * H * hd + h * hd;
      int64_t kvo = (h / group) * hd;
      double mx = -INFINITY;
      for (int64_t e = 0; e < n; e++) {
        sc[e] = dot_f64(qh, c->k + sel[e] * c->width + kvo, hd) * scale;
        if (sc[e] > mx) mx = sc[e];
      }
      double sum = 0;
      for (int64_t d = 0; d < hd; d++) acc[d] = 0;
      for (int64_t e = 0; e < n; e++) {
        double w = exp(sc[e] - mx);
        sum += w;
        const float *vr = c->v + sel[e] * c->width + kvo;
        for (int64_t d = 0; d < hd; d++) acc[d] += w * vr[d];
      }
      float *yr = (float *)y->data + m * H * hd + h * hd;
      for (int64_t d = 0; d < hd; d++) yr[d] = (float)(acc[d] / sum);
    }
  }
  free(sel);
  free(sc);
  free(acc);
  return rc;
}

static int exec_silu_mul(mor_exec *ex, const mor_op *op) {
  mor_rt *g = mor_ref_arg(ex, op, 0, MOR_F32, -1), *u = mor_ref_arg(ex, op, 1, MOR_F32, -1);
  if (!g || !u) return -1;
  if (!same_shape(g, u)) return mor_ref_fail(ex, op, "operands differ in shape");
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, g->rank, g->shape);
  if (!y) return -1;
  silu_mul_f32(g->data, u->data, g->numel, y->data);
  return 0;
}

static int exec_add(mor_exec *ex, const mor_op *op) {
  mor_rt *a = mor_ref_arg(ex, op, 0, -1, -2), *b = mor_ref_arg(ex, op, 1, -1, -2);
  if (!a || !b) return -1;
  if (a->dt != b->dt || !same_shape(a, b)) return mor_ref_fail(ex, op, "operands differ in dtype or shape");
  mor_rt *y = mor_ref_res(ex, op, 0, a->dt, a->rank, a->shape);
  if (!y) return -1;
  for (int64_t i = 0; i < a->numel; i++) {
    switch (a->dt) {
    case MOR_F32: ((float *)y->data)[i] = ((const float *)a->data)[i] + ((const float *)b->data)[i]; break;
    case MOR_I32:
      ((int32_t *)y->data)[i] = (int32_t)((uint32_t)((const int32_t *)a->data)[i] + (uint32_t)((const int32_t *)b->data)[i]);
      break;
    default:
      ((int64_t *)y->data)[i] = (int64_t)((uint64_t)((const int64_t *)a->data)[i] + (uint64_t)((const int64_t *)b->data)[i]);
      break;
    }
  }
  return 0;
}

static int exec_router(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, MOR_F32, 2);
  if (!x) return -1;
  int64_t depth = mor_ref_depth(ex, op, 1);
  if (depth < 0) return -1;
  const char *kind = mor_ref_attr_str(ex, op, "kind"), *act = mor_ref_attr_str(ex, op, "act");
  if (!kind || !act) return -1;
  double temp = 1.0;
  if (mor_op_attr(op, "temperature") && mor_ref_attr_float(ex, op, "temperature", &temp)) return -1;
  int64_t M = x->shape[0], D = x->shape[1], hid = 0, out;
  const mor_global *g1, *g2 = NULL;
  const float *W1 = mor_ref_weight(ex, op, "weights", (int)depth, 2, (int64_t[]){-1, D}, &g1), *W2 = NULL;
  if (!W1) return -1;
  if (!strcmp(kind, "linear")) {
    out = g1->type.dims[0].n;
  } else if (!strcmp(kind, "mlp")) {
    hid = g1->type.dims[0].n;
    W2 = mor_ref_weight(ex, op, "weights2", (int)depth, 2, (int64_t[]){-1, hid}, &g2);
    if (!W2) return -1;
    out = g2->type.dims[0].n;
  } else {
    return mor_ref_fail(ex, op, "unknown router kind '%s' (linear, mlp)", kind);
  }
  int a_sig = !strcmp(act, "sigmoid"), a_tanh = !strcmp(act, "tanh"), a_soft = !strcmp(act, "softmax");
  if (!a_sig && !a_tanh && !a_soft) return mor_ref_fail(ex, op, "unknown router act '%s' (sigmoid, tanh, softmax)", act);
  int64_t outputs = out;
  if (mor_op_attr(op, "outputs") && mor_ref_attr_int(ex, op, "outputs", &outputs)) return -1;
  if (outputs != out)
    return mor_ref_fail(ex, op, "outputs = %lld, but the router weight gives %lld", (long long)outputs, (long long)out);
  mor_rt *y = out == 1 ? mor_ref_res(ex, op, 0, MOR_F32, 1, (int64_t[]){M})
                       : mor_ref_res(ex, op, 0, MOR_F32, 2, (int64_t[]){M, out});
  if (!y) return -1;
  float *xs = mor_xmalloc(sizeof(float) * (size_t)(D + hid + out + 1));
  float *h = xs + D, *z = h + hid;
  float tf = (float)temp;
  for (int64_t m = 0; m < M; m++) {
    const float *xr = (const float *)x->data + m * D;
    for (int64_t i = 0; i < D; i++) xs[i] = xr[i] / tf;
    if (W2) {
      for (int64_t j = 0; j < hid; j++) {
        double a = (float)dot_f64(xs, W1 + j * D, D);
        h[j] = (float)(0.5 * a * (1.0 + erf(a / sqrt(2.0))));
      }
      for (int64_t o = 0; o < out; o++) z[o] = (float)dot_f64(h, W2 + o * hid, hid);
    } else {
      for (int64_t o = 0; o < out; o++) z[o] = (float)dot_f64(xs, W1 + o * D, D);
    }
    float *yr = (float *)y->data + m * out;
    if (a_soft) {
      double mx = -INFINITY, sum = 0;
      for (int64_t o = 0; o < out; o++)
        if (z[o] > mx) mx = z[o];
      for (int64_t o = 0; o < out; o++) sum += exp(z[o] - mx);
      for (int64_t o = 0; o < out; o++) yr[o] = (float)(exp(z[o] - mx) / sum);
    } else {
      for (int64_t o = 0; o < out; o++) yr[o] = a_sig ? sigmoidf_(z[o]) : (float)tanh((double)z[o]);
    }
  }
  free(xs);
  return 0;
}

/* The value of entry `idx` of a float-list attribute (a single float is
 * entry 0 of itself). */
static int float_entry(mor_exec *ex, const mor_op *op, const char *name, int64_t idx, double *out) {
  const mor_attr *a = mor_op_attr(op, name);
  if (!a) return mor_ref_fail(ex, op, "missing attribute '%s'", name);
  if (a->kind == MOR_ATTR_FLOATS || a->kind == MOR_ATTR_INTS) {
    if (idx >= a->n)
      return mor_ref_fail(ex, op, "attribute '%s' has %d entries, no entry for depth %lld", name, a->n, (long long)idx);
    *out = a->kind == MOR_ATTR_FLOATS ? a->floats[idx] : (double)a->ints[idx];
    return 0;
  }
  if (idx != 0) return mor_ref_fail(ex, op, "attribute '%s' is not a list, but depth is %lld", name, (long long)idx);
  return mor_ref_attr_float(ex, op, name, out);
}

typedef struct ranked {
  float key;
  int32_t row;
} ranked;

static int by_key_desc(const void *pa, const void *pb) {
  const ranked *a = pa, *b = pb;
  if (a->key != b->key) return a->key > b->key ? -1 : 1;
  return (a->row > b->row) - (a->row < b->row);
}

static int by_row(const void *pa, const void *pb) {
  int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
  return (a > b) - (a < b);
}

static int exec_select(mor_exec *ex, const mor_op *op) {
  mor_rt *s = mor_ref_arg(ex, op, 0, MOR_F32, 1), *active = mor_ref_arg(ex, op, 1, MOR_I32, 1);
  if (!s || !active) return -1;
  int64_t depth = mor_ref_depth(ex, op, 2);
  if (depth < 0) return -1;
  const char *mode = mor_ref_attr_str(ex, op, "mode");
  double cap;
  if (!mode || float_entry(ex, op, "capacity", depth, &cap)) return -1;
  int64_t T = s->shape[0], A = active->shape[0];
  if (check_idx(ex, op, active, T)) return -1;
  const int32_t *act = active->data;
  const float *sv = s->data;
  int32_t *chosen = mor_xmalloc(sizeof(int32_t) * (size_t)(A + 1));
  int64_t n = 0;
  if (!strcmp(mode, "threshold")) {
    double thr = 0;
    if (cap < 1.0 && mor_ref_attr_float(ex, op, "threshold", &thr)) goto fail;
    for (int64_t i = 0; i < A; i++)
      if (cap >= 1.0 || sv[act[i]] >= thr) chosen[n++] = act[i];
  } else if (!strcmp(mode, "top_k")) {
    if (ex->had_cache) {
      mor_ref_fail(ex, op,
                   "top_k routing scores whole sequences only, but the sequence already has cached positions "
                   "(use threshold routing to decode)");
      goto fail;
    }
    double alpha;
    if (mor_ref_attr_float(ex, op, "alpha", &alpha)) goto fail;
    int64_t k = (int64_t)floor(cap * (double)T);
    if (k < 1) k = 1;
    if (k > A) k = A;
    ranked *rk = mor_xmalloc(sizeof(ranked) * (size_t)(A + 1));
    float af = (float)alpha;
    for (int64_t i = 0; i < A; i++) {
      float key = af * sv[act[i]];
      rk[i].key = isnan(key) ? -INFINITY : key;
      rk[i].row = act[i];
    }
    qsort(rk, (size_t)A, sizeof *rk, by_key_desc);
    for (int64_t i = 0; i < k; i++) chosen[n++] = rk[i].row;
    free(rk);
  } else {
    mor_ref_fail(ex, op, "unknown select mode '%s' (threshold, top_k)", mode);
    goto fail;
  }
  qsort(chosen, (size_t)n, sizeof *chosen, by_row);
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_I32, 1, (int64_t[]){n});
  if (!y) goto fail;
  memcpy(y->data, chosen, sizeof(int32_t) * (size_t)n);
  free(chosen);
  return 0;
fail:
  free(chosen);
  return -1;
}

static int exec_tc_route(mor_exec *ex, const mor_op *op) {
  mor_rt *p = mor_ref_arg(ex, op, 0, MOR_F32, 2);
  double alpha;
  if (!p || mor_ref_attr_float(ex, op, "alpha", &alpha)) return -1;
  int64_t T = p->shape[0], R = p->shape[1];
  if (R < 1) return mor_ref_fail(ex, op, "no recursion scores");
  mor_rt *d = mor_ref_res(ex, op, 0, MOR_I32, 1, (int64_t[]){T}), *w = mor_ref_res(ex, op, 1, MOR_F32, 1, (int64_t[]){T});
  if (!d || !w) return -1;
  float af = (float)alpha;
  for (int64_t t = 0; t < T; t++) {
    const float *pr = (const float *)p->data + t * R;
    int64_t best = 0;
    float bv = af * pr[0];
    for (int64_t r = 1; r < R; r++) {
      float v = af * pr[r];
      if (v > bv || (isnan(bv) && !isnan(v))) best = r, bv = v;
    }
    ((int32_t *)d->data)[t] = (int32_t)best;
    ((float *)w->data)[t] = bv;
  }
  return 0;
}

static int exec_where(mor_exec *ex, const mor_op *op) {
  mor_rt *d = mor_ref_arg(ex, op, 0, MOR_I32, 1), *dep = mor_ref_arg(ex, op, 1, MOR_I64, 0);
  const char *cmp = mor_ref_attr_str(ex, op, "cmp");
  if (!d || !dep || !cmp) return -1;
  int ge = !strcmp(cmp, "ge");
  if (!ge && strcmp(cmp, "eq")) return mor_ref_fail(ex, op, "unknown cmp '%s' (ge, eq)", cmp);
  int64_t depth = *(const int64_t *)dep->data, T = d->shape[0], n = 0;
  const int32_t *dv = d->data;
  for (int64_t t = 0; t < T; t++) n += ge ? dv[t] >= depth : dv[t] == depth;
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_I32, 1, (int64_t[]){n});
  if (!y) return -1;
  int32_t *out = y->data;
  n = 0;
  for (int64_t t = 0; t < T; t++)
    if (ge ? dv[t] >= depth : dv[t] == depth) out[n++] = (int32_t)t;
  return 0;
}

static int exec_gather(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, -1, -1), *idx = mor_ref_arg(ex, op, 1, MOR_I32, 1);
  if (!x || !idx || check_idx(ex, op, idx, x->shape[0])) return -1;
  int64_t shape[MOR_MAX_RANK], rl = row_len(x), N = idx->shape[0];
  memcpy(shape, x->shape, sizeof shape);
  shape[0] = N;
  mor_rt *y = mor_ref_res(ex, op, 0, x->dt, x->rank, shape);
  if (!y) return -1;
  size_t rb = (size_t)rl * dsize(x->dt);
  const int32_t *ix = idx->data;
  for (int64_t i = 0; i < N; i++) memcpy((char *)y->data + i * rb, (const char *)x->data + ix[i] * rb, rb);
  return 0;
}

static int exec_scatter(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, -1, -1), *idx = mor_ref_arg(ex, op, 1, MOR_I32, 1);
  mor_rt *yv = mor_ref_arg(ex, op, 2, -1, -1);
  if (!x || !idx || !yv || check_idx(ex, op, idx, x->shape[0])) return -1;
  int64_t N = idx->shape[0];
  if (yv->dt != x->dt || yv->rank != x->rank || yv->shape[0] != N || row_len(yv) != row_len(x))
    return mor_ref_fail(ex, op, "the update must have the index's %lld rows shaped like the rows of x", (long long)N);
  mor_rt *y = mor_ref_res(ex, op, 0, x->dt, x->rank, x->shape);
  if (!y) return -1;
  size_t rb = (size_t)row_len(x) * dsize(x->dt);
  memcpy(y->data, x->data, (size_t)x->numel * dsize(x->dt));
  const int32_t *ix = idx->data;
  for (int64_t i = 0; i < N; i++) memcpy((char *)y->data + ix[i] * rb, (const char *)yv->data + i * rb, rb);
  return 0;
}

static int exec_gate_add(mor_exec *ex, const mor_op *op) {
  mor_rt *dst = mor_ref_arg(ex, op, 0, MOR_F32, 2), *base = mor_ref_arg(ex, op, 1, MOR_F32, 2);
  mor_rt *yv = mor_ref_arg(ex, op, 2, MOR_F32, 2), *s = mor_ref_arg(ex, op, 3, MOR_F32, 1);
  mor_rt *idx = mor_ref_arg(ex, op, 4, MOR_I32, 1);
  const char *gating = mor_ref_attr_str(ex, op, "gating");
  if (!dst || !base || !yv || !s || !idx || !gating) return -1;
  int weighted = !strcmp(gating, "weighted");
  if (!weighted && strcmp(gating, "none")) return mor_ref_fail(ex, op, "unknown gating '%s' (weighted, none)", gating);
  double alpha = 1.0;
  if (weighted && mor_ref_attr_float(ex, op, "alpha", &alpha)) return -1;
  int64_t T = dst->shape[0], D = dst->shape[1], N = idx->shape[0];
  if (!same_shape(dst, base) || yv->shape[0] != N || yv->shape[1] != D || s->shape[0] != T)
    return mor_ref_fail(ex, op, "operand shapes do not fit dst [T,D], base [T,D], y [N,D], s [T], idx [N]");
  if (check_idx(ex, op, idx, T)) return -1;
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, 2, dst->shape);
  if (!y) return -1;
  memcpy(y->data, dst->data, sizeof(float) * (size_t)dst->numel);
  gate_rows(y->data, base->data, yv->data, s->data, idx->data, N, D, weighted, alpha);
  return 0;
}

static int exec_count_add(mor_exec *ex, const mor_op *op) {
  mor_rt *d = mor_ref_arg(ex, op, 0, MOR_I32, 1), *idx = mor_ref_arg(ex, op, 1, MOR_I32, 1);
  if (!d || !idx || check_idx(ex, op, idx, d->shape[0])) return -1;
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_I32, 1, d->shape);
  if (!y) return -1;
  memcpy(y->data, d->data, sizeof(int32_t) * (size_t)d->numel);
  const int32_t *ix = idx->data;
  for (int64_t i = 0; i < idx->numel; i++) ((int32_t *)y->data)[ix[i]]++;
  return 0;
}

static int exec_iota(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, -1, -1);
  if (!x) return -1;
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_I32, 1, x->shape);
  if (!y) return -1;
  for (int64_t t = 0; t < x->shape[0]; t++) ((int32_t *)y->data)[t] = (int32_t)t;
  return 0;
}

static int exec_fill(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, -1, -1);
  double v;
  if (!x || mor_ref_attr_float(ex, op, "value", &v)) return -1;
  mor_dtype dt = op->n_results ? op->results[0]->type.dtype : MOR_F32;
  if (dt != MOR_F32 && dt != MOR_I32) return mor_ref_fail(ex, op, "fill gives f32 or i32, not %s", mor_dtype_name(dt));
  mor_rt *y = mor_ref_res(ex, op, 0, dt, 1, x->shape);
  if (!y) return -1;
  for (int64_t t = 0; t < x->shape[0]; t++) {
    if (dt == MOR_F32) ((float *)y->data)[t] = (float)v;
    else ((int32_t *)y->data)[t] = (int32_t)v;
  }
  return 0;
}

/* ---- fused ops added by the passes (same numerics as the ops they replace) ---- */

static int exec_const(mor_exec *ex, const mor_op *op) {
  int64_t v;
  if (mor_ref_attr_int(ex, op, "value", &v)) return -1;
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_I64, 0, NULL);
  if (!y) return -1;
  *(int64_t *)y->data = v;
  return 0;
}

/* The rmsnorm (attrs norm, eps) of the M rows of x [., D]; NULL on error. */
static float *norm_rows(mor_exec *ex, const mor_op *op, const float *x, int64_t M, int64_t D) {
  const float *w = mor_ref_weight(ex, op, "norm", 0, 1, (int64_t[]){D}, NULL);
  double eps;
  if (!w || mor_ref_attr_float(ex, op, "eps", &eps)) return NULL;
  float *a = mor_xmalloc(sizeof(float) * (size_t)(M * D + 1));
  rmsnorm_rows(x, M, D, w, eps, a);
  return a;
}

/* a [M,K] W^T for the weight of attribute `attr` [N,K] into a new buffer; *N set. */
static float *matmul_attr(mor_exec *ex, const mor_op *op, const char *attr, const float *a, int64_t M, int64_t K,
                          int64_t N, int64_t *nout) {
  const mor_global *g;
  const float *W = mor_ref_weight(ex, op, attr, 0, 2, (int64_t[]){N, K}, &g);
  if (!W) return NULL;
  int64_t n = g->type.dims[0].n;
  float *y = mor_xmalloc(sizeof(float) * (size_t)(M * n + 1));
  matmul_f32(a, M, K, W, n, y);
  if (nout) *nout = n;
  return y;
}

static int exec_norm_matmul(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, MOR_F32, 2);
  if (!x) return -1;
  int64_t M = x->shape[0], K = x->shape[1], N;
  float *a = norm_rows(ex, op, x->data, M, K);
  if (!a) return -1;
  float *y = matmul_attr(ex, op, "weight", a, M, K, -1, &N);
  free(a);
  if (!y) return -1;
  mor_rt *r = mor_ref_res(ex, op, 0, MOR_F32, 2, (int64_t[]){M, N});
  if (r) memcpy(r->data, y, sizeof(float) * (size_t)(M * N));
  free(y);
  return r ? 0 : -1;
}

/* qkv: rows = x[idx], a = rmsnorm(rows); q = rope(a Wq^T); with caches also
 * kv_write(rope(a Wk^T), a Wv^T) into caches[depth]. */
static int exec_qkv(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, MOR_F32, 2), *pos = mor_ref_arg(ex, op, 1, MOR_I32, 1), *idx = NULL;
  if (!x || !pos) return -1;
  int64_t T = x->shape[0], D = x->shape[1], H, hd, KVH = 0, depth = 0;
  double theta;
  if (check_rows(ex, op, pos, T, "pos")) return -1;
  int next = 2;
  if (op->n_operands > next && op->operands[next]->type.dtype == MOR_I32) {
    if (!(idx = mor_ref_arg(ex, op, next++, MOR_I32, 1)) || check_idx(ex, op, idx, T)) return -1;
  }
  if (op->n_operands > next && (depth = mor_ref_depth(ex, op, next)) < 0) return -1;
  if (mor_ref_attr_int(ex, op, "heads", &H) || mor_ref_attr_int(ex, op, "head_dim", &hd) ||
      mor_ref_attr_float(ex, op, "theta", &theta))
    return -1;
  if (H <= 0 || hd <= 0 || hd % 2) return mor_ref_fail(ex, op, "heads and an even head_dim must be positive");
  int64_t M = idx ? idx->shape[0] : T;
  float *rows = mor_xmalloc(sizeof(float) * (size_t)(M * D + 1));
  int32_t *p = mor_xmalloc(sizeof(int32_t) * (size_t)(M + 1));
  for (int64_t i = 0; i < M; i++) {
    int64_t t = idx ? ((const int32_t *)idx->data)[i] : i;
    memcpy(rows + i * D, (const float *)x->data + t * D, sizeof(float) * (size_t)D);
    p[i] = ((const int32_t *)pos->data)[t];
  }
  float *a = norm_rows(ex, op, rows, M, D), *q = NULL, *k = NULL, *v = NULL;
  int rc = -1;
  if (!a || !(q = matmul_attr(ex, op, "wq", a, M, D, H * hd, NULL))) goto done;
  rope_rows(q, p, M, H, hd, theta, q);
  if (mor_op_attr(op, "caches")) {
    int none;
    const mor_global *g;
    mor_kvstore *c = mor_ref_cache(ex, op, "caches", depth, &none, &g);
    if (!none) {
      if (!c || mor_ref_attr_int(ex, op, "kv_heads", &KVH)) goto done;
      if (KVH <= 0 || KVH * hd != c->width) {
        mor_ref_fail(ex, op, "kv_heads %lld * head_dim %lld does not fit cache @%s rows of %lld", (long long)KVH,
                     (long long)hd, MOR_SYM(g->name), (long long)c->width);
        goto done;
      }
      if (!(k = matmul_attr(ex, op, "wk", a, M, D, KVH * hd, NULL)) ||
          !(v = matmul_attr(ex, op, "wv", a, M, D, KVH * hd, NULL)))
        goto done;
      rope_rows(k, p, M, KVH, hd, theta, k);
      if (kv_append(ex, op, c, g, k, v, p, M)) goto done;
    }
  }
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, 2, (int64_t[]){M, H * hd});
  if (!y) goto done;
  memcpy(y->data, q, sizeof(float) * (size_t)(M * H * hd));
  rc = 0;
done:
  free(rows);
  free(p);
  free(a);
  free(q);
  free(k);
  free(v);
  return rc;
}

static int exec_gate_up(mor_exec *ex, const mor_op *op) {
  mor_rt *x = mor_ref_arg(ex, op, 0, MOR_F32, 2);
  if (!x) return -1;
  int64_t M = x->shape[0], D = x->shape[1], F;
  float *a = norm_rows(ex, op, x->data, M, D), *g = NULL, *u = NULL;
  int rc = -1;
  if (!a || !(g = matmul_attr(ex, op, "wg", a, M, D, -1, &F)) || !(u = matmul_attr(ex, op, "wu", a, M, D, F, NULL)))
    goto done;
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, 2, (int64_t[]){M, F});
  if (!y) goto done;
  silu_mul_f32(g, u, M * F, y->data);
  rc = 0;
done:
  free(a);
  free(g);
  free(u);
  return rc;
}

/* matmul_add: r[idx] + a W^T (r + a W^T without idx) */
static int exec_matmul_add(mor_exec *ex, const mor_op *op) {
  mor_rt *a = mor_ref_arg(ex, op, 0, MOR_F32, 2), *r = mor_ref_arg(ex, op, 1, MOR_F32, 2), *idx = NULL;
  if (!a || !r) return -1;
  int64_t M = a->shape[0], K = a->shape[1], N;
  if (op->n_operands > 2) {
    if (!(idx = mor_ref_arg(ex, op, 2, MOR_I32, 1)) || check_rows(ex, op, idx, M, "idx") ||
        check_idx(ex, op, idx, r->shape[0]))
      return -1;
  } else if (check_rows(ex, op, r, M, "r")) {
    return -1;
  }
  float *mm = matmul_attr(ex, op, "weight", a->data, M, K, -1, &N);
  if (!mm) return -1;
  if (r->shape[1] != N) {
    free(mm);
    return mor_ref_fail(ex, op, "r has %lld columns, the weight gives %lld", (long long)r->shape[1], (long long)N);
  }
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, 2, (int64_t[]){M, N});
  if (y) {
    float *out = y->data;
    for (int64_t i = 0; i < M; i++) {
      int64_t t = idx ? ((const int32_t *)idx->data)[i] : i;
      const float *rr = (const float *)r->data + t * N;
      for (int64_t j = 0; j < N; j++) out[i * N + j] = rr[j] + mm[i * N + j];
    }
  }
  free(mm);
  return y ? 0 : -1;
}

/* matmul_store: y = r + a W^T, stored into the rows idx of dst ("set") or
 * gated onto base there ("gate", like gate_add). */
static int exec_matmul_store(mor_exec *ex, const mor_op *op) {
  mor_rt *a = mor_ref_arg(ex, op, 0, MOR_F32, 2), *r = mor_ref_arg(ex, op, 1, MOR_F32, 2);
  mor_rt *dst = mor_ref_arg(ex, op, 2, MOR_F32, 2), *idx = mor_ref_arg(ex, op, 3, MOR_I32, 1);
  const char *mode = mor_ref_attr_str(ex, op, "mode");
  if (!a || !r || !dst || !idx || !mode) return -1;
  int64_t N = a->shape[0], K = a->shape[1], T = dst->shape[0], D = dst->shape[1];
  if (check_rows(ex, op, r, N, "r") || check_rows(ex, op, idx, N, "idx") || check_idx(ex, op, idx, T)) return -1;
  if (r->shape[1] != D) return mor_ref_fail(ex, op, "r and dst differ in columns");
  int gate = !strcmp(mode, "gate"), weighted = 0;
  mor_rt *base = NULL, *s = NULL;
  double alpha = 1.0;
  if (gate) {
    const char *gating = mor_ref_attr_str(ex, op, "gating");
    if (!(base = mor_ref_arg(ex, op, 4, MOR_F32, 2)) || !(s = mor_ref_arg(ex, op, 5, MOR_F32, 1)) || !gating)
      return -1;
    weighted = !strcmp(gating, "weighted");
    if (!weighted && strcmp(gating, "none"))
      return mor_ref_fail(ex, op, "unknown gating '%s' (weighted, none)", gating);
    if (weighted && mor_ref_attr_float(ex, op, "alpha", &alpha)) return -1;
    if (!same_shape(base, dst) || s->shape[0] != T)
      return mor_ref_fail(ex, op, "base must be shaped like dst and s have its %lld rows", (long long)T);
  } else if (strcmp(mode, "set")) {
    return mor_ref_fail(ex, op, "unknown mode '%s' (set, gate)", mode);
  }
  float *mm = matmul_attr(ex, op, "weight", a->data, N, K, D, NULL);
  if (!mm) return -1;
  const float *rp = r->data;
  for (int64_t i = 0; i < N * D; i++) mm[i] = rp[i] + mm[i];
  mor_rt *y = mor_ref_res(ex, op, 0, MOR_F32, 2, dst->shape);
  if (y) {
    memcpy(y->data, dst->data, sizeof(float) * (size_t)dst->numel);
    const int32_t *ix = idx->data;
    if (gate) {
      gate_rows(y->data, base->data, mm, s->data, ix, N, D, weighted, alpha);
    } else {
      for (int64_t i = 0; i < N; i++) memcpy((float *)y->data + ix[i] * D, mm + i * D, sizeof(float) * (size_t)D);
    }
  }
  free(mm);
  return y ? 0 : -1;
}

int mor_ref_exec_op(mor_exec *ex, const mor_op *op) {
  switch (op->code) {
  case MOR_OP_EMBED: return exec_embed(ex, op);
  case MOR_OP_RMSNORM: return exec_rmsnorm(ex, op);
  case MOR_OP_MATMUL: return exec_matmul(ex, op);
  case MOR_OP_ROPE: return exec_rope(ex, op);
  case MOR_OP_KV_WRITE: return exec_kv_write(ex, op);
  case MOR_OP_ATTENTION: return exec_attention(ex, op);
  case MOR_OP_SILU_MUL: return exec_silu_mul(ex, op);
  case MOR_OP_ADD: return exec_add(ex, op);
  case MOR_OP_ROUTER: return exec_router(ex, op);
  case MOR_OP_SELECT: return exec_select(ex, op);
  case MOR_OP_TC_ROUTE: return exec_tc_route(ex, op);
  case MOR_OP_WHERE: return exec_where(ex, op);
  case MOR_OP_GATHER: return exec_gather(ex, op);
  case MOR_OP_SCATTER: return exec_scatter(ex, op);
  case MOR_OP_GATE_ADD: return exec_gate_add(ex, op);
  case MOR_OP_COUNT_ADD: return exec_count_add(ex, op);
  case MOR_OP_IOTA: return exec_iota(ex, op);
  case MOR_OP_FILL: return exec_fill(ex, op);
  case MOR_OP_CONST: return exec_const(ex, op);
  case MOR_OP_NORM_MATMUL: return exec_norm_matmul(ex, op);
  case MOR_OP_QKV: return exec_qkv(ex, op);
  case MOR_OP_GATE_UP: return exec_gate_up(ex, op);
  case MOR_OP_MATMUL_ADD: return exec_matmul_add(ex, op);
  case MOR_OP_MATMUL_STORE: return exec_matmul_store(ex, op);
  default: /* control flow (recur, call, yield, return) is run by ref.c */
    break;
  }
  return mor_ref_fail(ex, op, "op '%s' is not supported by the reference interpreter",
                      op->code < MOR_OP_COUNT ? mor_ops[op->code].name : "?");
}

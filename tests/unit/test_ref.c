/* test_ref.c: the reference interpreter, op by op, against values computed
 * here by independent formulas; plus recur, the forward entry (chunked ==
 * unchunked, KV state per sequence) and its error cases. */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ref/ref.h"

/* ---- helpers ----------------------------------------------------------------- */

static mor_module *parse(const char *text) {
  mor_err e = {{0}};
  mor_module *m = mor_parse_module(text, strlen(text), "t.mor", &e);
  ck_assert_msg(m != NULL, "parse: %s", e.msg);
  return m;
}

typedef struct wspec {
  const char *name;
  mor_dtype dt;
  int rank;
  int64_t shape[4];
  const void *data;
} wspec;

static int tensor_cmp(const void *a, const void *b) {
  return strcmp(((const mor_tensor *)a)->name, ((const mor_tensor *)b)->name);
}

/* An in-memory mor_weights (no files), sorted by name like the real one. */
static mor_weights *mkweights(int n, const wspec *ws) {
  mor_weights *w = mor_xcalloc(1, sizeof *w);
  w->n_tensors = n;
  w->tensors = mor_xcalloc((size_t)n + 1, sizeof *w->tensors);
  for (int i = 0; i < n; i++) {
    mor_tensor *t = &w->tensors[i];
    t->name = mor_xstrdup(ws[i].name);
    t->dtype = ws[i].dt;
    t->rank = ws[i].rank;
    t->numel = 1;
    for (int d = 0; d < ws[i].rank; d++) t->shape[d] = ws[i].shape[d], t->numel *= ws[i].shape[d];
    t->data = ws[i].data;
    t->nbytes = (uint64_t)t->numel * (uint64_t)mor_dtype_size(t->dtype);
    t->file = "mem.safetensors";
  }
  qsort(w->tensors, (size_t)n, sizeof *w->tensors, tensor_cmp);
  return w;
}

static mor_ref *mkref(const mor_module *m, const mor_weights *w) {
  mor_err e = {{0}};
  mor_ref *r = mor_ref_new(m, w, &e);
  ck_assert_msg(r != NULL, "mor_ref_new: %s", e.msg);
  return r;
}

static mor_ref_tensor tf(float *d, int rank, int64_t d0, int64_t d1) {
  mor_ref_tensor t = {.dtype = MOR_F32, .rank = rank, .shape = {d0, d1}, .data = d};
  return t;
}
static mor_ref_tensor ti(int32_t *d, int64_t n) {
  mor_ref_tensor t = {.dtype = MOR_I32, .rank = 1, .shape = {n}, .data = d};
  return t;
}
static mor_ref_tensor tscalar(int64_t *v) {
  mor_ref_tensor t = {.dtype = MOR_I64, .rank = 0, .data = v};
  return t;
}

static void call_ok(mor_ref *r, mor_ref_seq *s, const char *fn, int na, mor_ref_tensor *args, int nr,
                    mor_ref_tensor *res) {
  mor_err e = {{0}};
  int rc = mor_ref_call(r, s, fn, na, args, nr, res, &e);
  ck_assert_msg(rc == 0, "@%s: %s", fn, e.msg);
}

/* The call fails and its message contains `want`. */
static void call_fails(mor_ref *r, mor_ref_seq *s, const char *fn, int na, mor_ref_tensor *args, int nr,
                       mor_ref_tensor *res, const char *want) {
  mor_err e = {{0}};
  int rc = mor_ref_call(r, s, fn, na, args, nr, res, &e);
  ck_assert_msg(rc != 0, "@%s succeeded, expected an error with '%s'", fn, want);
  ck_assert_msg(strstr(e.msg, want) != NULL, "error '%s' lacks '%s'", e.msg, want);
}

static void near(const float *got, const double *want, int64_t n, double tol) {
  for (int64_t i = 0; i < n; i++)
    ck_assert_msg(fabs(got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i])), "element %lld: got %.9g, want %.9g",
                  (long long)i, got[i], want[i]);
}

static void ints_eq(const mor_ref_tensor *t, int64_t n, const int32_t *want) {
  ck_assert_int_eq(t->dtype, MOR_I32);
  ck_assert_int_eq(t->rank, 1);
  ck_assert_int_eq(t->shape[0], n);
  for (int64_t i = 0; i < n; i++)
    ck_assert_msg(((int32_t *)t->data)[i] == want[i], "element %lld: got %d, want %d", (long long)i,
                  ((int32_t *)t->data)[i], want[i]);
}

/* deterministic pseudo-random floats in [-1, 1) */
static float frand(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* ---- matmul, rmsnorm, embed ---------------------------------------------------- */

START_TEST(test_matmul_2x3) {
  mor_module *m = parse("module @t {\n  sym M <= 8\n  weight @W : f32[4, 3]\n"
                        "  func @f(%x: f32[M, 3]) -> (f32[M, 4]) {\n"
                        "    %y = matmul %x {weight = @W} : f32[M, 4]\n    return %y\n  }\n}\n");
  float W[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
  mor_weights *w = mkweights(1, (wspec[]){{"W", MOR_F32, 2, {4, 3}, W}});
  mor_ref *r = mkref(m, w);
  float x[6] = {1, 2, 3, 4, 5, 6};
  mor_ref_tensor a = tf(x, 2, 2, 3), y;
  call_ok(r, NULL, "f", 1, &a, 1, &y);
  ck_assert_int_eq(y.rank, 2);
  ck_assert_int_eq(y.shape[0], 2);
  ck_assert_int_eq(y.shape[1], 4);
  near(y.data, (double[]){1, 2, 3, 6, 4, 5, 6, 15}, 8, 0);
  mor_ref_tensor_free(&y);
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

/* rows that exercise the 4-row blocks, the row remainder and an odd K */
START_TEST(test_matmul_blocked) {
  enum { M = 7, K = 13, N = 5 };
  mor_module *m = parse("module @t {\n  sym M <= 8\n  weight @W : f32[5, 13]\n"
                        "  func @f(%x: f32[M, 13]) -> (f32[M, 5]) {\n"
                        "    %y = matmul %x {weight = @W} : f32[M, 5]\n    return %y\n  }\n}\n");
  float W[N * K], x[M * K];
  uint32_t s = 1;
  for (int i = 0; i < N * K; i++) W[i] = frand(&s);
  for (int i = 0; i < M * K; i++) x[i] = frand(&s);
  mor_weights *w = mkweights(1, (wspec[]){{"W", MOR_F32, 2, {N, K}, W}});
  mor_ref *r = mkref(m, w);
  mor_ref_tensor a = tf(x, 2, M, K), y;
  call_ok(r, NULL, "f", 1, &a, 1, &y);
  double want[M * N];
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double acc = 0;
      for (int k = 0; k < K; k++) acc += (double)x[i * K + k] * W[j * K + k];
      want[i * N + j] = acc;
    }
  near(y.data, want, M * N, 1e-6);
  mor_ref_tensor_free(&y);
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

START_TEST(test_rmsnorm) {
  mor_module *m = parse("module @t {\n  sym M <= 4\n  weight @w : f32[4]\n"
                        "  func @f(%x: f32[M, 4]) -> (f32[M, 4]) {\n"
                        "    %y = rmsnorm %x {weight = @w, eps = 1.0e-5} : f32[M, 4]\n    return %y\n  }\n}\n");
  float wv[4] = {1, 0.5f, 2, -1};
  mor_weights *w = mkweights(1, (wspec[]){{"w", MOR_F32, 1, {4}, wv}});
  mor_ref *r = mkref(m, w);
  float x[8] = {1, 2, 3, 4, 0, 0, 0, 0};
  mor_ref_tensor a = tf(x, 2, 2, 4), y;
  call_ok(r, NULL, "f", 1, &a, 1, &y);
  double inv = 1.0 / sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-5); /* mean of squares 7.5 */
  near(y.data, (double[]){1 * inv, 0.5 * 2 * inv, 2 * 3 * inv, -4 * inv, 0, 0, 0, 0}, 8, 1e-6);
  mor_ref_tensor_free(&y);
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

/* embed decodes rows of a bf16 table; ids outside [0, V) are errors */
START_TEST(test_embed_bf16) {
  mor_module *m = parse("module @t {\n  sym T <= 4\n  weight @E : bf16[3, 2]\n"
                        "  func @f(%t: i32[T]) -> (f32[T, 2]) {\n"
                        "    %y = embed %t {weight = @E} : f32[T, 2]\n    return %y\n  }\n}\n");
  float vals[6] = {0.1f, -2.5f, 3.0f, 1.0f / 3.0f, 7.0f, -0.75f};
  uint16_t E[6];
  for (int i = 0; i < 6; i++) E[i] = mor_f32_to_bf16(vals[i]);
  mor_weights *w = mkweights(1, (wspec[]){{"E", MOR_BF16, 2, {3, 2}, E}});
  mor_ref *r = mkref(m, w);
  int32_t ids[3] = {2, 0, 2};
  mor_ref_tensor a = ti(ids, 3), y;
  call_ok(r, NULL, "f", 1, &a, 1, &y);
  int rows[3] = {2, 0, 2};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++)
      ck_assert_float_eq(((float *)y.data)[i * 2 + j], mor_bf16_to_f32(E[rows[i] * 2 + j]));
  mor_ref_tensor_free(&y);
  int32_t bad[2] = {1, 3};
  a = ti(bad, 2);
  call_fails(r, NULL, "f", 1, &a, 1, &y, "token 1: id 3 out of range [0, 3)");
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

/* ---- rope, kv_write, attention ------------------------------------------------- */

START_TEST(test_rope) {
  mor_module *m = parse("module @t {\n  sym M <= 4\n"
                        "  func @f(%x: f32[M, 8], %p: i32[M]) -> (f32[M, 8]) {\n"
                        "    %y = rope %x, %p {heads = 2, head_dim = 4, theta = 10000.0} : f32[M, 8]\n"
                        "    return %y\n  }\n}\n");
  mor_ref *r = mkref(m, NULL);
  float x[16] = {1, 2, 3, 4, -1, 0.5f, 2, -3, 1, 2, 3, 4, -1, 0.5f, 2, -3};
  int32_t pos[2] = {0, 1};
  mor_ref_tensor a[2] = {tf(x, 2, 2, 8), ti(pos, 2)}, y;
  call_ok(r, NULL, "f", 2, a, 1, &y);
  double want[16];
  for (int i = 0; i < 8; i++) want[i] = x[i]; /* position 0: identity */
  /* position 1: pair (x[i], x[i+2]) of each head rotated by 1 * 10000^(-2i/4) */
  double ang[2] = {1.0, 0.01};
  for (int h = 0; h < 2; h++)
    for (int i = 0; i < 2; i++) {
      double x1 = x[8 + h * 4 + i], x2 = x[8 + h * 4 + i + 2];
      want[8 + h * 4 + i] = x1 * cos(ang[i]) - x2 * sin(ang[i]);
      want[8 + h * 4 + i + 2] = x2 * cos(ang[i]) + x1 * sin(ang[i]);
    }
  near(y.data, want, 16, 1e-6);
  mor_ref_tensor_free(&y);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

static const char *attn_ir =
    "module @t {\n  sym M <= 8\n  sym Q <= 8\n"
    "  kv @c : f32[8, 1, 2] {layer = 0, depth = 0}\n"
    "  func @w(%k: f32[M, 2], %v: f32[M, 2], %p: i32[M]) -> (i32[M]) {\n"
    "    kv_write %k, %v, %p {caches = [@c]}\n"
    "    %z = iota %p : i32[M]\n    return %z\n  }\n"
    "  func @a(%q: f32[Q, 4], %qp: i32[Q]) -> (f32[Q, 4]) {\n"
    "    %o = attention %q, %qp {caches = [@c], heads = 2, kv_heads = 1, head_dim = 2} : f32[Q, 4]\n"
    "    return %o\n  }\n}\n";

static void kv_put(mor_ref *r, mor_ref_seq *s, int64_t n, float *k, float *v, int32_t *p) {
  mor_ref_tensor a[3] = {tf(k, 2, n, 2), tf(v, 2, n, 2), ti(p, n)}, z;
  call_ok(r, s, "w", 3, a, 1, &z);
  mor_ref_tensor_free(&z);
}

/* one cached entry: every head returns its v */
START_TEST(test_attention_one_entry) {
  mor_module *m = parse(attn_ir);
  mor_ref *r = mkref(m, NULL);
  mor_ref_seq *s = mor_ref_seq_new(r);
  float k[2] = {1, 2}, v[2] = {3, -4};
  kv_put(r, s, 1, k, v, (int32_t[]){0});
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "c"), 1);
  float q[4] = {0.5f, 0.1f, -1, 2};
  mor_ref_tensor a[2] = {tf(q, 2, 1, 4), ti((int32_t[]){0}, 1)}, y;
  call_ok(r, s, "a", 2, a, 1, &y);
  near(y.data, (double[]){3, -4, 3, -4}, 4, 1e-7);
  mor_ref_tensor_free(&y);
  mor_ref_seq_free(s);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

/* causal softmax over entries with position <= the row's, across two calls */
START_TEST(test_attention_causal) {
  mor_module *m = parse(attn_ir);
  mor_ref *r = mkref(m, NULL);
  mor_ref_seq *s = mor_ref_seq_new(r);
  float k[8] = {1, 0, 0, 1, 1, 1, -1, 2}, v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  int32_t p[4] = {0, 1, 2, 3};
  kv_put(r, s, 3, k, v, p);
  float q[12] = {1, 2, 0.5f, -1, 1, 2, 0.5f, -1, 1, 2, 0.5f, -1};
  int32_t qp[3] = {0, 1, 2};
  mor_ref_tensor a[2] = {tf(q, 2, 3, 4), ti(qp, 3)}, y;
  call_ok(r, s, "a", 2, a, 1, &y);
  double want[12];
  for (int row = 0; row < 3; row++)
    for (int h = 0; h < 2; h++) {
      double sc[3], mx = -1e300, sum = 0;
      for (int e = 0; e <= row; e++) {
        sc[e] = (q[row * 4 + h * 2] * k[e * 2] + q[row * 4 + h * 2 + 1] * k[e * 2 + 1]) / sqrt(2.0);
        mx = fmax(mx, sc[e]);
      }
      for (int e = 0; e <= row; e++) sum += exp(sc[e] - mx);
      for (int d = 0; d < 2; d++) {
        double o = 0;
        for (int e = 0; e <= row; e++) o += exp(sc[e] - mx) / sum * v[e * 2 + d];
        want[row * 4 + h * 2 + d] = o;
      }
    }
  near(y.data, want, 12, 1e-6);
  mor_ref_tensor_free(&y);
  /* a later entry (position 3) is invisible to rows at positions 0..2 */
  kv_put(r, s, 1, k + 6, v + 6, p + 3);
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "c"), 4);
  call_ok(r, s, "a", 2, a, 1, &y);
  near(y.data, want, 12, 1e-6);
  mor_ref_tensor_free(&y);
  /* a fresh sequence has its own, empty cache */
  mor_ref_seq *s2 = mor_ref_seq_new(r);
  call_fails(r, s2, "a", 2, a, 1, &y, "has no entry at or before it");
  mor_ref_seq_free(s2);
  mor_ref_seq_free(s);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

/* GQA: query head h reads KV head h / (heads / kv_heads) */
START_TEST(test_attention_gqa) {
  mor_module *m = parse("module @t {\n  sym M <= 8\n"
                        "  kv @c : f32[8, 2, 2] {layer = 0, depth = 0}\n"
                        "  func @f(%k: f32[M, 4], %v: f32[M, 4], %p: i32[M], %q: f32[M, 8]) -> (f32[M, 8]) {\n"
                        "    kv_write %k, %v, %p {caches = [@c]}\n"
                        "    %o = attention %q, %p {caches = [@c], heads = 4, kv_heads = 2, head_dim = 2} : f32[M, 8]\n"
                        "    return %o\n  }\n}\n");
  mor_ref *r = mkref(m, NULL);
  mor_ref_seq *s = mor_ref_seq_new(r);
  float k[4] = {1, 1, 1, 1}, v[4] = {1, 2, 3, 4}, q[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  mor_ref_tensor a[4] = {tf(k, 2, 1, 4), tf(v, 2, 1, 4), ti((int32_t[]){5}, 1), tf(q, 2, 1, 8)}, y;
  call_ok(r, s, "f", 4, a, 1, &y);
  near(y.data, (double[]){1, 2, 1, 2, 3, 4, 3, 4}, 8, 1e-7);
  mor_ref_tensor_free(&y);
  mor_ref_seq_free(s);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

/* kv_write picks caches[depth]; @none skips; an alias reads its target */
START_TEST(test_kv_depth_none_alias) {
  mor_module *m = parse("module @t {\n  sym M <= 8\n"
                        "  kv @c0 : f32[8, 1, 2] {layer = 1, depth = 0}\n"
                        "  kv @c1 : f32[8, 1, 2] {layer = 2, depth = 1, alias = @c0}\n"
                        "  kv @d1 : f32[8, 1, 2] {layer = 2, depth = 1}\n"
                        "  func @w(%k: f32[M, 2], %p: i32[M], %d: i64[]) -> (i32[M]) {\n"
                        "    kv_write %k, %k, %p, %d {caches = [@c0, @none, @d1]}\n"
                        "    %z = iota %p : i32[M]\n    return %z\n  }\n"
                        "  func @a(%q: f32[M, 2], %p: i32[M], %d: i64[]) -> (f32[M, 2]) {\n"
                        "    %o = attention %q, %p, %d {caches = [@c0, @c1, @d1], heads = 1, kv_heads = 1, "
                        "head_dim = 2} : f32[M, 2]\n    return %o\n  }\n}\n");
  mor_ref *r = mkref(m, NULL);
  mor_ref_seq *s = mor_ref_seq_new(r);
  float k[2] = {3, 4};
  int32_t p[1] = {0};
  int64_t d;
  mor_ref_tensor a[3] = {tf(k, 2, 1, 2), ti(p, 1), tscalar(&d)}, z;
  d = 0;
  call_ok(r, s, "w", 3, a, 1, &z);
  mor_ref_tensor_free(&z);
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "c0"), 1);
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "c1"), 1); /* shares c0's storage */
  d = 1;
  call_ok(r, s, "w", 3, a, 1, &z);
  mor_ref_tensor_free(&z);
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "c0"), 1);
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "d1"), 0);
  float q[2] = {1, 0};
  mor_ref_tensor qa[3] = {tf(q, 2, 1, 2), ti(p, 1), tscalar(&d)}, y;
  call_ok(r, s, "a", 3, qa, 1, &y); /* depth 1 reads c1 = c0's entry */
  near(y.data, (double[]){3, 4}, 2, 1e-7);
  mor_ref_tensor_free(&y);
  d = 2;
  call_fails(r, s, "a", 3, qa, 1, &y, "cache @d1 has no entry");
  call_ok(r, s, "w", 3, a, 1, &z);
  mor_ref_tensor_free(&z);
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "d1"), 1);
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "c0"), 1);
  d = 3;
  call_fails(r, s, "w", 3, a, 1, &z, "'caches' has 3 entries, no entry for depth 3");
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "nope"), -1);
  mor_ref_seq_free(s);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

/* ---- elementwise and routing ------------------------------------------------- */

START_TEST(test_silu_mul_add) {
  mor_module *m = parse("module @t {\n  sym M <= 4\n"
                        "  func @f(%g: f32[M, 3], %u: f32[M, 3]) -> (f32[M, 3], f32[M, 3]) {\n"
                        "    %y = silu_mul %g, %u : f32[M, 3]\n    %z = add %g, %u : f32[M, 3]\n"
                        "    return %y, %z\n  }\n}\n");
  mor_ref *r = mkref(m, NULL);
  float g[3] = {-1, 0, 2}, u[3] = {2, 3, 0.5f};
  mor_ref_tensor a[2] = {tf(g, 2, 1, 3), tf(u, 2, 1, 3)}, y[2];
  call_ok(r, NULL, "f", 2, a, 2, y);
  double want[3];
  for (int i = 0; i < 3; i++) want[i] = g[i] / (1 + exp(-g[i])) * u[i];
  near(y[0].data, want, 3, 1e-6);
  near(y[1].data, (double[]){1, 3, 2.5}, 3, 0);
  mor_ref_tensor_free(&y[0]);
  mor_ref_tensor_free(&y[1]);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

static double sigm(double x) { return 1 / (1 + exp(-x)); }

START_TEST(test_router) {
  mor_module *m = parse(
      "module @t {\n  sym M <= 4\n"
      "  weight @r0 : f32[1, 3]\n  weight @r1 : f32[1, 3]\n  weight @s : f32[3, 3]\n"
      "  weight @m1 : f32[6, 3]\n  weight @m2 : f32[1, 6]\n"
      "  func @f(%x: f32[M, 3], %d: i64[]) -> (f32[M], f32[M], f32[M, 3], f32[M]) {\n"
      "    %a = router %x, %d {weights = [@r0, @r1], kind = \"linear\", act = \"sigmoid\", temperature = 2.0, "
      "outputs = 1} : f32[M]\n"
      "    %b = router %x {weights = [@r0], kind = \"linear\", act = \"tanh\", temperature = 1.0, outputs = 1} : f32[M]\n"
      "    %c = router %x {weights = [@s], kind = \"linear\", act = \"softmax\", temperature = 1.0, outputs = 3} "
      ": f32[M, 3]\n"
      "    %e = router %x {weights = [@m1], weights2 = [@m2], kind = \"mlp\", act = \"sigmoid\", temperature = 0.5, "
      "outputs = 1} : f32[M]\n"
      "    return %a, %b, %c, %e\n  }\n}\n");
  float r0[3] = {0.5f, -1, 2}, r1[3] = {1, 1, 1}, sw[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, m1[18], m2[6];
  uint32_t seed = 7;
  for (int i = 0; i < 18; i++) m1[i] = frand(&seed);
  for (int i = 0; i < 6; i++) m2[i] = frand(&seed);
  mor_weights *w = mkweights(5, (wspec[]){{"r0", MOR_F32, 2, {1, 3}, r0},
                                          {"r1", MOR_F32, 2, {1, 3}, r1},
                                          {"s", MOR_F32, 2, {3, 3}, sw},
                                          {"m1", MOR_F32, 2, {6, 3}, m1},
                                          {"m2", MOR_F32, 2, {1, 6}, m2}});
  mor_ref *r = mkref(m, w);
  float x[6] = {1, 2, 3, -1, 0.5f, 0.25f};
  int64_t d = 1;
  mor_ref_tensor a[2] = {tf(x, 2, 2, 3), tscalar(&d)}, y[4];
  call_ok(r, NULL, "f", 2, a, 4, y);
  double wa[2], wb[2], wc[6], we[2];
  for (int t = 0; t < 2; t++) {
    const float *xr = x + t * 3;
    wa[t] = sigm((xr[0] + xr[1] + xr[2]) / 2.0); /* depth 1: r1 */
    wb[t] = tanh(0.5 * xr[0] - xr[1] + 2 * xr[2]);
    double mx = fmax(xr[0], fmax(xr[1], xr[2])), sum = 0;
    for (int o = 0; o < 3; o++) sum += exp(xr[o] - mx);
    for (int o = 0; o < 3; o++) wc[t * 3 + o] = exp(xr[o] - mx) / sum;
    double z = 0;
    for (int j = 0; j < 6; j++) {
      double h = 0;
      for (int k = 0; k < 3; k++) h += xr[k] / 0.5 * m1[j * 3 + k];
      z += 0.5 * h * (1 + erf(h / sqrt(2.0))) * m2[j];
    }
    we[t] = sigm(z);
  }
  ck_assert_int_eq(y[0].rank, 1);
  near(y[0].data, wa, 2, 1e-6);
  near(y[1].data, wb, 2, 1e-6);
  ck_assert_int_eq(y[2].rank, 2);
  near(y[2].data, wc, 6, 1e-6);
  near(y[3].data, we, 2, 1e-6);
  for (int i = 0; i < 4; i++) mor_ref_tensor_free(&y[i]);
  d = 0;
  call_ok(r, NULL, "f", 2, a, 4, y);
  for (int t = 0; t < 2; t++) wa[t] = sigm((0.5 * x[t * 3] - x[t * 3 + 1] + 2 * x[t * 3 + 2]) / 2.0);
  near(y[0].data, wa, 2, 1e-6);
  for (int i = 0; i < 4; i++) mor_ref_tensor_free(&y[i]);
  d = 2;
  call_fails(r, NULL, "f", 2, a, 4, y, "'weights' has 2 entries, no entry for depth 2");
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

static const char *select_ir_fmt =
    "module @t {\n  sym T <= 8\n  sym A <= 8\n  sym C <= 8\n"
    "  kv @c : f32[8, 1, 2] {layer = 0, depth = 0}\n"
    "  func @w(%%k: f32[T, 2], %%p: i32[T]) -> (i32[T]) {\n"
    "    kv_write %%k, %%k, %%p {caches = [@c]}\n    %%z = iota %%p : i32[T]\n    return %%z\n  }\n"
    "  func @f(%%s: f32[T], %%a: i32[A], %%d: i64[]) -> (i32[C]) {\n"
    "    %%c = select %%s, %%a, %%d {mode = \"%s\", capacity = [1.0, 0.6, 0.1, 0.5], threshold = 0.5, "
    "alpha = %s} : i32[C]\n    return %%c\n  }\n}\n";

static mor_module *select_module(const char *mode, const char *alpha) {
  char text[2048];
  snprintf(text, sizeof text, select_ir_fmt, mode, alpha);
  return parse(text);
}

static void run_select(mor_ref *r, mor_ref_seq *s, float *sv, int64_t T, int32_t *act, int64_t A, int64_t d,
                       int64_t n, const int32_t *want) {
  mor_ref_tensor a[3] = {tf(sv, 1, T, 0), ti(act, A), tscalar(&d)}, y;
  call_ok(r, s, "f", 3, a, 1, &y);
  ints_eq(&y, n, want);
  mor_ref_tensor_free(&y);
}

START_TEST(test_select_threshold) {
  mor_module *m = select_module("threshold", "0.1");
  mor_ref *r = mkref(m, NULL);
  float s[5] = {0.4f, 0.5f, 0.9f, 0.1f, 0.7f};
  int32_t act[4] = {0, 1, 2, 4};
  run_select(r, NULL, s, 5, act, 4, 0, 4, (int32_t[]){0, 1, 2, 4});  /* capacity 1.0: all active */
  run_select(r, NULL, s, 5, act, 4, 1, 3, (int32_t[]){1, 2, 4});     /* s >= 0.5, 0.5 included */
  run_select(r, NULL, s, 5, act + 2, 2, 1, 2, (int32_t[]){2, 4});    /* only active rows */
  run_select(r, NULL, s, 5, act, 0, 1, 0, NULL);                      /* nothing active */
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

START_TEST(test_select_top_k) {
  mor_module *m = select_module("top_k", "0.1");
  mor_ref *r = mkref(m, NULL);
  float s[5] = {0.3f, 0.8f, 0.8f, 0.1f, 0.5f};
  int32_t all[5] = {0, 1, 2, 3, 4};
  run_select(r, NULL, s, 5, all, 5, 1, 3, (int32_t[]){1, 2, 4}); /* k = floor(0.6 * 5) = 3 */
  run_select(r, NULL, s, 5, all, 5, 2, 1, (int32_t[]){1});       /* k = max(1, floor(0.5)) = 1, tie -> lower */
  run_select(r, NULL, s, 5, all, 5, 0, 5, all);                  /* capacity 1.0 */
  run_select(r, NULL, s, 5, (int32_t[]){0, 3}, 2, 1, 2, (int32_t[]){0, 3}); /* k capped at 2 active */
  run_select(r, NULL, s, 5, (int32_t[]){0, 3, 4}, 3, 3, 2, (int32_t[]){0, 4}); /* floor(2.5) = 2 of T = 5 */
  float eq[5] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
  run_select(r, NULL, eq, 5, all, 5, 1, 3, (int32_t[]){0, 1, 2}); /* ties to the lower position */
  mor_ref_free(r);
  mor_module_free(m);
  /* a negative alpha ranks by -s: the lowest scores win */
  m = select_module("top_k", "-1.0");
  r = mkref(m, NULL);
  run_select(r, NULL, s, 5, all, 5, 1, 3, (int32_t[]){0, 3, 4});
  /* top_k is for whole sequences: an error once the sequence has cached positions */
  mor_ref_seq *sq = mor_ref_seq_new(r);
  run_select(r, sq, s, 5, all, 5, 1, 3, (int32_t[]){0, 3, 4});
  float k[2] = {1, 1};
  mor_ref_tensor wa[2] = {tf(k, 2, 1, 2), ti((int32_t[]){0}, 1)}, z;
  call_ok(r, sq, "w", 2, wa, 1, &z);
  mor_ref_tensor_free(&z);
  int64_t d = 1;
  mor_ref_tensor a[3] = {tf(s, 1, 5, 0), ti(all, 5), tscalar(&d)}, y;
  call_fails(r, sq, "f", 3, a, 1, &y, "top_k routing scores whole sequences only");
  mor_ref_seq_free(sq);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

START_TEST(test_tc_route_where) {
  mor_module *m = parse("module @t {\n  sym T <= 8\n  sym N <= 8\n"
                        "  func @f(%p: f32[T, 3]) -> (i32[T], f32[T], i32[T], f32[T]) {\n"
                        "    %d, %w = tc_route %p {alpha = 2.0} : i32[T], f32[T]\n"
                        "    %e, %v = tc_route %p {alpha = -1.0} : i32[T], f32[T]\n"
                        "    return %d, %w, %e, %v\n  }\n"
                        "  func @g(%d: i32[T], %k: i64[]) -> (i32[N], i32[N]) {\n"
                        "    %a = where %d, %k {cmp = \"ge\"} : i32[N]\n"
                        "    %b = where %d, %k {cmp = \"eq\"} : i32[N]\n    return %a, %b\n  }\n}\n");
  mor_ref *r = mkref(m, NULL);
  float p[6] = {0.2f, 0.5f, 0.5f, 0.9f, 0.1f, 0.0f};
  mor_ref_tensor a = tf(p, 2, 2, 3), y[4];
  call_ok(r, NULL, "f", 1, &a, 4, y);
  ints_eq(&y[0], 2, (int32_t[]){1, 0}); /* tie between 1 and 2 -> 1 */
  near(y[1].data, (double[]){2 * 0.5f, 2 * 0.9f}, 2, 1e-7);
  ints_eq(&y[2], 2, (int32_t[]){0, 2}); /* argmax of -p */
  near(y[3].data, (double[]){-0.2f, 0.0}, 2, 1e-7);
  for (int i = 0; i < 4; i++) mor_ref_tensor_free(&y[i]);
  int32_t d[4] = {2, 0, 1, 3};
  int64_t k = 1;
  mor_ref_tensor b[2] = {ti(d, 4), tscalar(&k)};
  call_ok(r, NULL, "g", 2, b, 2, y);
  ints_eq(&y[0], 3, (int32_t[]){0, 2, 3});
  ints_eq(&y[1], 1, (int32_t[]){2});
  mor_ref_tensor_free(&y[0]);
  mor_ref_tensor_free(&y[1]);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

/* ---- row movement -------------------------------------------------------------- */

START_TEST(test_gather_scatter) {
  mor_module *m = parse("module @t {\n  sym T <= 8\n  sym N <= 8\n"
                        "  func @f(%x: f32[T, 2], %i: i32[N], %y: f32[N, 2], %t: i32[T]) -> (f32[N, 2], f32[T, 2], "
                        "i32[N]) {\n"
                        "    %g = gather %x, %i : f32[N, 2]\n    %s = scatter %x, %i, %y : f32[T, 2]\n"
                        "    %h = gather %t, %i : i32[N]\n    return %g, %s, %h\n  }\n}\n");
  mor_ref *r = mkref(m, NULL);
  float x[8] = {0, 1, 10, 11, 20, 21, 30, 31}, yv[4] = {-1, -2, -3, -4};
  int32_t idx[2] = {3, 1}, t[4] = {5, 6, 7, 8};
  mor_ref_tensor a[4] = {tf(x, 2, 4, 2), ti(idx, 2), tf(yv, 2, 2, 2), ti(t, 4)}, y[3];
  call_ok(r, NULL, "f", 4, a, 3, y);
  near(y[0].data, (double[]){30, 31, 10, 11}, 4, 0);
  near(y[1].data, (double[]){0, 1, -3, -4, 20, 21, -1, -2}, 8, 0);
  ints_eq(&y[2], 2, (int32_t[]){8, 6});
  for (int i = 0; i < 3; i++) mor_ref_tensor_free(&y[i]);
  idx[0] = 4;
  call_fails(r, NULL, "f", 4, a, 3, y, "index 0 is row 4, outside [0, 4)");
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

START_TEST(test_gate_add) {
  mor_module *m = parse("module @t {\n  sym T <= 8\n  sym N <= 8\n"
                        "  func @f(%d: f32[T, 2], %b: f32[T, 2], %y: f32[N, 2], %s: f32[T], %i: i32[N]) -> "
                        "(f32[T, 2], f32[T, 2]) {\n"
                        "    %g = gate_add %d, %b, %y, %s, %i {alpha = 0.5, gating = \"weighted\"} : f32[T, 2]\n"
                        "    %h = gate_add %d, %b, %y, %s, %i {alpha = 0.5, gating = \"none\"} : f32[T, 2]\n"
                        "    return %g, %h\n  }\n}\n");
  mor_ref *r = mkref(m, NULL);
  float d[6] = {9, 9, 8, 8, 7, 7}, b[6] = {1, 2, 3, 4, 5, 6}, yv[4] = {10, 20, 30, 40}, s[3] = {0.2f, 0.4f, 0.8f};
  int32_t idx[2] = {0, 2};
  mor_ref_tensor a[5] = {tf(d, 2, 3, 2), tf(b, 2, 3, 2), tf(yv, 2, 2, 2), tf(s, 1, 3, 0), ti(idx, 2)}, y[2];
  call_ok(r, NULL, "f", 5, a, 2, y);
  double g0 = 0.5 * 0.2f, g2 = 0.5 * 0.8f;
  near(y[0].data, (double[]){1 + g0 * 10, 2 + g0 * 20, 8, 8, 5 + g2 * 30, 6 + g2 * 40}, 6, 1e-6);
  near(y[1].data, (double[]){11, 22, 8, 8, 35, 46}, 6, 0);
  mor_ref_tensor_free(&y[0]);
  mor_ref_tensor_free(&y[1]);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

START_TEST(test_count_iota_fill) {
  mor_module *m = parse("module @t {\n  sym T <= 8\n  sym N <= 8\n"
                        "  func @f(%d: i32[T], %i: i32[N], %x: f32[T, 2]) -> (i32[T], i32[T], f32[T], i32[T]) {\n"
                        "    %c = count_add %d, %i : i32[T]\n    %o = iota %x : i32[T]\n"
                        "    %f = fill %x {value = 2.5} : f32[T]\n    %g = fill %d {value = 3} : i32[T]\n"
                        "    return %c, %o, %f, %g\n  }\n}\n");
  mor_ref *r = mkref(m, NULL);
  int32_t d[3] = {0, 1, 2}, idx[2] = {0, 2};
  float x[6] = {0};
  mor_ref_tensor a[3] = {ti(d, 3), ti(idx, 2), tf(x, 2, 3, 2)}, y[4];
  call_ok(r, NULL, "f", 3, a, 4, y);
  ints_eq(&y[0], 3, (int32_t[]){1, 1, 3});
  ints_eq(&y[1], 3, (int32_t[]){0, 1, 2});
  ck_assert_int_eq(y[2].dtype, MOR_F32);
  near(y[2].data, (double[]){2.5, 2.5, 2.5}, 3, 0);
  ints_eq(&y[3], 3, (int32_t[]){3, 3, 3});
  for (int i = 0; i < 4; i++) mor_ref_tensor_free(&y[i]);
  mor_ref_free(r);
  mor_module_free(m);
}
END_TEST

/* no rows chosen: every op handles zero-row tensors */
START_TEST(test_zero_rows) {
  mor_module *m = parse("module @t {\n  sym T <= 4\n  sym N <= 4\n  weight @W : f32[2, 2]\n"
                        "  kv @c : f32[8, 1, 2] {layer = 0, depth = 0}\n"
                        "  func @f(%x: f32[T, 2], %p: i32[T], %i: i32[N]) -> (f32[T, 2]) {\n"
                        "    %g = gather %x, %i : f32[N, 2]\n    %q = gather %p, %i : i32[N]\n"
                        "    %m = matmul %g {weight = @W} : f32[N, 2]\n"
                        "    %r = rope %m, %q {heads = 1, head_dim = 2, theta = 10000.0} : f32[N, 2]\n"
                        "    kv_write %r, %m, %q {caches = [@c]}\n"
                        "    %o = attention %r, %q {caches = [@c], heads = 1, kv_heads = 1, head_dim = 2} : f32[N, 2]\n"
                        "    %s = fill %x {value = 1.0} : f32[T]\n"
                        "    %y = gate_add %x, %x, %o, %s, %i {alpha = 1.0, gating = \"weighted\"} : f32[T, 2]\n"
                        "    %z = scatter %y, %i, %o : f32[T, 2]\n"
                        "    return %z\n  }\n}\n");
  float W[4] = {1, 0, 0, 1};
  mor_weights *w = mkweights(1, (wspec[]){{"W", MOR_F32, 2, {2, 2}, W}});
  mor_ref *r = mkref(m, w);
  mor_ref_seq *s = mor_ref_seq_new(r);
  float x[4] = {1, 2, 3, 4};
  int32_t p[2] = {0, 1}, none[1] = {0};
  mor_ref_tensor a[3] = {tf(x, 2, 2, 2), ti(p, 2), ti(none, 0)}, y;
  call_ok(r, s, "f", 3, a, 1, &y);
  near(y.data, (double[]){1, 2, 3, 4}, 4, 0);
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "c"), 0);
  mor_ref_tensor_free(&y);
  mor_ref_seq_free(s);
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

/* ---- recur ---------------------------------------------------------------------- */

/* the region sees depth 0..n-1 and a value captured from outside; carried
 * values flow from yield to the next iteration and out as results */
START_TEST(test_recur) {
  mor_module *m = parse("module @t {\n  sym T <= 8\n  sym A <= 8\n"
                        "  weight @r0 : f32[1, 2]\n  weight @r1 : f32[1, 2]\n  weight @r2 : f32[1, 2]\n"
                        "  func @f(%sel: i32[T], %x: f32[T, 2]) -> (i32[T], f32[T, 2], f32[T]) {\n"
                        "    %z = fill %sel {value = 0} : i32[T]\n"
                        "    %s0 = fill %sel {value = 0.0} : f32[T]\n"
                        "    %d, %y, %s = recur %z, %x, %s0 {n = 3} : i32[T], f32[T, 2], f32[T] {\n"
                        "    ^(%k: i64[], %dc: i32[T], %xc: f32[T, 2], %sc: f32[T]):\n"
                        "      %w = where %sel, %k {cmp = \"ge\"} : i32[A]\n"
                        "      %d2 = count_add %dc, %w : i32[T]\n"
                        "      %x2 = add %xc, %x : f32[T, 2]\n"
                        "      %rs = router %x, %k {weights = [@r0, @r1, @r2], kind = \"linear\", act = \"tanh\", "
                        "temperature = 1.0, outputs = 1} : f32[T]\n"
                        "      %s2 = add %sc, %rs : f32[T]\n"
                        "      yield %d2, %x2, %s2\n    }\n"
                        "    return %d, %y, %s\n  }\n}\n");
  float r0[2] = {1, 0}, r1[2] = {0, 1}, r2[2] = {1, 1};
  mor_weights *w = mkweights(3, (wspec[]){{"r0", MOR_F32, 2, {1, 2}, r0},
                                          {"r1", MOR_F32, 2, {1, 2}, r1},
                                          {"r2", MOR_F32, 2, {1, 2}, r2}});
  mor_ref *r = mkref(m, w);
  int32_t sel[4] = {2, 0, 1, 3};
  float x[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
  mor_ref_tensor a[2] = {ti(sel, 4), tf(x, 2, 4, 2)}, y[3];
  call_ok(r, NULL, "f", 2, a, 3, y);
  ints_eq(&y[0], 4, (int32_t[]){3, 1, 2, 3}); /* min(sel + 1, 3) */
  double wx[8], ws[4];
  for (int i = 0; i < 8; i++) wx[i] = 4.0 * x[i];
  for (int t = 0; t < 4; t++) ws[t] = tanh(x[2 * t]) + tanh(x[2 * t + 1]) + tanh(x[2 * t] + x[2 * t + 1]);
  near(y[1].data, wx, 8, 1e-6);
  near(y[2].data, ws, 4, 1e-6);
  for (int i = 0; i < 3; i++) mor_ref_tensor_free(&y[i]);
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

/* ---- fused ops of the passes: bit-identical to the ops they replace ---------- */

static const char *fused_ir =
    "module @t {\n  sym T <= 8\n  sym N <= 8\n"
    "  weight @n : f32[4]\n  weight @Wq : f32[4, 4]\n  weight @Wk : f32[2, 4]\n  weight @Wv : f32[2, 4]\n"
    "  weight @Wo : f32[4, 4]\n  weight @Wg : f32[6, 4]\n  weight @Wu : f32[6, 4]\n  weight @Wd : f32[4, 6]\n"
    "  kv @c : f32[16, 1, 2] {layer = 0, depth = 0}\n"
    "  func @plain(%x: f32[T, 4], %p: i32[T], %i: i32[N], %s: f32[T]) -> (f32[N, 4], f32[N, 4], f32[N, 6], "
    "f32[N, 4], f32[T, 4], f32[T, 4]) {\n"
    "    %g = gather %x, %i : f32[N, 4]\n    %gp = gather %p, %i : i32[N]\n"
    "    %a = rmsnorm %g {weight = @n, eps = 1.0e-5} : f32[N, 4]\n"
    "    %q0 = matmul %a {weight = @Wq} : f32[N, 4]\n"
    "    %q = rope %q0, %gp {heads = 2, head_dim = 2, theta = 10000.0} : f32[N, 4]\n"
    "    %k0 = matmul %a {weight = @Wk} : f32[N, 2]\n"
    "    %k = rope %k0, %gp {heads = 1, head_dim = 2, theta = 10000.0} : f32[N, 2]\n"
    "    %v = matmul %a {weight = @Wv} : f32[N, 2]\n"
    "    kv_write %k, %v, %gp {caches = [@c]}\n"
    "    %o = attention %q, %gp {caches = [@c], heads = 2, kv_heads = 1, head_dim = 2} : f32[N, 4]\n"
    "    %nm = matmul %a {weight = @Wo} : f32[N, 4]\n"
    "    %gg = matmul %a {weight = @Wg} : f32[N, 6]\n    %uu = matmul %a {weight = @Wu} : f32[N, 6]\n"
    "    %gu = silu_mul %gg, %uu : f32[N, 6]\n"
    "    %mo = matmul %o {weight = @Wo} : f32[N, 4]\n    %ma = add %g, %mo : f32[N, 4]\n"
    "    %md = matmul %gu {weight = @Wd} : f32[N, 4]\n    %y = add %ma, %md : f32[N, 4]\n"
    "    %st = scatter %x, %i, %y : f32[T, 4]\n"
    "    %ga = gate_add %x, %x, %y, %s, %i {alpha = 0.5, gating = \"weighted\"} : f32[T, 4]\n"
    "    return %o, %nm, %gu, %ma, %st, %ga\n  }\n"
    "  func @fused(%x: f32[T, 4], %p: i32[T], %i: i32[N], %s: f32[T]) -> (f32[N, 4], f32[N, 4], f32[N, 6], "
    "f32[N, 4], f32[T, 4], f32[T, 4]) {\n"
    "    %q = qkv %x, %p, %i {norm = @n, eps = 1.0e-5, wq = @Wq, heads = 2, head_dim = 2, theta = 10000.0, "
    "wk = @Wk, wv = @Wv, kv_heads = 1, caches = [@c]} : f32[N, 4]\n"
    "    %gp = gather %p, %i : i32[N]\n"
    "    %o = attention %q, %gp {caches = [@c], heads = 2, kv_heads = 1, head_dim = 2} : f32[N, 4]\n"
    "    %g = gather %x, %i : f32[N, 4]\n"
    "    %nm = norm_matmul %g {norm = @n, eps = 1.0e-5, weight = @Wo} : f32[N, 4]\n"
    "    %gu = gate_up %g {norm = @n, eps = 1.0e-5, wg = @Wg, wu = @Wu} : f32[N, 6]\n"
    "    %ma = matmul_add %o, %x, %i {weight = @Wo} : f32[N, 4]\n"
    "    %st = matmul_store %gu, %ma, %x, %i {weight = @Wd, mode = \"set\"} : f32[T, 4]\n"
    "    %ga = matmul_store %gu, %ma, %x, %i, %x, %s {weight = @Wd, mode = \"gate\", alpha = 0.5, "
    "gating = \"weighted\"} : f32[T, 4]\n"
    "    return %o, %nm, %gu, %ma, %st, %ga\n  }\n"
    "  func @blk(%h: f32[N, 4], %d: i64[]) -> (f32[N, 4]) {\n"
    "    %y = norm_matmul %h {norm = @n, eps = 1.0e-5, weight = @Wo} : f32[N, 4]\n"
    "    %z = matmul_add %y, %h {weight = @Wo} : f32[N, 4]\n    return %z\n  }\n"
    "  func @caller(%x: f32[T, 4]) -> (f32[T, 4], f32[T, 4]) {\n"
    "    %d = const {value = 1} : i64[]\n"
    "    %y = call %x, %d {callee = @blk} : f32[T, 4]\n"
    "    %a = rmsnorm %x {weight = @n, eps = 1.0e-5} : f32[T, 4]\n"
    "    %b = matmul %a {weight = @Wo} : f32[T, 4]\n    %c = matmul %b {weight = @Wo} : f32[T, 4]\n"
    "    %e = add %x, %c : f32[T, 4]\n    return %y, %e\n  }\n"
    "  func @qnone(%x: f32[T, 4], %p: i32[T], %d: i64[]) -> (f32[T, 4]) {\n"
    "    %q = qkv %x, %p, %d {norm = @n, eps = 1.0e-5, wq = @Wq, heads = 2, head_dim = 2, theta = 10000.0, "
    "wk = @Wk, wv = @Wv, kv_heads = 1, caches = [@c, @none]} : f32[T, 4]\n    return %q\n  }\n"
    "  func @badcall(%x: f32[T, 4]) -> (f32[T, 4]) {\n"
    "    %y = call %x {callee = @reads} : f32[T, 4]\n    return %y\n  }\n"
    "  func @reads(%q: f32[N, 4]) -> (f32[N, 4]) {\n"
    "    %p = iota %q : i32[N]\n"
    "    %o = attention %q, %p {caches = [@c], heads = 2, kv_heads = 1, head_dim = 2} : f32[N, 4]\n"
    "    return %o\n  }\n}\n";

typedef struct fused_w {
  float n[4], Wq[16], Wk[8], Wv[8], Wo[16], Wg[24], Wu[24], Wd[24];
} fused_w;

static mor_weights *fused_weights(fused_w *fw) {
  uint32_t s = 3;
  float *all[] = {fw->n, fw->Wq, fw->Wk, fw->Wv, fw->Wo, fw->Wg, fw->Wu, fw->Wd};
  int len[] = {4, 16, 8, 8, 16, 24, 24, 24};
  for (int j = 0; j < 8; j++)
    for (int i = 0; i < len[j]; i++) all[j][i] = frand(&s);
  return mkweights(8, (wspec[]){{"n", MOR_F32, 1, {4}, fw->n},
                                {"Wq", MOR_F32, 2, {4, 4}, fw->Wq},
                                {"Wk", MOR_F32, 2, {2, 4}, fw->Wk},
                                {"Wv", MOR_F32, 2, {2, 4}, fw->Wv},
                                {"Wo", MOR_F32, 2, {4, 4}, fw->Wo},
                                {"Wg", MOR_F32, 2, {6, 4}, fw->Wg},
                                {"Wu", MOR_F32, 2, {6, 4}, fw->Wu},
                                {"Wd", MOR_F32, 2, {4, 6}, fw->Wd}});
}

static void same_bits(const mor_ref_tensor *a, const mor_ref_tensor *b, int which) {
  ck_assert_int_eq(a->rank, b->rank);
  int64_t n = 1;
  for (int d = 0; d < a->rank; d++) {
    ck_assert_int_eq(a->shape[d], b->shape[d]);
    n *= a->shape[d];
  }
  for (int64_t i = 0; i < n; i++)
    ck_assert_msg(((float *)a->data)[i] == ((float *)b->data)[i], "result %d element %lld: %.9g vs %.9g", which,
                  (long long)i, ((float *)a->data)[i], ((float *)b->data)[i]);
}

START_TEST(test_fused_ops) {
  mor_module *m = parse(fused_ir);
  fused_w fw;
  mor_weights *w = fused_weights(&fw);
  mor_ref *r = mkref(m, w);
  mor_ref_seq *s1 = mor_ref_seq_new(r), *s2 = mor_ref_seq_new(r);
  float x[20], sc[5];
  uint32_t seed = 9;
  for (int i = 0; i < 20; i++) x[i] = frand(&seed);
  for (int i = 0; i < 5; i++) sc[i] = frand(&seed);
  int32_t p[5] = {0, 1, 2, 3, 4}, idx[3] = {0, 2, 3};
  mor_ref_tensor a[4] = {tf(x, 2, 5, 4), ti(p, 5), ti(idx, 3), tf(sc, 1, 5, 0)}, y1[6], y2[6];
  call_ok(r, s1, "plain", 4, a, 6, y1);
  call_ok(r, s2, "fused", 4, a, 6, y2);
  for (int i = 0; i < 6; i++) {
    same_bits(&y1[i], &y2[i], i);
    mor_ref_tensor_free(&y1[i]);
    mor_ref_tensor_free(&y2[i]);
  }
  ck_assert_int_eq(mor_ref_seq_cache_len(s1, "c"), 3);
  ck_assert_int_eq(mor_ref_seq_cache_len(s2, "c"), 3);
  /* qkv with a depth operand whose cache entry is @none writes nothing */
  int64_t d = 1;
  mor_ref_tensor qa[3] = {tf(x, 2, 5, 4), ti(p, 5), tscalar(&d)}, q;
  call_ok(r, s2, "qnone", 3, qa, 1, &q);
  mor_ref_tensor_free(&q);
  ck_assert_int_eq(mor_ref_seq_cache_len(s2, "c"), 3);
  d = 0;
  call_ok(r, s2, "qnone", 3, qa, 1, &q);
  mor_ref_tensor_free(&q);
  ck_assert_int_eq(mor_ref_seq_cache_len(s2, "c"), 8);
  mor_ref_seq_free(s1);
  mor_ref_seq_free(s2);
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

/* call runs the callee on the arguments; const gives an i64 scalar; errors
 * inside the callee name the call and the callee's op */
START_TEST(test_call_const) {
  mor_module *m = parse(fused_ir);
  fused_w fw;
  mor_weights *w = fused_weights(&fw);
  mor_ref *r = mkref(m, w);
  float x[12];
  uint32_t seed = 5;
  for (int i = 0; i < 12; i++) x[i] = frand(&seed);
  mor_ref_tensor a = tf(x, 2, 3, 4), y[2];
  call_ok(r, NULL, "caller", 1, &a, 2, y);
  same_bits(&y[0], &y[1], 0);
  mor_ref_tensor_free(&y[0]);
  mor_ref_tensor_free(&y[1]);
  mor_ref_seq *s = mor_ref_seq_new(r);
  call_fails(r, s, "badcall", 1, &a, 1, y, "'call': t.mor:");
  call_fails(r, s, "badcall", 1, &a, 1, y, "'attention': row 0 (position 0): cache @c has no entry");
  mor_ref_seq_free(s);
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

/* ---- forward ---------------------------------------------------------------------- */

/* A one-layer model: embed, attention block with residual, tied logits. */
static const char *tiny_fmt =
    "module @tiny attributes {vocab_size = 5, max_position_embeddings = 8} {\n  sym T <= 8\n"
    "  weight @E : f32[5, 4]\n  weight @n : f32[4]\n  weight @Wq : f32[4, 4]\n  weight @Wk : f32[2, 4]\n"
    "  weight @Wv : f32[2, 4]\n  weight @Wo : f32[4, 4]\n"
    "  kv @c : f32[%d, 1, 2] {layer = 0, depth = 0}\n"
    "  kv @c2 : f32[%d, 1, 2] {layer = 1, depth = 0}\n"
    "  func @forward(%%tok: i32[T], %%pos: i32[T]) -> (f32[T, 5], i32[T]) {\n"
    "    %%x = embed %%tok {weight = @E} : f32[T, 4]\n"
    "    %%a = rmsnorm %%x {weight = @n, eps = 1.0e-5} : f32[T, 4]\n"
    "    %%q0 = matmul %%a {weight = @Wq} : f32[T, 4]\n"
    "    %%q = rope %%q0, %%pos {heads = 2, head_dim = 2, theta = 10000.0} : f32[T, 4]\n"
    "    %%k0 = matmul %%a {weight = @Wk} : f32[T, 2]\n"
    "    %%k = rope %%k0, %%pos {heads = 1, head_dim = 2, theta = 10000.0} : f32[T, 2]\n"
    "    %%v = matmul %%a {weight = @Wv} : f32[T, 2]\n"
    "    kv_write %%k, %%v, %%pos {caches = [@c]}\n"
    "    kv_write %%k, %%v, %%pos {caches = [@c2]}\n"
    "    %%o = attention %%q, %%pos {caches = [@c], heads = 2, kv_heads = 1, head_dim = 2} : f32[T, 4]\n"
    "    %%o2 = matmul %%o {weight = @Wo} : f32[T, 4]\n"
    "    %%h = add %%x, %%o2 : f32[T, 4]\n"
    "    %%l = matmul %%h {weight = @E} : f32[T, 5]\n"
    "    %%d = fill %%tok {value = 1} : i32[T]\n"
    "    return %%l, %%d\n  }\n}\n";

typedef struct tiny {
  float E[20], n[4], Wq[16], Wk[8], Wv[8], Wo[16];
  mor_module *m;
  mor_weights *w;
  mor_ref *r;
} tiny;

static void tiny_open(tiny *t, int cap, int cap2) {
  uint32_t s = 11;
  for (int i = 0; i < 20; i++) t->E[i] = frand(&s);
  for (int i = 0; i < 4; i++) t->n[i] = 1 + 0.1f * frand(&s);
  for (int i = 0; i < 16; i++) t->Wq[i] = frand(&s), t->Wo[i] = frand(&s);
  for (int i = 0; i < 8; i++) t->Wk[i] = frand(&s), t->Wv[i] = frand(&s);
  char text[4096];
  snprintf(text, sizeof text, tiny_fmt, cap, cap2);
  t->m = parse(text);
  t->w = mkweights(6, (wspec[]){{"E", MOR_F32, 2, {5, 4}, t->E},
                                {"n", MOR_F32, 1, {4}, t->n},
                                {"Wq", MOR_F32, 2, {4, 4}, t->Wq},
                                {"Wk", MOR_F32, 2, {2, 4}, t->Wk},
                                {"Wv", MOR_F32, 2, {2, 4}, t->Wv},
                                {"Wo", MOR_F32, 2, {4, 4}, t->Wo}});
  t->r = mkref(t->m, t->w);
}

static void tiny_close(tiny *t) {
  mor_ref_free(t->r);
  mor_weights_free(t->w);
  mor_module_free(t->m);
}

/* the first token at position 0 attends only to itself: logits are
 * E (x + Wo [v, v]) with v = Wv rmsnorm(x) */
START_TEST(test_forward_first_token) {
  tiny t;
  tiny_open(&t, 8, 8);
  mor_ref_seq *s = mor_ref_seq_new(t.r);
  float logits[5];
  int32_t depth;
  mor_err e = {{0}};
  ck_assert_msg(mor_ref_forward(t.r, s, (int32_t[]){3}, 1, logits, &depth, &e) == 0, "%s", e.msg);
  const float *x = t.E + 3 * 4;
  double ss = 0, a[4], v[2], o[4], h[4], want[5];
  for (int i = 0; i < 4; i++) ss += x[i] * x[i];
  for (int i = 0; i < 4; i++) a[i] = t.n[i] * x[i] / sqrt(ss / 4 + 1e-5);
  for (int j = 0; j < 2; j++) {
    v[j] = 0;
    for (int i = 0; i < 4; i++) v[j] += t.Wv[j * 4 + i] * a[i];
  }
  for (int j = 0; j < 4; j++) {
    o[j] = 0;
    for (int i = 0; i < 4; i++) o[j] += t.Wo[j * 4 + i] * v[i % 2];
    h[j] = x[j] + o[j];
  }
  for (int j = 0; j < 5; j++) {
    want[j] = 0;
    for (int i = 0; i < 4; i++) want[j] += t.E[j * 4 + i] * h[i];
  }
  near(logits, want, 5, 1e-5);
  ck_assert_int_eq(depth, 1);
  ck_assert_int_eq(mor_ref_seq_len(s), 1);
  mor_ref_seq_free(s);
  tiny_close(&t);
}
END_TEST

/* one call == prefill + decode steps; sequences are independent */
START_TEST(test_forward_chunked) {
  tiny t;
  tiny_open(&t, 8, 8);
  int32_t toks[6] = {1, 3, 0, 4, 2, 2};
  float one[30], split[30];
  int32_t d1[6], d2[6];
  mor_err e = {{0}};
  mor_ref_seq *s1 = mor_ref_seq_new(t.r), *s2 = mor_ref_seq_new(t.r);
  ck_assert_msg(mor_ref_forward(t.r, s1, toks, 6, one, d1, &e) == 0, "%s", e.msg);
  int64_t chunks[3] = {3, 1, 2}, off = 0;
  for (int c = 0; c < 3; c++) {
    ck_assert_msg(mor_ref_forward(t.r, s2, toks + off, chunks[c], split + off * 5, d2 + off, &e) == 0, "%s", e.msg);
    off += chunks[c];
  }
  for (int i = 0; i < 30; i++) ck_assert_msg(fabsf(one[i] - split[i]) <= 1e-6f, "logit %d: %g vs %g", i, one[i], split[i]);
  for (int i = 0; i < 6; i++) ck_assert_int_eq(d1[i], d2[i]);
  ck_assert_int_eq(mor_ref_seq_len(s1), 6);
  ck_assert_int_eq(mor_ref_seq_len(s2), 6);
  ck_assert_int_eq(mor_ref_seq_cache_len(s1, "c"), 6);
  /* NULL outputs are allowed */
  ck_assert_msg(mor_ref_forward(t.r, s1, toks, 1, NULL, NULL, &e) == 0, "%s", e.msg);
  ck_assert_int_eq(mor_ref_seq_len(s1), 7);
  mor_ref_seq_free(s1);
  mor_ref_seq_free(s2);
  tiny_close(&t);
}
END_TEST

static void forward_fails(tiny *t, mor_ref_seq *s, const int32_t *toks, int64_t T, const char *want) {
  mor_err e = {{0}};
  float logits[64];
  int rc = mor_ref_forward(t->r, s, toks, T, logits, NULL, &e);
  ck_assert_msg(rc != 0, "forward succeeded, expected '%s'", want);
  ck_assert_msg(strstr(e.msg, want) != NULL, "error '%s' lacks '%s'", e.msg, want);
}

START_TEST(test_forward_errors) {
  tiny t;
  tiny_open(&t, 8, 4);
  mor_ref_seq *s = mor_ref_seq_new(t.r);
  mor_err e = {{0}};
  forward_fails(&t, s, (int32_t[]){0, 5}, 2, "token 1: id 5 out of range [0, 5)");
  forward_fails(&t, s, (int32_t[]){-1}, 1, "token 0: id -1 out of range");
  forward_fails(&t, s, (int32_t[]){0}, 0, "no tokens");
  /* c2 holds 4 entries: the second kv_write fails after the first wrote 5
   * rows; the call is undone */
  forward_fails(&t, s, (int32_t[]){0, 1, 2, 3, 4}, 5, "KV cache @c2: capacity exceeded: 0 entries + 5 new > capacity 4");
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "c"), 0);
  ck_assert_int_eq(mor_ref_seq_len(s), 0);
  ck_assert_msg(mor_ref_forward(t.r, s, (int32_t[]){0, 1, 2}, 3, NULL, NULL, &e) == 0, "%s", e.msg);
  forward_fails(&t, s, (int32_t[]){0, 1}, 2, "3 entries + 2 new > capacity 4");
  ck_assert_int_eq(mor_ref_seq_cache_len(s, "c"), 3);
  ck_assert_int_eq(mor_ref_seq_len(s), 3);
  mor_ref_seq_free(s);
  tiny_close(&t);
  /* positions at or beyond max_position_embeddings (8) */
  tiny_open(&t, 8, 8);
  s = mor_ref_seq_new(t.r);
  ck_assert_msg(mor_ref_forward(t.r, s, (int32_t[]){0, 1, 2, 3, 4, 0}, 6, NULL, NULL, &e) == 0, "%s", e.msg);
  forward_fails(&t, s, (int32_t[]){1, 2, 3}, 3, "token 2: position 8 >= max_position_embeddings 8");
  ck_assert_int_eq(mor_ref_seq_len(s), 6);
  ck_assert_msg(mor_ref_forward(t.r, s, (int32_t[]){1, 2}, 2, NULL, NULL, &e) == 0, "%s", e.msg);
  forward_fails(&t, s, (int32_t[]){1}, 1, "token 0: position 8 >= max_position_embeddings 8");
  mor_ref_seq_free(s);
  tiny_close(&t);
}
END_TEST

/* ---- binding and run-time checks ------------------------------------------------ */

START_TEST(test_bind_errors) {
  const char *text = "module @t {\n  sym M <= 8\n  weight @W : f32[4, 3]\n"
                     "  func @f(%x: f32[M, 3]) -> (f32[M, 4]) {\n"
                     "    %y = matmul %x {weight = @W} : f32[M, 4]\n    return %y\n  }\n}\n";
  mor_module *m = parse(text);
  float W[12] = {0};
  uint16_t Wh[12] = {0};
  mor_err e = {{0}};
  mor_weights *w = mkweights(1, (wspec[]){{"V", MOR_F32, 2, {4, 3}, W}});
  ck_assert_ptr_null(mor_ref_new(m, w, &e));
  ck_assert_msg(strstr(e.msg, "no tensor 'W'"), "%s", e.msg);
  mor_weights_free(w);
  w = mkweights(1, (wspec[]){{"W", MOR_BF16, 2, {4, 3}, Wh}});
  ck_assert_ptr_null(mor_ref_new(m, w, &e));
  ck_assert_msg(strstr(e.msg, "mem.safetensors: tensor 'W': dtype bf16, but the module declares f32"), "%s", e.msg);
  mor_weights_free(w);
  w = mkweights(1, (wspec[]){{"W", MOR_F32, 2, {3, 4}, W}});
  ck_assert_ptr_null(mor_ref_new(m, w, &e));
  ck_assert_msg(strstr(e.msg, "tensor 'W': shape [3,4], but the module declares f32[4, 3]"), "%s", e.msg);
  mor_weights_free(w);
  /* arguments are checked against the function's types */
  w = mkweights(1, (wspec[]){{"W", MOR_F32, 2, {4, 3}, W}});
  mor_ref *r = mkref(m, w);
  float x[27] = {0};
  mor_ref_tensor a = tf(x, 2, 9, 3), y;
  call_fails(r, NULL, "f", 1, &a, 1, &y, "@f: argument 0: dim 0 is 9 at run time, above the bound of M (8)");
  a = tf(x, 2, 2, 4);
  call_fails(r, NULL, "f", 1, &a, 1, &y, "argument 0: dim 1 is 4 at run time, declared 3");
  a = tf(x, 2, 2, 3);
  call_fails(r, NULL, "f", 0, &a, 1, &y, "called with 0 arguments, the function takes 1");
  call_fails(r, NULL, "g", 1, &a, 1, &y, "no function @g");
  mor_err e2 = {{0}};
  mor_ref_seq *s = mor_ref_seq_new(r);
  ck_assert_int_ne(mor_ref_forward(r, s, (int32_t[]){0}, 1, NULL, NULL, &e2), 0);
  ck_assert_msg(strstr(e2.msg, "no function @forward"), "%s", e2.msg);
  mor_ref_seq_free(s);
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

/* errors point at the op: file:line:col for parsed IR, "@func: op #k" for built IR */
START_TEST(test_error_locations) {
  mor_module *m = parse("module @t {\n  sym T <= 4\n  weight @E : f32[3, 2]\n"
                        "  func @f(%t: i32[T]) -> (f32[T, 2]) {\n"
                        "    %y = embed %t {weight = @E} : f32[T, 2]\n    return %y\n  }\n}\n");
  float E[6] = {0};
  mor_weights *w = mkweights(1, (wspec[]){{"E", MOR_F32, 2, {3, 2}, E}});
  mor_ref *r = mkref(m, w);
  mor_ref_tensor a = ti((int32_t[]){7}, 1), y;
  call_fails(r, NULL, "f", 1, &a, 1, &y, "t.mor:5:10: 'embed': token 0: id 7 out of range [0, 3)");
  mor_ref_free(r);
  mor_module_free(m);

  /* the same function built with the builder API */
  m = mor_module_new("b");
  int T = mor_add_sym(m, "T", 4);
  mor_dim de[2] = {mor_dconst(3), mor_dconst(2)}, dt[1] = {mor_dsym(m, T)}, dy[2] = {mor_dsym(m, T), mor_dconst(2)};
  mor_add_global(m, MOR_GLOBAL_WEIGHT, "E", mor_type_make(MOR_F32, 2, de));
  mor_func *f = mor_add_func(m, "f");
  mor_value *tok = mor_block_add_arg(m, f->body, mor_type_make(MOR_I32, 1, dt));
  f->n_results = 1;
  f->result_types = mor_alloc(m, sizeof(mor_type));
  f->result_types[0] = mor_type_make(MOR_F32, 2, dy);
  mor_op *io = mor_op_new(m, MOR_OP_IOTA, 1, &tok, 1, (mor_type[]){mor_type_make(MOR_I32, 1, dt)});
  mor_block_append(f->body, io);
  mor_op *em = mor_op_new(m, MOR_OP_EMBED, 1, &tok, 1, &f->result_types[0]);
  mor_op_set_sym(m, em, "weight", "E");
  mor_block_append(f->body, em);
  mor_op *ret = mor_op_new(m, MOR_OP_RETURN, 1, em->results, 0, NULL);
  mor_block_append(f->body, ret);
  r = mkref(m, w);
  call_fails(r, NULL, "f", 1, &a, 1, &y, "@f: op #2 ('embed'): token 0: id 7 out of range [0, 3)");
  mor_ref_free(r);
  mor_weights_free(w);
  mor_module_free(m);
}
END_TEST

static Suite *ref_suite(void) {
  Suite *s = suite_create("ref");
  TCase *ops = tcase_create("ops");
  tcase_add_test(ops, test_matmul_2x3);
  tcase_add_test(ops, test_matmul_blocked);
  tcase_add_test(ops, test_rmsnorm);
  tcase_add_test(ops, test_embed_bf16);
  tcase_add_test(ops, test_rope);
  tcase_add_test(ops, test_attention_one_entry);
  tcase_add_test(ops, test_attention_causal);
  tcase_add_test(ops, test_attention_gqa);
  tcase_add_test(ops, test_kv_depth_none_alias);
  tcase_add_test(ops, test_silu_mul_add);
  tcase_add_test(ops, test_router);
  tcase_add_test(ops, test_select_threshold);
  tcase_add_test(ops, test_select_top_k);
  tcase_add_test(ops, test_tc_route_where);
  tcase_add_test(ops, test_gather_scatter);
  tcase_add_test(ops, test_gate_add);
  tcase_add_test(ops, test_count_iota_fill);
  tcase_add_test(ops, test_zero_rows);
  tcase_add_test(ops, test_recur);
  tcase_add_test(ops, test_fused_ops);
  tcase_add_test(ops, test_call_const);
  suite_add_tcase(s, ops);
  TCase *fw = tcase_create("forward");
  tcase_add_test(fw, test_forward_first_token);
  tcase_add_test(fw, test_forward_chunked);
  tcase_add_test(fw, test_forward_errors);
  tcase_add_test(fw, test_bind_errors);
  tcase_add_test(fw, test_error_locations);
  suite_add_tcase(s, fw);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ref_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

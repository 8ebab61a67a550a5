/* route.c: MoR routing kernels: router scores, expert-choice selection
 * (threshold and top_k), token-choice depth, `where`. They follow the
 * reference interpreter's arithmetic exactly (double dot products rounded
 * once to f32) so routing decisions agree with it. */
#include <math.h>
#include "kernels/mork.h"

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

/* act codes */
enum { ACT_SIGMOID = 0, ACT_TANH = 1, ACT_SOFTMAX = 2 };

/* y[m, 0..out) = act(router(x[m] / temperature)); router = x W1^T (linear,
 * W2 == NULL) or gelu(x W1^T) W2^T (mlp, hidden `hid`). `scratch` holds
 * D + hid + out floats per item slot: it is indexed by row, so rows may run
 * in parallel. items: rows. */
MORK void mork_router(const float *restrict x, const float *restrict W1, const float *restrict W2, float *restrict y,
                      float *restrict scratch, int64_t D, int64_t hid, int64_t out, int64_t act, float temp, int64_t b,
                      int64_t e) {
  for (int64_t m = b; m < e; m++) {
    float *xs = scratch + m * (D + hid + out), *h = xs + D, *z = h + hid;
    const float *xr = x + m * D;
    for (int64_t i = 0; i < D; i++) xs[i] = xr[i] / temp;
    if (W2) {
      for (int64_t j = 0; j < hid; j++) {
        double a = (float)dot_f64(xs, W1 + j * D, D);
        h[j] = (float)(0.5 * a * (1.0 + erf(a / sqrt(2.0))));
      }
      for (int64_t o = 0; o < out; o++) z[o] = (float)dot_f64(h, W2 + o * hid, hid);
    } else {
      for (int64_t o = 0; o < out; o++) z[o] = (float)dot_f64(xs, W1 + o * D, D);
    }
    float *yr = y + m * out;
    if (act == ACT_SOFTMAX) {
      double mx = -INFINITY, sum = 0;
      for (int64_t o = 0; o < out; o++)
        if (z[o] > mx) mx = z[o];
      for (int64_t o = 0; o < out; o++) sum += exp(z[o] - mx);
      for (int64_t o = 0; o < out; o++) yr[o] = (float)(exp(z[o] - mx) / sum);
    } else if (act == ACT_SIGMOID) {
      for (int64_t o = 0; o < out; o++) yr[o] = (float)(1.0 / (1.0 + exp(-(double)z[o])));
    } else {
      for (int64_t o = 0; o < out; o++) yr[o] = (float)tanh((double)z[o]);
    }
  }
}

/* threshold selection: the active rows with s >= thr (all of them when
 * cap >= 1), ascending. Returns the count. */
MORK int64_t mork_select_threshold(const float *restrict s, const int32_t *restrict active, int64_t A, double cap,
                                   double thr, int32_t *restrict out) {
  int64_t n = 0;
  for (int64_t i = 0; i < A; i++)
    if (cap >= 1.0 || s[active[i]] >= thr) out[n++] = active[i];
  return n;
}

typedef struct ranked {
  float key;
  int32_t row;
} ranked;

/* a before b: higher key first, ties to the lower row */
static int before(const ranked *a, const ranked *b) {
  return a->key > b->key || (a->key == b->key && a->row < b->row);
}

/* top_k selection: k = max(1, floor(cap * T)) capped at A; the k highest
 * alpha*s among the active rows (NaN ranks lowest, ties to the lower row),
 * output ascending. scratch: 2 * A ranked entries + T bytes. */
MORK int64_t mork_select_topk(const float *restrict s, const int32_t *restrict active, int64_t A, int64_t T,
                              double cap, float alpha, int32_t *restrict out, void *restrict scratch) {
  int64_t k = (int64_t)floor(cap * (double)T);
  if (k < 1) k = 1;
  if (k > A) k = A;
  ranked *r = scratch, *tmp = r + A;
  unsigned char *flag = (unsigned char *)(tmp + A);
  for (int64_t i = 0; i < A; i++) {
    float key = alpha * s[active[i]];
    r[i].key = isnan(key) ? -INFINITY : key;
    r[i].row = active[i];
  }
  /* bottom-up merge sort */
  for (int64_t w = 1; w < A; w *= 2) {
    for (int64_t lo = 0; lo < A; lo += 2 * w) {
      int64_t mid = lo + w < A ? lo + w : A, hi = lo + 2 * w < A ? lo + 2 * w : A;
      int64_t i = lo, j = mid, o = lo;
      while (i < mid && j < hi) tmp[o++] = before(&r[j], &r[i]) ? r[j++] : r[i++];
      while (i < mid) tmp[o++] = r[i++];
      while (j < hi) tmp[o++] = r[j++];
    }
    ranked *t = r;
    r = tmp;
    tmp = t;
  }
  for (int64_t t = 0; t < T; t++) flag[t] = 0;
  for (int64_t i = 0; i < k; i++) flag[r[i].row] = 1;
  int64_t n = 0;
  for (int64_t t = 0; t < T; t++)
    if (flag[t]) out[n++] = (int32_t)t;
  return n;
}

/* d = argmax alpha*p (ties to the lower index, NaN loses), w = alpha*p[d];
 * items: rows */
MORK void mork_tc_route(const float *restrict p, int32_t *restrict d, float *restrict w, int64_t R, float alpha,
                        int64_t b, int64_t e) {
  for (int64_t t = b; t < e; t++) {
    const float *pr = p + t * R;
    int64_t best = 0;
    float bv = alpha * pr[0];
    for (int64_t r = 1; r < R; r++) {
      float v = alpha * pr[r];
      if (v > bv || (isnan(bv) && !isnan(v))) best = r, bv = v;
    }
    d[t] = (int32_t)best;
    w[t] = bv;
  }
}

/* rows t with d[t] >= depth (ge) or == depth, ascending; returns the count */
MORK int64_t mork_where(const int32_t *restrict d, int64_t T, int64_t depth, int64_t ge, int32_t *restrict out) {
  int64_t n = 0;
  for (int64_t t = 0; t < T; t++)
    if (ge ? d[t] >= depth : d[t] == depth) out[n++] = (int32_t)t;
  return n;
}

/* rows.c: row-wise kernels: embed, rmsnorm, rope, silu_mul, add, and the
 * row movers of routing (gather, scatter, gate_add, count_add, iota, fill).
 * An item is one row unless said otherwise. */
#include <math.h>
#include "kernels/mork.h"

MORK void mork_embed(const int32_t *restrict tok, const float *restrict E, float *restrict y, int64_t D, int64_t b,
                     int64_t e) {
  for (int64_t t = b; t < e; t++) {
    const float *src = E + (int64_t)tok[t] * D;
    float *dst = y + t * D;
    for (int64_t i = 0; i < D; i++) dst[i] = src[i];
  }
}

/* The same from a table E[V, D] in weight format fmt (a tied head's table
 * is a matmul weight, so it may be bf16, f16 or q8). */
MORK void mork_embed_w(const int32_t *restrict tok, const void *restrict E, int64_t fmt, int64_t V,
                       float *restrict y, int64_t D, int64_t b, int64_t e) {
  for (int64_t t = b; t < e; t++) {
    float *dst = y + t * D;
    int64_t i = 0;
    for (; i + 8 <= D; i += 8) {
      mork_v8 v = mork_wld8(E, fmt, D, V, tok[t], i);
      __builtin_memcpy(dst + i, &v, sizeof v);
    }
    for (; i < D; i++) dst[i] = mork_wld1(E, fmt, D, V, tok[t], i);
  }
}

/* y = w * (x * (float)(1 / sqrt(mean(x^2) + eps))), the mean in double */
MORK void mork_rmsnorm(const float *restrict x, const float *restrict w, float *restrict y, int64_t D, double eps,
                       int64_t b, int64_t e) {
  for (int64_t m = b; m < e; m++) {
    const float *xr = x + m * D;
    float *yr = y + m * D;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= D; i += 4) {
      s0 += (double)xr[i] * xr[i];
      s1 += (double)xr[i + 1] * xr[i + 1];
      s2 += (double)xr[i + 2] * xr[i + 2];
      s3 += (double)xr[i + 3] * xr[i + 3];
    }
    for (; i < D; i++) s0 += (double)xr[i] * xr[i];
    double ss = (s0 + s1) + (s2 + s3);
    float inv = (float)(1.0 / sqrt(ss / (double)D + eps));
    for (i = 0; i < D; i++) yr[i] = w[i] * (xr[i] * inv);
  }
}

/* Half-split rotary embedding of H heads of hd values at each row's position;
 * angles pos * theta^(-2i/hd) in double, cos/sin rounded to f32. */
MORK void mork_rope(const float *restrict x, const int32_t *restrict pos, float *restrict y, int64_t H, int64_t hd,
                    double theta, int64_t b, int64_t e) {
  int64_t half = hd / 2;
  double invf[256];
  int table = half <= 256;
  if (table)
    for (int64_t i = 0; i < half; i++) invf[i] = pow(theta, -2.0 * (double)i / (double)hd);
  for (int64_t m = b; m < e; m++) {
    double p = pos[m];
    float c[256], s[256];
    for (int64_t i0 = 0; i0 < half; i0 += 256) {
      int64_t n = half - i0 < 256 ? half - i0 : 256;
      for (int64_t i = 0; i < n; i++) {
        double f = table ? invf[i0 + i] : pow(theta, -2.0 * (double)(i0 + i) / (double)hd);
        double ang = p * f;
        c[i] = (float)cos(ang);
        s[i] = (float)sin(ang);
      }
      for (int64_t h = 0; h < H; h++) {
        const float *xr = x + m * H * hd + h * hd + i0;
        float *yr = y + m * H * hd + h * hd + i0;
        for (int64_t i = 0; i < n; i++) {
          float x1 = xr[i], x2 = xr[i + half];
          yr[i] = x1 * c[i] - x2 * s[i];
          yr[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  }
}

/* items: rows of F values; silu(g) * u, 8 at a time with t = e^-|g|
 * (mork_exp8, whose argument is then <= 0): silu(g) = g / (1 + t) for
 * g >= 0 and g t / (1 + t) below (the same value, without overflow). */
MORK void mork_silu_mul(const float *restrict g, const float *restrict u, float *restrict y, int64_t F, int64_t b,
                        int64_t e) {
  int64_t i = b * F, end = e * F;
  for (; i + 8 <= end; i += 8) {
    mork_v8 gv = mork_ld(g + i), ag;
    mork_i8 neg = gv < 0, gi, ai;
    __builtin_memcpy(&gi, &gv, sizeof gv);
    ai = gi & 0x7fffffff;
    __builtin_memcpy(&ag, &ai, sizeof ag);
    mork_v8 t = mork_exp8(-ag), one = t - t + 1.0f;
    mork_v8 num = gv * one, tg = gv * t;
    mork_i8 ni, ti;
    __builtin_memcpy(&ni, &num, sizeof ni);
    __builtin_memcpy(&ti, &tg, sizeof ti);
    ni = (ni & ~neg) | (ti & neg);
    __builtin_memcpy(&num, &ni, sizeof num);
    mork_v8 r = num / (one + t) * mork_ld(u + i);
    __builtin_memcpy(y + i, &r, sizeof r);
  }
  for (; i < end; i++) {
    float gi = g[i];
    y[i] = gi / (1.0f + expf(-gi)) * u[i];
  }
}

/* items: rows of W elements */
MORK void mork_add_f32(const float *restrict a, const float *restrict c, float *restrict y, int64_t W, int64_t b,
                       int64_t e) {
  for (int64_t i = b * W; i < e * W; i++) y[i] = a[i] + c[i];
}
MORK void mork_add_i32(const int32_t *restrict a, const int32_t *restrict c, int32_t *restrict y, int64_t W,
                       int64_t b, int64_t e) {
  for (int64_t i = b * W; i < e * W; i++) y[i] = (int32_t)((uint32_t)a[i] + (uint32_t)c[i]);
}
MORK void mork_add_i64(const int64_t *restrict a, const int64_t *restrict c, int64_t *restrict y, int64_t W,
                       int64_t b, int64_t e) {
  for (int64_t i = b * W; i < e * W; i++) y[i] = (int64_t)((uint64_t)a[i] + (uint64_t)c[i]);
}

/* y[i] += r[idx[i]] (r[i] when idx is NULL), rows of N floats: residual
 * epilogues of the fused matmuls; items: rows of y */
MORK void mork_add_rows(float *restrict y, const float *restrict r, const int32_t *restrict idx, int64_t N, int64_t b,
                        int64_t e) {
  for (int64_t i = b; i < e; i++) {
    const float *rr = r + (idx ? (int64_t)idx[i] : i) * N;
    float *yr = y + i * N;
    for (int64_t k = 0; k < N; k++) yr[k] += rr[k];
  }
}

/* Copy n bytes (whole tensors: the base of scatter, gate_add, count_add, the
 * carried values of recur, results). */
MORK void mork_copy(void *restrict dst, const void *restrict src, int64_t n) {
  if (n > 0) __builtin_memcpy(dst, src, (size_t)n);
}

/* y[i] = x[idx[i]], rows of rb bytes; items: output rows */
MORK void mork_gather(const char *restrict x, const int32_t *restrict idx, char *restrict y, int64_t rb, int64_t b,
                      int64_t e) {
  for (int64_t i = b; i < e; i++) __builtin_memcpy(y + i * rb, x + (int64_t)idx[i] * rb, (size_t)rb);
}

/* y[idx[i]] = u[i] (y already holds x); items: update rows */
MORK void mork_scatter(char *restrict y, const int32_t *restrict idx, const char *restrict u, int64_t rb, int64_t b,
                       int64_t e) {
  for (int64_t i = b; i < e; i++) __builtin_memcpy(y + (int64_t)idx[i] * rb, u + i * rb, (size_t)rb);
}

/* out (already a copy of dst): row idx[i] = base[idx[i]] + g * y[i],
 * g = alpha * s[idx[i]] when weighted, else 1; items: rows of y */
MORK void mork_gate_add(float *restrict out, const float *restrict base, const float *restrict yv,
                        const float *restrict s, const int32_t *restrict idx, int64_t D, float alpha, int64_t weighted,
                        int64_t b, int64_t e) {
  for (int64_t i = b; i < e; i++) {
    int64_t t = idx[i];
    const float *br = base + t * D, *yr = yv + i * D;
    float *o = out + t * D;
    if (weighted) {
      float g = alpha * s[t];
      for (int64_t k = 0; k < D; k++) o[k] = br[k] + g * yr[k];
    } else {
      for (int64_t k = 0; k < D; k++) o[k] = br[k] + yr[k];
    }
  }
}

/* out (already a copy of d) + 1 at rows idx */
MORK void mork_count_add(int32_t *restrict out, const int32_t *restrict idx, int64_t N) {
  for (int64_t i = 0; i < N; i++) out[idx[i]]++;
}

MORK void mork_iota(int32_t *restrict out, int64_t T) {
  for (int64_t t = 0; t < T; t++) out[t] = (int32_t)t;
}

MORK void mork_fill_f32(float *restrict out, int64_t T, float v) {
  for (int64_t t = 0; t < T; t++) out[t] = v;
}

MORK void mork_fill_i32(int32_t *restrict out, int64_t T, int32_t v) {
  for (int64_t t = 0; t < T; t++) out[t] = v;
}

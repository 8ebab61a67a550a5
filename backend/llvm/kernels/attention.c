/* attention.c: KV cache append and causal attention over a cache.
 * Caches are the sequence's morrt_kv records; `si` is the store index an op
 * resolved for its depth (-1: @none, the write is skipped). */
#include <math.h>
#include "kernels/mork.h"

/* Append M rows (K, V of width values each, and their positions). */
MORK void mork_kv_write(morrt_kv *kv, int64_t si, const float *restrict k, const float *restrict v,
                        const int32_t *restrict pos, int64_t M, int64_t width) {
  if (si < 0) return;
  morrt_kv *c = kv + si;
  int64_t n = c->n;
  if (n + M > c->capacity) M = c->capacity - n; /* the runtime checks positions first: cannot happen */
  for (int64_t i = 0; i < M; i++) c->pos[n + i] = pos[i];
  __builtin_memcpy(c->k + n * width, k, (size_t)(M * width) * sizeof(float));
  __builtin_memcpy(c->v + n * width, v, (size_t)(M * width) * sizeof(float));
  c->n = n + M;
}

/* Entries in store si (0 for @none): the runtime's cost estimate. */
MORK int64_t mork_kv_len(const morrt_kv *kv, int64_t si) { return si < 0 ? 0 : kv[si].n; }

/* Entries scored at a time (a stack buffer of scores). */
#define MORK_ATT_BLOCK 64

/* items: (row m, head h) pairs, m * H + h. Causal attention of the row's
 * query over the cache entries whose position <= the row's position, scale
 * 1/sqrt(hd), flash-style: entries are in position order, so those form a
 * prefix (found by binary search), taken MORK_ATT_BLOCK at a time: the
 * block's scores (8 entries at once, reduced together), one running-max
 * rescale per block, the exponentials 8 at a time (mork_exp8) and the
 * weighted sum of V rows 32 values of the head at a time. f32 throughout. */
MORK void mork_attention(const float *restrict q, const int32_t *restrict pos, const morrt_kv *kv, int64_t si,
                         float *restrict y, int64_t H, int64_t KVH, int64_t hd, int64_t b, int64_t e) {
  int64_t width = KVH * hd, group = H / KVH;
  float scale = (float)(1.0 / sqrt((double)hd));
  float s[MORK_ATT_BLOCK] __attribute__((aligned(32)));
  for (int64_t it = b; it < e; it++) {
    int64_t m = it / H, h = it % H;
    const float *qh = q + m * H * hd + h * hd;
    float *yr = y + m * H * hd + h * hd;
    for (int64_t d = 0; d < hd; d++) yr[d] = 0;
    if (si < 0) continue;
    const morrt_kv *c = kv + si;
    int64_t kvo = (h / group) * hd;
    int32_t p = pos[m];
    int64_t lo = 0, hi = c->n;
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      if (c->pos[mid] <= p) lo = mid + 1;
      else hi = mid;
    }
    int64_t n = lo;
    float mx = -INFINITY, sum = 0;
    for (int64_t j0 = 0; j0 < n; j0 += MORK_ATT_BLOCK) {
      int64_t nb = n - j0 < MORK_ATT_BLOCK ? n - j0 : MORK_ATT_BLOCK;
      const float *kb = c->k + j0 * width + kvo, *vb = c->v + j0 * width + kvo;
      /* scores */
      int64_t jj = 0;
      for (; jj + 8 <= nb; jj += 8) {
        const float *k0 = kb + jj * width;
        mork_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        int64_t d = 0;
        for (; d + 8 <= hd; d += 8) {
          mork_v8 qv = mork_ld(qh + d);
          a0 += qv * mork_ld(k0 + d), a1 += qv * mork_ld(k0 + width + d);
          a2 += qv * mork_ld(k0 + 2 * width + d), a3 += qv * mork_ld(k0 + 3 * width + d);
          a4 += qv * mork_ld(k0 + 4 * width + d), a5 += qv * mork_ld(k0 + 5 * width + d);
          a6 += qv * mork_ld(k0 + 6 * width + d), a7 += qv * mork_ld(k0 + 7 * width + d);
        }
        mork_v8 sc = mork_hsum8(a0, a1, a2, a3, a4, a5, a6, a7);
        for (; d < hd; d++)
          for (int t = 0; t < 8; t++) sc[t] += qh[d] * k0[t * width + d];
        sc *= scale;
        __builtin_memcpy(s + jj, &sc, sizeof sc);
      }
      for (; jj < nb; jj++) {
        const float *kr = kb + jj * width;
        float sc = 0;
        int64_t d = 0;
        if (hd >= 8) {
          mork_v8 a = {0};
          for (; d + 8 <= hd; d += 8) a += mork_ld(qh + d) * mork_ld(kr + d);
          sc = mork_hsum(a);
        }
        for (; d < hd; d++) sc += qh[d] * kr[d];
        s[jj] = sc * scale;
      }
      /* running max: rescale what was summed so far */
      float bm = s[0];
      for (jj = 1; jj < nb; jj++) bm = s[jj] > bm ? s[jj] : bm;
      if (bm > mx) {
        float r = expf(mx - bm); /* 0 on the first block */
        sum *= r;
        for (int64_t d = 0; d < hd; d++) yr[d] *= r;
        mx = bm;
      }
      /* weights */
      mork_v8 acc = {0};
      mork_v8 mv = {mx, mx, mx, mx, mx, mx, mx, mx};
      for (jj = 0; jj + 8 <= nb; jj += 8) {
        mork_v8 w = mork_exp8(mork_ld(s + jj) - mv);
        __builtin_memcpy(s + jj, &w, sizeof w);
        acc += w;
      }
      sum += mork_hsum(acc);
      for (; jj < nb; jj++) s[jj] = expf(s[jj] - mx), sum += s[jj];
      /* y += sum_j w_j v_j: 32 values of the head at a time (4 independent
       * accumulators), then 8, then one */
      int64_t d = 0;
      for (; d + 32 <= hd; d += 32) {
        mork_v8 o0 = mork_ld(yr + d), o1 = mork_ld(yr + d + 8), o2 = mork_ld(yr + d + 16), o3 = mork_ld(yr + d + 24);
        for (jj = 0; jj < nb; jj++) {
          const float *vr = vb + jj * width + d;
          float w = s[jj];
          o0 += w * mork_ld(vr), o1 += w * mork_ld(vr + 8), o2 += w * mork_ld(vr + 16), o3 += w * mork_ld(vr + 24);
        }
        __builtin_memcpy(yr + d, &o0, sizeof o0);
        __builtin_memcpy(yr + d + 8, &o1, sizeof o1);
        __builtin_memcpy(yr + d + 16, &o2, sizeof o2);
        __builtin_memcpy(yr + d + 24, &o3, sizeof o3);
      }
      for (; d + 8 <= hd; d += 8) {
        mork_v8 o = mork_ld(yr + d);
        for (jj = 0; jj < nb; jj++) o += s[jj] * mork_ld(vb + jj * width + d);
        __builtin_memcpy(yr + d, &o, sizeof o);
      }
      for (; d < hd; d++) {
        float o = yr[d];
        for (jj = 0; jj < nb; jj++) o += s[jj] * vb[jj * width + d];
        yr[d] = o;
      }
    }
    if (sum > 0) {
      float inv = 1.0f / sum;
      for (int64_t d = 0; d < hd; d++) yr[d] *= inv;
    }
  }
}
